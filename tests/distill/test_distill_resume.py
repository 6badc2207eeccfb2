"""`--resume` after `kill -9` ends with exactly the weights of an uninterrupted run (CPU, bit for bit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file


def run_args(seg_file, teacher, out, *extra):
    return [sys.executable, "-m", "sadcli", "distill", seg_file, "--teacher", teacher, "--student-layers", "2",
            "--max-length", "128", "--batch-size", "3", "--grad-accum", "2", "--max-steps", "6", "--save-every", "2",
            "--lr", "1e-3", "--weight-decay", "0.01", "--seed", "3", "-o", str(out), "-q", *extra]


def env(**extra):
    e = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    e.update(extra)
    return e


def test_resume_after_kill_9_is_bit_identical(seg_file, tiny_teacher, tmp_path):
    # the uninterrupted run
    ref = tmp_path / "ref"
    p = subprocess.run(run_args(seg_file, tiny_teacher, ref), env=env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    # the same run, killed with SIGKILL once its step-4 checkpoint exists (steps slowed down so the kill lands)
    out = tmp_path / "out"
    proc = subprocess.Popen(run_args(seg_file, tiny_teacher, out), env=env(SAD_DISTILL_STEP_SLEEP="1.5"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoints" / "step-00000004" / "trainer_state.json"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "model.safetensors").exists()
    steps = sorted(os.listdir(out / "checkpoints"))
    assert "step-00000004" in steps and "step-00000006" not in steps
    # resume: same command + --resume
    p = subprocess.run(run_args(seg_file, tiny_teacher, out, "--resume"), env=env(), capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_other_options(seg_file, tiny_teacher, tmp_path):
    out = tmp_path / "out"
    args = run_args(seg_file, tiny_teacher, out)
    args[args.index("--max-steps") + 1] = "2"
    p = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    args[args.index("--lr") + 1] = "5e-4"
    p = subprocess.run(args + ["--resume"], env=env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 1 and "Error:" in p.stderr and "other data or options" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("kill_at", ["mid-write"])
def test_half_written_checkpoint_is_ignored(tmp_path, kill_at):
    from sadcli.distill.trainer import latest_checkpoint

    root = tmp_path / "checkpoints"
    (root / "step-00000002").mkdir(parents=True)
    (root / "step-00000002" / "trainer_state.json").write_text("{}")
    (root / ".tmp-step-abc").mkdir()               # a write killed half-way
    (root / "step-00000004").mkdir()               # no trainer_state.json: incomplete
    assert latest_checkpoint(str(tmp_path)).endswith("step-00000002")
