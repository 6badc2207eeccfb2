"""FSDP2 (`sad distill --fsdp`): two CPU processes (torchrun, gloo) with the student sharded by
`torch.distributed.fsdp.fully_shard` give the loss and weights of one process with gradient accumulation
over the same micro-batches — the invariance test DDP has (test_distill_ddp.py), with sharded parameters,
gradients and optimizer state, and the full weights gathered at save time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file


@pytest.mark.slow
def test_fsdp_two_processes_equal_one_with_accumulation(seg_file, tiny_teacher, tmp_path):
    common = ["distill", seg_file, "--teacher", tiny_teacher, "--student-layers", "2", "--max-length", "128",
              "--batch-size", "2", "--max-steps", "2", "--lr", "1e-4", "--seed", "1", "-q"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    one = tmp_path / "one"
    p = subprocess.run([sys.executable, "-m", "sadcli", *common, "--grad-accum", "2", "-o", str(one)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    two = tmp_path / "two"
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29547", "-m", "sadcli", *common, "--fsdp", "-o", str(two)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    sa = json.loads((one / "sad_config.json").read_text())["summary"]
    sb = json.loads((two / "sad_config.json").read_text())["summary"]
    assert (sa["processes"], sa["sharding"]) == (1, "none") and (sb["processes"], sb["sharding"]) == (2, "fsdp2")
    for x, y in ((sa["first"], sb["first"]), (sa["last"], sb["last"])):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5)
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-4)
        assert (y["n_reason"], y["n_act"], y["tokens_seen"]) == (x["n_reason"], x["n_act"], x["tokens_seen"])
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert set(a) == set(b)
    for k in a:  # full tensors (not one process's shard), equal to the single-process weights
        assert b[k].shape == a[k].shape
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    ckpt = next((two / "checkpoints").iterdir())
    c = load_file(str(ckpt / "model.safetensors"))
    assert all(torch.equal(c[k], b[k]) for k in c)
    st = torch.load(ckpt / "training.pt", weights_only=True)
    assert st["optimizer"]["state"], "the optimizer state was gathered into the checkpoint"



@pytest.mark.slow
def test_fsdp_resume_from_a_checkpoint_ends_with_the_same_weights(seg_file, tiny_teacher, tmp_path):
    """Checkpoints of a sharded run round trip: a 2-process --fsdp run resumed from its step-2 checkpoint
    (full weights and full optimizer state, cut back into shards) ends with the weights of the
    uninterrupted run."""
    import shutil

    common = ["distill", seg_file, "--teacher", tiny_teacher, "--student-layers", "2", "--max-length", "128",
              "--batch-size", "1", "--max-steps", "3", "--save-every", "1", "--lr", "1e-3", "--seed", "2", "-q",
              "--fsdp"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")

    def torchrun(out, *extra, port):
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                            str(port), "-m", "sadcli", *common, "-o", str(out), *extra], env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        return p

    full, cut = tmp_path / "full", tmp_path / "cut"
    torchrun(full, port=29561)
    shutil.copytree(full, cut)
    # back to the state after step 2: drop the step-3 checkpoint and the final model
    shutil.rmtree(cut / "checkpoints" / "step-00000003")
    (cut / "model.safetensors").unlink()
    torchrun(cut, "--resume", port=29562)
    cfg = json.loads((cut / "sad_config.json").read_text())["summary"]
    assert cfg["resumed_from"] == 2 and cfg["sharding"] == "fsdp2"
    a, b = load_file(str(full / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7)
