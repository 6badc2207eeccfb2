"""`sad curriculum` as a user runs it, and `sad distill` pacing by its fields (tiny models)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from sadcli.cli import app

runner = CliRunner()


def sad(*args, input=None):
    return runner.invoke(app, [*map(str, args)], input=input, prog_name="sad")


def lines(text):
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def test_gamma_0_orders_by_lengths_without_a_teacher(seg_file, seg_records, tmp_path):
    png = tmp_path / "sub" / "c.png"
    r = sad("curriculum", seg_file, "--gamma", "0", "--stages", "2", "--show", "--plot", png)
    assert r.exit_code == 0, r.stderr
    out = lines(r.stdout)                                       # stdout: the records only
    assert sorted(x["id"] for x in out) == sorted(x["id"] for x in seg_records)
    scores = [x["curriculum"]["score"] for x in out]
    assert scores == sorted(scores)
    for x in out:
        c = x["curriculum"]
        assert set(c) == {"len_reason", "len_act", "entropy", "score"} and c["entropy"] is None
        assert c["len_reason"] > 0 and c["len_act"] > 0
        n = len(out)
        assert x["curriculum_rank"] == sum(1 for y in out if y["curriculum"]["score"] <= c["score"]) / n
        assert x["curriculum_stage"] == (0 if x["curriculum_rank"] <= 0.5 else 1)
        src = next(s for s in seg_records if s["id"] == x["id"])
        assert {k: v for k, v in x.items() if not k.startswith("curriculum")} == src    # carried through
    assert "Easiest" in r.stderr and "Hardest" in r.stderr and "stage" in r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_live_teacher_and_cache_give_the_same_entropy(seg_file, tiny_teacher, tmp_path):
    r = sad("curriculum", seg_file, "--teacher", tiny_teacher, "-o", tmp_path / "live.jsonl", "-q")
    assert r.exit_code == 0, r.stderr
    live = lines((tmp_path / "live.jsonl").read_text())
    assert all(x["curriculum"]["entropy"] > 0 for x in live)
    r = sad("distill", seg_file, "--teacher", tiny_teacher, "--cache-teacher", tmp_path / "cache", "-q")
    assert r.exit_code == 0, r.stderr
    r = sad("curriculum", seg_file, "--teacher-cache", tmp_path / "cache", "--tokenizer", tiny_teacher)
    assert r.exit_code == 0, r.stderr
    cached = {x["id"]: x["curriculum"]["entropy"] for x in lines(r.stdout)}
    for x in live:
        assert cached[x["id"]] == pytest.approx(x["curriculum"]["entropy"], rel=1e-3)   # float16 rows
    assert "cache (dense, fp16)" in " ".join(r.stderr.split())


def test_bad_input_is_a_clean_error(tmp_path, seg_records):
    bad = tmp_path / "raw.jsonl"
    bad.write_text(json.dumps({"schema": 1, "id": "x", "task": "t", "steps": []}) + "\n")
    r = sad("curriculum", bad, "--gamma", "0")
    assert r.exit_code == 1 and "Error:" in r.stderr and "raw.jsonl:1" in r.stderr and "sad segment" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    good = tmp_path / "seg.jsonl"
    good.write_text(json.dumps(seg_records[0]) + "\n")
    r = sad("curriculum", good, "--teacher-cache", tmp_path / "nope")
    assert r.exit_code == 1 and "not a teacher cache" in r.stderr and "Traceback" not in r.stderr
    r = sad("curriculum", good, "--gamma", "0", "--stages", "0")
    assert r.exit_code == 2


def _ordered(seg_file, tmp_path):
    path = tmp_path / "ordered.jsonl"
    r = sad("curriculum", seg_file, "--gamma", "0", "-o", path, "-q")
    assert r.exit_code == 0, r.stderr
    return str(path)


def test_distill_paces_by_the_fields(seg_file, tiny_teacher, tmp_path):
    data = _ordered(seg_file, tmp_path)
    common = [data, "--teacher", tiny_teacher, "--student-layers", "2", "--max-length", "128", "--batch-size", "2",
              "--max-steps", "4"]
    r = sad("distill", *common, "-o", tmp_path / "a")
    assert r.exit_code == 0, r.stderr
    assert "curriculum: sorted (default: the records carry curriculum fields)" in " ".join(r.stderr.split())
    r = sad("distill", *common, "--curriculum", "competence", "--c0", "0.3", "--log", tmp_path / "log.jsonl",
            "-o", tmp_path / "b")
    assert r.exit_code == 0, r.stderr
    assert "curriculum: competence" in r.stderr
    comp = [row["competence"] for row in lines((tmp_path / "log.jsonl").read_text())]
    assert comp[0] == pytest.approx(0.3) and comp == sorted(comp) and comp[-1] == 1.0   # T = half of 4 steps
    cfg = json.loads((tmp_path / "b" / "sad_config.json").read_text())
    assert cfg["data"]["curriculum"] == {"mode": "competence", "c0": 0.3, "steps": 0}
    r = sad("distill", seg_file, *common[1:], "--curriculum", "stages", "-o", tmp_path / "c")
    assert r.exit_code == 1 and "sad curriculum" in r.stderr and "Traceback" not in r.stderr


def test_distill_windows_are_reported(seg_file, tiny_teacher, tmp_path):
    r = sad("distill", seg_file, "--teacher", tiny_teacher, "--student-layers", "2", "--max-length", "40",
            "--batch-size", "2", "--max-steps", "1", "-o", tmp_path / "w")
    assert r.exit_code == 0, r.stderr
    assert "step windows" in r.stderr
    data = json.loads((tmp_path / "w" / "sad_config.json").read_text())["data"]
    assert data["window"] == "steps" and data["windowed_records"] > 0
    assert data["examples"] == data["records"] - data["windowed_records"] + data["window_examples"]
    assert data["truncated_records"] == 0 and sum(data["windows_per_record"].values()) == data["window_examples"]


def _run_args(data, teacher, out, *extra):
    return [sys.executable, "-m", "sadcli", "distill", data, "--teacher", teacher, "--student-layers", "2",
            "--max-length", "128", "--batch-size", "2", "--grad-accum", "2", "--max-steps", "6", "--save-every", "2",
            "--curriculum", "competence", "--c0", "0.25", "--curriculum-steps", "8", "--lr", "1e-3", "--seed", "3",
            "-o", str(out), "-q", *extra]


def test_resume_mid_curriculum_is_bit_identical(seg_file, tiny_teacher, tmp_path):
    data = _ordered(seg_file, tmp_path)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    ref = tmp_path / "ref"
    p = subprocess.run(_run_args(data, tiny_teacher, ref), env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    # the state of a run stopped after its step-4 checkpoint (competence c(4) = 0.75: mid-curriculum)
    out = tmp_path / "out"
    shutil.copytree(ref / "checkpoints" / "step-00000004", out / "checkpoints" / "step-00000004")
    state = json.loads((out / "checkpoints" / "step-00000004" / "trainer_state.json").read_text())
    assert state["sampler"]["mode"] == "competence" and 0.25 < state["sampler"]["competence"] < 1
    p = subprocess.run(_run_args(data, tiny_teacher, out, "--resume"), env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # another pacing cannot resume this checkpoint
    args = _run_args(data, tiny_teacher, out, "--resume")
    args[args.index("--c0") + 1] = "0.5"
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 1 and "Error:" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_collect_segment_curriculum_distill_shell_pipeline(tiny_teacher, tmp_path):
    sad_bin = os.path.join(os.path.dirname(sys.executable), "sad")
    out = tmp_path / "student"
    cmd = (f"set -o pipefail; {sad_bin} collect --env twx --game twc --teacher expert --episodes 3 --only-success -q"
           f" | {sad_bin} segment - -q | {sad_bin} curriculum - --teacher {tiny_teacher} --stages 2 --max-length 256"
           f" | {sad_bin} distill - --teacher {tiny_teacher} --student-layers 2 --max-length 256 --batch-size 2"
           f" --max-steps 2 -o {out}")
    p = subprocess.run(["bash", "-c", cmd], env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "curriculum: sorted" in p.stderr and "ordered easy -> hard" in p.stderr
    cfg = json.loads((out / "sad_config.json").read_text())
    assert cfg["data"]["records"] == 3 and cfg["data"]["curriculum"]["mode"] == "sorted"
    assert cfg["summary"]["steps"] == 2


@pytest.mark.slow
def test_competence_pacing_with_two_processes_equals_one_with_accumulation(seg_file, tiny_teacher, tmp_path):
    """DDP: both ranks draw from the same competence set, so 2 CPU processes = 1 process x --grad-accum 2."""
    data = _ordered(seg_file, tmp_path)
    common = ["distill", data, "--teacher", tiny_teacher, "--student-layers", "2", "--max-length", "128",
              "--batch-size", "2", "--max-steps", "3", "--lr", "1e-3", "--seed", "1", "--curriculum", "competence",
              "--c0", "0.3", "-q"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    one, two = tmp_path / "one", tmp_path / "two"
    p = subprocess.run([sys.executable, "-m", "sadcli", *common, "--grad-accum", "2", "-o", str(one)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        "29541", "-m", "sadcli", *common, "-o", str(two)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    sa = json.loads((one / "sad_config.json").read_text())["summary"]
    sb = json.loads((two / "sad_config.json").read_text())["summary"]
    assert sb["processes"] == 2
    assert (sb["last"]["n_reason"], sb["last"]["n_act"], sb["tokens_seen"]) == \
        (sa["last"]["n_reason"], sa["last"]["n_act"], sa["tokens_seen"])
    assert sb["last"]["loss"] == pytest.approx(sa["last"]["loss"], rel=1e-5)
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
