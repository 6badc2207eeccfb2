"""Rollouts: eval fields, termination, always-invalid policy, resume after kill -9, CLI summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from sadcli.agent.loop import Decision, EnvPool
from sadcli.cli import app
from sadcli.envs.registry import EnvSpec
from sadcli.eval.rollouts import RolloutPlan, run_rollouts, step_cap
from sadcli.eval.summary import summarize
from sadcli.teachers import make_teacher

from .conftest import COUNTER  # noqa: TID252

runner = CliRunner()


class AlwaysInvalid:
    name = "gibberish"

    def act(self, states):
        return [Decision("closet closet closet", raw="closet closet closet", tokens=5, invalid_format=True)
                for _ in states]


def _plan(pool, n, seeds=(0,), cap=6):
    return RolloutPlan(pool.tasks("train")[:n], list(seeds), cap)


def test_always_invalid_policy_scores_zero_with_invalid_format():
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 4}), 2, in_process=True) as pool:
        recs = run_rollouts(pool, _plan(pool, 4), [("gibberish", lambda seed: AlwaysInvalid())])
    assert len(recs) == 4
    for r in recs:
        assert r["success"] is False and r["termination"] == "invalid_format"
        assert len(r["steps"]) == 6 and r["step_cap"] == 6 and r["generated_tokens"] == 30
        assert all(s.get("invalid_format") for s in r["steps"])
        assert r["model"] == "gibberish" and r["seed"] == 0 and r["latency_s"] >= 0
    s = summarize(recs)["models"]["gibberish"]
    assert s["success"]["k"] == 0 and s["success"]["n"] == 4
    assert s["terminations"] == {"invalid_format": 4} and s["invalid_action_rate"] == 1.0


def test_expert_and_paired_test_with_seeds():
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 5}), 2, in_process=True) as pool:
        plan = _plan(pool, 5, seeds=(0, 1), cap=20)
        recs = run_rollouts(pool, plan, [("expert", lambda s: make_teacher("expert")),
                                         ("gibberish", lambda s: AlwaysInvalid())])
    assert len(recs) == 20
    summ = summarize(recs, ["expert", "gibberish"])
    e = summ["models"]["expert"]
    assert e["success"]["k"] == 10 and e["seeds"]["n"] == 2 and e["seeds"]["sd"] == 0.0
    assert e["terminations"] == {"success": 10} and e["pass_at_k"]["k"] == 5 and e["pass_at_k"]["n"] == 5
    (pair,) = summ["pairs"]
    assert (pair["a_only"], pair["b_only"], pair["n"]) == (10, 0, 10)
    assert pair["p_value"] == pytest.approx(2 / 2 ** 10)


def test_step_caps_follow_the_field():
    assert step_cap("alfworld", {}, 150) == 50
    assert step_cap("wikiqa", {}, 8) == 7
    assert step_cap("twx", {"game": "twc"}, 100) == 50
    assert step_cap("counter", {}, 20) == 20  # a plugin keeps its own


def _strip_clock(path):
    out = []
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            r.pop("latency_s")
            r["meta"].pop("wall_time_s")
            out.append(r)
    return out


def _cli(out, *extra):
    return [sys.executable, "-m", "sadcli", "eval", "-m", "expert", "-m", "again=expert",
            "--env", COUNTER, "--env-opt", "games=6", "--env-opt", "delay=0.05", "-n", "all", "--seeds", "0,1",
            "-p", "2", "-o", str(out), "-q", *extra]


def test_resume_after_kill_gives_the_same_episodes_file(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    full = tmp_path / "full.jsonl"
    r = subprocess.run(_cli(full, "--report", str(tmp_path / "r.json")), env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    part = tmp_path / "part.jsonl"
    p = subprocess.Popen(_cli(part), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if part.exists() and part.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    n_before = part.read_bytes().count(b"\n")
    assert 5 <= n_before < 24, "the run was not interrupted in the middle"
    with open(part, "ab") as fh:  # and a half-written line, as a kill during a write leaves
        fh.write(b'{"schema": 1, "id": "cut')
    r = subprocess.run(_cli(part, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = _strip_clock(full), _strip_clock(part)
    assert len(a) == 24 and a == b
    rep = json.loads((tmp_path / "r.json").read_text())
    models = rep["rollouts"]["summary"]["models"]
    assert models["expert"]["success"]["k"] == 12
    assert rep["rollouts"]["summary"]["pairs"][0]["p_value"] == 1.0
    assert rep["git"] and rep["versions"]["scipy"] and rep["config"]["command"].startswith("sad eval")


def test_cli_tables_markdown_plot_and_from_report(tmp_path):
    rep = tmp_path / "r.json"
    r = runner.invoke(app, ["eval", "-m", "expert", "--env", COUNTER, "--env-opt", "games=4", "-n", "all", "-p", "1",
                            "-o", str(tmp_path / "e.jsonl"), "--report", str(rep), "--markdown",
                            str(tmp_path / "r.md"), "--plot", str(tmp_path / "p.png")], prog_name="sad")
    assert r.exit_code == 0, r.output
    assert "4/4" in r.stderr and r.stdout == ""
    md = (tmp_path / "r.md").read_text()
    assert "| expert | 4/4 (100.0%)" in md
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    r2 = runner.invoke(app, ["eval", "-m", "x", "--from-report", str(rep), "--markdown", str(tmp_path / "r2.md")],
                       prog_name="sad")
    assert r2.exit_code == 0, r2.output
    assert (tmp_path / "r2.md").read_text() == md


def test_bad_input_is_a_clean_error(tmp_path):
    r = runner.invoke(app, ["eval", "-m", "expert"], prog_name="sad")
    assert r.exit_code == 2
    r = runner.invoke(app, ["eval", "-m", "init:" + str(tmp_path), "--env", COUNTER], prog_name="sad")
    assert r.exit_code == 1 and "Error:" in r.stderr and "sad_config.json" in r.stderr
    assert "Traceback" not in r.output
    bad = tmp_path / "ep.jsonl"
    bad.write_text('{"schema": 1}\n')
    r = runner.invoke(app, ["eval", "-m", "expert", "--env", COUNTER, "-o", str(bad), "--resume"], prog_name="sad")
    assert r.exit_code == 1 and f"{bad}:1:" in r.stderr
    r = runner.invoke(app, ["eval", "-m", "a=expert", "-m", "a=expert", "--env", COUNTER], prog_name="sad")
    assert r.exit_code == 2
