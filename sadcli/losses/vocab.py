"""The action vocabulary V_a for ``action_vocab="restricted"``."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from sadcli.labels import ACT


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
