"""Two CPU processes (torchrun -> accelerate MULTI_CPU, DDP over gloo) give the update of one process with
gradient accumulation over the same micro-batches: global token normalization does not depend on the
number of devices. (On GPUs the same code runs under `accelerate launch --multi_gpu`.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file


@pytest.mark.slow
def test_two_processes_equal_one_with_accumulation(seg_file, tiny_teacher, tmp_path):
    common = ["distill", seg_file, "--teacher", tiny_teacher, "--student-layers", "2", "--max-length", "128",
              "--batch-size", "2", "--max-steps", "2", "--lr", "1e-4", "--seed", "1", "-q"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    one = tmp_path / "one"
    p = subprocess.run([sys.executable, "-m", "sadcli", *common, "--grad-accum", "2", "-o", str(one),
                        "--log", str(tmp_path / "one.jsonl")], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    two = tmp_path / "two"
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29533", "-m", "sadcli", *common,
                        "-o", str(two)],  # (no --log: torchrun's own parser would take it for --log-dir)
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    sa = json.loads((one / "sad_config.json").read_text())["summary"]
    sb = json.loads((two / "sad_config.json").read_text())["summary"]
    assert sb["processes"] == 2 and sa["processes"] == 1
    for x, y in ((sa["first"], sb["first"]), (sa["last"], sb["last"])):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5)
        assert (y["n_reason"], y["n_act"], y["tokens_seen"]) == (x["n_reason"], x["n_act"], x["tokens_seen"])
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
