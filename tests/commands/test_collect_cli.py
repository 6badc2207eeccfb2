"""`sad collect`: output contract, --only-success, --resume (also after a kill), errors, pipe into segment."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from sadcli.cli import app

COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"
runner = CliRunner()


def run(*args, **kw):
    return runner.invoke(app, ["collect", *args], **kw)


def lines(path):
    return [json.loads(x) for x in pathlib.Path(path).read_text().splitlines() if x.strip()]


def test_stdout_is_data_only_and_records_are_schema_v1():
    r = run("--env", COUNTER, "-n", "3", "--env-opt", "games=5")
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["id"] for x in recs] == ["counter/train/2/0", "counter/train/3/1", "counter/train/4/2"]
    for x in recs:
        assert x["schema"] == 1 and x["env"] == "counter" and x["teacher"] == "expert"
        assert set(x["meta"]) >= {"steps", "wall_time_s", "invalid_actions", "split", "game", "seed"}
        assert all(set(s) >= {"reason", "action", "observation"} for s in x["steps"])
    assert "3 episodes played, 3 successful (100%)" in r.stderr
    assert "{" not in r.stderr


def test_output_file_offset_and_parallel(tmp_path):
    out = tmp_path / "o.jsonl"
    r = run("--env", COUNTER, "-n", "4", "--offset", "1", "-p", "2", "-o", str(out), "--env-opt", "games=6")
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert sorted(x["meta"]["seed"] for x in lines(out)) == [1, 2, 3, 4]


def test_only_success_reports_the_filtered_count(tmp_path):
    out = tmp_path / "o.jsonl"
    r = run("--env", COUNTER, "-n", "4", "--only-success", "-o", str(out),
            "--env-opt", "games=4", "--env-opt", "raise_on=3/1")
    assert r.exit_code == 0, r.output
    assert [x["id"] for x in lines(out)] == ["counter/train/2/0", "counter/train/4/2", "counter/train/2/3"]
    assert "1 unsuccessful filtered out (--only-success)" in r.stderr
    assert "1 failed with an error" in r.stderr


def test_resume_skips_done_ids_and_repairs_a_half_line(tmp_path):
    out = tmp_path / "o.jsonl"
    assert run("--env", COUNTER, "-n", "2", "-o", str(out), "--env-opt", "games=6").exit_code == 0
    with open(out, "a") as fh:
        fh.write('{"schema": 1, "id": "counter/tr')  # a run killed while writing a line
    r = run("--env", COUNTER, "-n", "5", "-o", str(out), "--resume", "--env-opt", "games=6")
    assert r.exit_code == 0, r.output
    ids = [x["id"] for x in lines(out)]
    assert len(ids) == len(set(ids)) == 5
    assert "2 already there (--resume)" in r.stderr and "half-written" in r.stderr
    r = run("--env", COUNTER, "-n", "5", "-o", str(out), "--resume", "--env-opt", "games=6")
    assert "0 episodes played" in r.stderr and len(lines(out)) == 5


def _strip(rec):
    rec = dict(rec)
    rec["meta"] = {k: v for k, v in rec["meta"].items() if k != "wall_time_s"}
    return rec


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_episodes_as_an_uninterrupted_run(tmp_path):
    args = ["--env", COUNTER, "-n", "16", "-p", "2", "--env-opt", "games=16", "--env-opt", "delay=0.05"]
    full = tmp_path / "full.jsonl"
    assert run(*args, "-o", str(full)).exit_code == 0
    part = tmp_path / "part.jsonl"
    cmd = [sys.executable, "-m", "sadcli", "collect", *args, "-o", str(part), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and len(part.read_text().splitlines()) >= 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(lines(part))
    assert 4 <= n_before < 16
    r = run(*args, "-o", str(part), "--resume")
    assert r.exit_code == 0, r.output
    got = sorted((_strip(x) for x in lines(part)), key=lambda x: x["id"])
    want = sorted((_strip(x) for x in lines(full)), key=lambda x: x["id"])
    assert [x["id"] for x in got] == [x["id"] for x in want]
    assert got == want


def test_bad_options_are_clean_errors(tmp_path):
    r = run("--env", "minecraft")
    assert r.exit_code == 1 and "Error:" in r.stderr and "unknown environment" in r.stderr
    assert "Traceback" not in r.output
    r = run("--env", COUNTER, "--resume")
    assert r.exit_code == 2 and "--resume needs -o FILE" in r.output
    r = run("--env", "twx", "--task-type", "heat")
    assert r.exit_code == 2 and "--task-type does not apply to --env twx" in r.output
    r = run("--env", COUNTER, "--teacher", "gpt4")
    assert r.exit_code == 1 and "unknown teacher" in r.stderr
    r = run("--env", COUNTER, "--split", "train", "--offset", "99")
    assert r.exit_code == 2 and "has no episodes" in r.output
    r = run("--env", "alfworld", "--data-dir", str(tmp_path))
    assert r.exit_code == 1 and "has no json_2.1.1" in r.stderr and "Traceback" not in r.output


def test_pipe_into_segment():
    r = run("--env", COUNTER, "-n", "2")
    assert r.exit_code == 0
    seg = runner.invoke(app, ["segment", "-"], input=r.stdout)
    assert seg.exit_code == 0, seg.output
    recs = [json.loads(x) for x in seg.stdout.splitlines()]
    assert len(recs) == 2
    for rec in recs:
        kinds = [s["kind"] for s in rec["spans"]]
        assert kinds[0] == "prompt" and {"reason", "act", "obs"} <= set(kinds)
        assert rec["spans"][-1]["end"] == len(rec["text"])
        assert "[REASON] I have said 0 of" in rec["text"] and "[ACT] say[1]" in rec["text"]


@pytest.mark.slow
def test_real_twx_collect_and_resume(tmp_path):
    pytest.importorskip("textworld_express", reason="TextWorldExpress is an optional extra")
    out = tmp_path / "twx.jsonl"
    r = run("--env", "twx", "-n", "2", "-o", str(out))
    assert r.exit_code == 0, r.output
    r = run("--env", "twx", "-n", "4", "-p", "2", "-o", str(out), "--resume", "--only-success")
    assert r.exit_code == 0, r.output
    recs = lines(out)
    assert sorted(x["id"] for x in recs) == [f"twx/train/twc/{i}" for i in range(4)]
    assert all(x["success"] for x in recs)
