"""Padding a list of examples into model-ready tensors (torch is imported on call)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sadcli.labels import ACT, IGNORE_INDEX, OBS, PAD, PROMPT, REASON
from sadcli.masks.types import MaskedExample


def collate(examples: Sequence[MaskedExample], pad_token_id: int, *, padding_side: str = "right",
            pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """Pad examples to one length.

    Returns a dict of torch tensors, all ``[B, T]``:
        ``input_ids`` (long, ``pad_token_id`` at padding), ``attention_mask`` (long, 0 at padding),
        ``labels`` (long, -100 at padding and at unsupervised tokens), ``token_labels`` (long,
        PROMPT=0 / REASON=1 / ACT=2 / OBS=3, PAD=-1 at padding).
    """
    import torch

    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    if not examples:
        raise ValueError("collate needs at least one example")
    t = max(len(e.input_ids) for e in examples)
    if pad_to_multiple_of:
        t = -(-t // pad_to_multiple_of) * pad_to_multiple_of
    b = len(examples)
    input_ids = torch.full((b, t), pad_token_id, dtype=torch.long)
    attention = torch.zeros((b, t), dtype=torch.long)
    labels = torch.full((b, t), IGNORE_INDEX, dtype=torch.long)
    token_labels = torch.full((b, t), PAD, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        sl = slice(0, n) if padding_side == "right" else slice(t - n, t)
        input_ids[i, sl] = torch.tensor(e.input_ids, dtype=torch.long)
        attention[i, sl] = torch.tensor(e.attention_mask, dtype=torch.long)
        labels[i, sl] = torch.tensor(e.labels, dtype=torch.long)
        token_labels[i, sl] = torch.tensor(e.token_labels, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "token_labels": token_labels}


def span_masks(token_labels: Any) -> tuple[Any, Any, Any]:
    """``(m_r, m_a, m_o)`` bool tensors ``[B, T]`` from ``token_labels`` ``[B, T]``; all False at PAD."""
    m_r = token_labels == REASON
    m_a = token_labels == ACT
    m_o = (token_labels == PROMPT) | (token_labels == OBS)
    return m_r, m_a, m_o
