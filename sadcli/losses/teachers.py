"""The three ways to give a teacher to the losses, and LM-head plumbing shared with the student.

- :class:`DenseTeacher` — teacher logits, ``[B, T, V]`` (all positions) or ``[N, V]`` (one row per
  supervised position, in :class:`~sadcli.losses.alignment.SupervisedPositions` order).
- :class:`HiddenTeacher` — teacher final hidden states ``[B, T, H_t]`` or ``[N, H_t]`` plus the teacher's
  LM head (and its own logit transform): teacher logits are then computed only at supervised
  positions, chunk by chunk, like the student's.
- :class:`~sadcli.losses.sparse.SparseTeacher` — top-k ids/log-probs + tail mass per supervised position
  (offline caches, API teachers); defined in :mod:`sadcli.losses.sparse`.

A bare tensor is read as a :class:`DenseTeacher` and a ``(hidden, lm_head)`` tuple as a
:class:`HiddenTeacher`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sadcli.errors import SadError

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Head:
    """An LM head as ``logits = hidden @ weight.T + bias`` (fast, chunked path) or an opaque module.

    Attributes:
        weight: ``[V, H]`` or None when ``module`` is set.
        bias: ``[V]`` or None.
        module: a non-Linear ``nn.Module`` mapping ``[n, H] -> [n, V]`` (recomputed per chunk in backward).
    """

    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    module: Any = None

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[n, H]`` -> ``[n, V]`` in the head's dtype."""
        if self.module is not None:
            return self.module(hidden)
        return torch.nn.functional.linear(hidden.to(self.weight.dtype), self.weight, self.bias)

    @property
    def vocab_size(self) -> int | None:
        if self.weight is not None:
            return int(self.weight.shape[0])
        w = getattr(self.module, "weight", None)
        return int(w.shape[0]) if isinstance(w, torch.Tensor) else None


def as_head(lm_head: Any) -> Head:
    """Normalize an LM head: ``nn.Linear`` | weight tensor ``[V, H]`` | ``(weight, bias)`` | other module."""
    if isinstance(lm_head, Head):
        return lm_head
    if isinstance(lm_head, torch.Tensor):
        if lm_head.dim() != 2:
            raise SadError(f"an LM head weight must be [V, H], got {list(lm_head.shape)}")
        return Head(weight=lm_head)
    if isinstance(lm_head, (tuple, list)) and len(lm_head) == 2:
        w, b = lm_head
        return Head(weight=w, bias=b)
    if isinstance(lm_head, torch.nn.Linear):
        return Head(weight=lm_head.weight, bias=lm_head.bias)
    if isinstance(lm_head, torch.nn.Module):
        return Head(module=lm_head)
    raise SadError(f"cannot use {type(lm_head).__name__} as an LM head",
                   hint="pass an nn.Linear, a [V, H] weight, a (weight, bias) pair or a module")


@dataclass
class DenseTeacher:
    """Teacher logits (already transformed by the teacher model's own forward).

    Attributes:
        logits: ``[B, T, V]`` (gathered at supervised positions chunk by chunk) or ``[N, V]``.
    """

    logits: torch.Tensor


@dataclass
class HiddenTeacher:
    """Teacher final hidden states + LM head; logits computed at supervised positions only.

    Attributes:
        hidden: ``[B, T, H_t]`` or ``[N, H_t]``.
        lm_head: ``nn.Linear`` | ``[V, H_t]`` weight | ``(weight, bias)`` | module.
        transform: the teacher model's final-logit transform (see
            :func:`~sadcli.losses.transforms.logit_transform_for`), or None.
    """

    hidden: torch.Tensor
    lm_head: Any
    transform: Transform | None = None


@dataclass
class TeacherChunk:
    """Teacher rows for one chunk: dense fp32 logits ``[c, V]`` or sparse buckets."""

    logits: torch.Tensor | None = None        # [c, V] fp32, transformed
    ids: torch.Tensor | None = None           # [c, k]
    logprobs: torch.Tensor | None = None      # [c, k] fp32
    tail_logprob: torch.Tensor | None = None  # [c] fp32


class TeacherRows:
    """Uniform per-chunk access to a teacher, by supervised-row number (``0..N-1``)."""

    def __init__(self, teacher: Any, flat_index: torch.Tensor, batch_size: int, seq_len: int):
        from sadcli.losses.sparse import SparseTeacher

        self.sparse = isinstance(teacher, SparseTeacher)
        self.teacher = teacher
        n = int(flat_index.numel())
        if isinstance(teacher, DenseTeacher):
            src = teacher.logits
            self.vocab_size = int(src.shape[-1])
        elif isinstance(teacher, HiddenTeacher):
            src = teacher.hidden
            self.head = as_head(teacher.lm_head)
            self.vocab_size = self.head.vocab_size
        elif self.sparse:
            src = None
            teacher.validate(n)
            self.vocab_size = None
        else:
            raise SadError(f"unsupported teacher type {type(teacher).__name__}")
        self.src = None
        self.map = None
        if src is not None:
            if src.dim() == 3:
                if src.shape[0] != batch_size or src.shape[1] != seq_len:
                    raise SadError(f"teacher tensor is {list(src.shape)} but the batch is [{batch_size}, {seq_len}]")
                self.src = src.reshape(batch_size * seq_len, src.shape[-1])
                self.map = flat_index.to(src.device)
            elif src.dim() == 2:
                if src.shape[0] != n:
                    raise SadError(f"teacher has {src.shape[0]} rows but the batch has {n} supervised positions",
                                   hint="gather teacher rows with supervised_positions() for this loss config")
                self.src = src
            else:
                raise SadError(f"teacher tensor must be [B, T, D] or [N, D], got {list(src.shape)}")

    def chunk(self, rows: torch.Tensor) -> TeacherChunk:
        """Teacher data for supervised rows ``rows`` (``[c]`` long)."""
        with torch.no_grad():
            if self.sparse:
                t = self.teacher
                r = rows.to(t.ids.device)
                return TeacherChunk(ids=t.ids[r], logprobs=t.logprobs[r].float(),
                                    tail_logprob=t.tail_logprob[r].float())
            idx = rows if self.map is None else self.map[rows.to(self.map.device)]
            x = self.src.index_select(0, idx.to(self.src.device))
            if isinstance(self.teacher, HiddenTeacher):
                x = self.head(x)
                if self.teacher.transform is not None:
                    x = self.teacher.transform(x)
            return TeacherChunk(logits=x.float())


def as_teacher(teacher: Any) -> Any:
    """Tensor -> DenseTeacher; (hidden, lm_head) -> HiddenTeacher; dataclasses pass through."""
    if isinstance(teacher, torch.Tensor):
        return DenseTeacher(teacher)
    if isinstance(teacher, tuple) and len(teacher) == 2 and isinstance(teacher[0], torch.Tensor):
        return HiddenTeacher(teacher[0], teacher[1])
    return teacher
