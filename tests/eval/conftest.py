"""Fixtures of the sad eval tests: a tiny config-built teacher, a student distilled from it, held-out data."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"

TASKS = [
    ("Which river flows through Paris?", [
        ("I should search for Paris.", "search[Paris]", "Paris is the capital of France, on the Seine."),
        ("The river is the Seine.", "finish[Seine]", "Episode finished, reward = True")]),
    ("Who wrote Hamlet?", [
        ("I need to look up Hamlet.", "search[Hamlet]", "Hamlet is a tragedy by William Shakespeare."),
        (None, "finish[William Shakespeare]", "Episode finished, reward = True")]),
    ("Which planet is known as the red planet?", [
        ("Search for red planet.", "search[red planet]", "Mars is often called the Red Planet."),
        ("Mars it is.", "finish[Mars]", "Episode finished, reward = True")]),
]


def segmented(n: int = 6, markers: str = "paper") -> list[dict]:
    from sadcli.segment import segment_record

    out = []
    for i in range(n):
        task, steps = TASKS[i % len(TASKS)]
        rec = {"schema": 1, "id": f"t{i}", "task": task, "system": "Answer the question.",
               "steps": [{"reason": r, "action": a, "observation": o} for r, a, o in steps]}
        out.append(segment_record(rec, markers=markers))
    return out


def write_jsonl(path, records) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tokenizer) -> str:
    """A 2-layer, 64-dim Llama with the embedded tokenizer (sharpened head: not near-uniform)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(2)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(30.0)
    out = tmp_path_factory.mktemp("teacher")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return str(out)


@pytest.fixture(scope="session")
def seg_file(tmp_path_factory) -> str:
    return write_jsonl(tmp_path_factory.mktemp("data") / "seg.jsonl", segmented(6))


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory, tiny_teacher, seg_file) -> str:
    """A 1-layer student cut from the tiny teacher and distilled for a few steps."""
    from typer.testing import CliRunner

    from sadcli.cli import app

    out = tmp_path_factory.mktemp("student") / "s"
    r = CliRunner().invoke(app, ["distill", seg_file, "--teacher", tiny_teacher, "--student-layers", "1",
                                 "--max-steps", "3", "--batch-size", "2", "--max-length", "256", "-q",
                                 "-o", str(out)], prog_name="sad")
    assert r.exit_code == 0, r.output
    return str(out)
