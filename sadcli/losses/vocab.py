"""Vocabulary domains: V_a for ``action_vocab="restricted"``, V_r / V_a for ``span_vocab="bucketed"``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from sadcli.labels import ACT, REASON


def build_action_vocab(examples: Iterable[tuple[torch.Tensor, torch.Tensor]], extra_ids: Iterable[int] = ()
                       ) -> torch.Tensor:
    """Token ids that occur in action spans, plus ``extra_ids`` (e.g. the end-of-turn / EOS id).

    Args:
        examples: ``(input_ids, token_labels)`` pairs, each ``[T]`` or ``[B, T]`` (tensors or lists).
        extra_ids: ids always included.
    Returns:
        ``[V_a]`` long, sorted, distinct.
    """
    seen: set[int] = {int(i) for i in extra_ids}
    for ids, labels in examples:
        ids_t = torch.as_tensor(ids).reshape(-1)
        lab_t = torch.as_tensor(labels).reshape(-1)
        if ids_t.shape != lab_t.shape:
            raise ValueError(f"input_ids {list(ids_t.shape)} and token_labels {list(lab_t.shape)} differ")
        seen.update(ids_t[lab_t == ACT].tolist())
    return torch.tensor(sorted(seen), dtype=torch.long)


MARKERS = ("[REASON]", "[ACT]", "[OBS]", "Thought:", "Action:", "Observation:", "think:", "OK.")
"""Structural marker strings of the supported trajectory formats (paper and native markers)."""


def marker_token_ids(tokenizer: Any) -> list[int]:
    """Token ids of the structural markers (as they appear at a line start, after a space or a newline)
    plus the tokenizer's EOS / end-of-turn id: every span kind's vocabulary domain holds them, so a
    student that writes ``[REASON]`` where an action belongs is compared on that token, not lumped."""
    ids: set[int] = set()
    for m in MARKERS:
        for variant in (m, " " + m, "\n" + m):
            ids.update(int(i) for i in tokenizer(variant, add_special_tokens=False)["input_ids"])
    for attr in ("eos_token_id", "pad_token_id"):
        v = getattr(tokenizer, attr, None)
        if isinstance(v, int):
            ids.add(v)
    return sorted(ids)


def build_span_vocab(examples: Iterable[tuple[Any, Any]], extra_ids: Iterable[int] = ()) -> dict[int, torch.Tensor]:
    """The vocabulary domain of each span kind for ``span_vocab="bucketed"`` (paper Eq. 8, V_r and V_a).

    ``{REASON: [V_r], ACT: [V_a]}``: the token ids that occur in that kind's spans of the training data,
    plus ``extra_ids`` (structural markers and end-of-turn: :func:`marker_token_ids`).

    Args:
        examples: ``(input_ids, token_labels)`` pairs, each ``[T]`` or ``[B, T]`` (tensors or lists).
        extra_ids: ids added to every domain.
    Returns:
        kind -> ``[V_k]`` long, sorted, distinct.
    """
    extra = {int(i) for i in extra_ids}
    seen: dict[int, set[int]] = {REASON: set(extra), ACT: set(extra)}
    for ids, labels in examples:
        ids_t = torch.as_tensor(ids).reshape(-1)
        lab_t = torch.as_tensor(labels).reshape(-1)
        if ids_t.shape != lab_t.shape:
            raise ValueError(f"input_ids {list(ids_t.shape)} and token_labels {list(lab_t.shape)} differ")
        for k in (REASON, ACT):
            seen[k].update(ids_t[lab_t == k].tolist())
    return {k: torch.tensor(sorted(v), dtype=torch.long) for k, v in seen.items()}
