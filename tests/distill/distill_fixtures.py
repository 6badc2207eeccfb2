"""Helpers of the sad distill tests: hand-made trajectories and tiny config-built models."""

from __future__ import annotations

import json

TASKS = [
    ("Which river flows through Paris?", [
        ("I should search for Paris.", "search[Paris]", "Paris is the capital of France, on the Seine."),
        ("The river is the Seine.", "finish[Seine]", "Episode finished, reward = True")]),
    ("Who wrote Hamlet?", [
        ("I need to look up Hamlet.", "search[Hamlet]", "Hamlet is a tragedy by William Shakespeare."),
        ("So the author is Shakespeare.", "finish[William Shakespeare]", "Episode finished, reward = True")]),
    ("What is the boiling point of water at sea level in Celsius?", [
        ("Water boils at 100 degrees at sea level.", "finish[100]", "Episode finished, reward = True")]),
    ("Which planet is known as the red planet?", [
        ("Search for red planet.", "search[red planet]", "Mars is often called the Red Planet."),
        ("Mars it is.", "finish[Mars]", "Episode finished, reward = True")]),
]


def structured_records(n: int = 8) -> list[dict]:
    out = []
    for i in range(n):
        task, steps = TASKS[i % len(TASKS)]
        out.append({"schema": 1, "id": f"t{i}", "task": task,
                    "steps": [{"reason": r, "action": a, "observation": o} for r, a, o in steps]})
    return out


def segmented_records(n: int = 8) -> list[dict]:
    from sadcli.segment import segment_record

    return [segment_record(r) for r in structured_records(n)]


def write_jsonl(path, records) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return str(path)


def make_tiny(out_dir, tokenizer, *, layers: int = 4, vocab: int | None = None, head_scale: float = 30.0,
              seed: int = 0) -> str:
    """A LlamaConfig model (64 dims) saved with the embedded tokenizer. ``head_scale`` sharpens the
    output distribution (an untrained random model is nearly uniform over 49,152 tokens, unlike a
    real teacher)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab or len(tokenizer), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, tie_word_embeddings=False,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return str(out_dir)
