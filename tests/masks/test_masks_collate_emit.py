"""Padding into tensors, and --emit records read back without re-tokenizing."""

from __future__ import annotations

import json

import pytest
import torch
from masks_helpers import HOTPOT, make_record

from sadcli.errors import InputError
from sadcli.labels import ACT, IGNORE_INDEX, PAD, REASON
from sadcli.masks import build_examples, collate, read_examples, span_masks, to_emit_record


@pytest.fixture
def examples(tok):
    recs = [make_record("q" * (i + 1), HOTPOT[: 1 + i % 2], rid=f"r{i}") for i in range(3)]
    return list(build_examples(recs, tok))


@pytest.mark.parametrize("side", ["right", "left"])
def test_collate_pads_with_pad_labels(examples, side):
    b = collate(examples, pad_token_id=2, padding_side=side, pad_to_multiple_of=8)
    T = b["input_ids"].shape[1]
    assert T % 8 == 0 and T >= max(len(e) for e in examples)
    for k in ("input_ids", "attention_mask", "labels", "token_labels"):
        assert b[k].shape == (3, T) and b[k].dtype == torch.long
    for i, e in enumerate(examples):
        n = len(e)
        real = slice(0, n) if side == "right" else slice(T - n, T)
        pad = slice(n, T) if side == "right" else slice(0, T - n)
        assert b["input_ids"][i, real].tolist() == e.input_ids
        assert b["token_labels"][i, real].tolist() == e.token_labels
        assert b["labels"][i, real].tolist() == e.labels
        assert (b["attention_mask"][i, pad] == 0).all() and (b["attention_mask"][i, real] == 1).all()
        assert (b["labels"][i, pad] == IGNORE_INDEX).all()
        assert (b["token_labels"][i, pad] == PAD).all()
        assert (b["input_ids"][i, pad] == 2).all()
    m_r, m_a, m_o = span_masks(b["token_labels"])
    total = m_r.long() + m_a.long() + m_o.long()
    assert torch.equal(total, b["attention_mask"])  # exactly one on real tokens, none on padding
    assert torch.equal(m_r | m_a, b["labels"] != IGNORE_INDEX)


def test_emit_round_trip(tmp_path, examples):
    p = tmp_path / "m.jsonl"
    with p.open("w") as fh:
        for e in examples:
            e.extra["success"] = True
            fh.write(json.dumps(to_emit_record(e, tokenizer="smollm2-135m", render="text")) + "\n")
    back = list(read_examples(str(p)))
    assert [(b.id, b.input_ids, b.token_labels, b.labels, b.attention_mask) for b in back] == \
           [(e.id, e.input_ids, e.token_labels, e.labels, e.attention_mask) for e in examples]
    assert back[0].extra == {"success": True}
    assert back[1].stats == examples[1].stats
    assert any(lab == ACT for lab in back[0].token_labels) and any(lab == REASON for lab in back[0].token_labels)


@pytest.mark.parametrize("rec,msg", [
    ({"id": "a", "text": "x"}, "not a `sad mask-check --emit` record"),
    ({"id": "a", "input_ids": [1, 2], "token_labels": [0]}, "has 2 entries"),
    ({"id": "a", "input_ids": [1, 2], "token_labels": [0, 5]}, "token_labels"),
])
def test_read_examples_errors_name_the_line(tmp_path, examples, rec, msg):
    p = tmp_path / "m.jsonl"
    good = to_emit_record(examples[0])
    p.write_text(json.dumps(good) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(InputError) as e:
        list(read_examples(str(p)))
    assert str(e.value).startswith(f"{p}:2: ") and msg in str(e.value)
