"""Batches for training: length-grouped, padding-aware, seeded, resumable, curriculum-paced.

Every micro-batch is a pure function of ``(seed, global micro-batch index)`` (and of the epoch for the
epoch-based orders), so a resumed run only needs the index of the next micro-batch to continue with
exactly the same data, and every DDP rank computes the same schedule.

Curriculum fields (written by ``sad curriculum``, read here; see docs/curriculum.md):

- ``curriculum_rank`` (number in (0, 1]): the empirical CDF of the record's complexity score;
- ``curriculum_stage`` (int, >= 0): equal-count buckets of the score (0 = easiest).

Either every record carries a field or none does; a mix is an error. Step windows of one record
(``--window steps``) inherit its fields.

Pacing (``--curriculum``, :class:`Pacing`):

- ``none``: a seeded shuffle per epoch, length-grouped (curriculum fields ignored);
- ``sorted``: each epoch one pass easy -> hard by rank (by stage when there is no rank), ties shuffled;
- ``stages``: baby steps — with K stages and a run of S optimizer steps, during steps
  ``[s*S/K, (s+1)*S/K)`` micro-batches are drawn uniformly (without replacement inside a micro-batch)
  from the records of stages ``<= s``;
- ``competence``: Platanios et al. (2019) — at optimizer step t, micro-batches are drawn uniformly
  from the records with rank ``<= c(t) = min(1, sqrt(t (1 - c0^2) / T + c0^2))``
  (:func:`competence`; ``c0`` default 0.1 and ``T`` default half the run are this project's choices).

In the sampled modes the pool depends on the optimizer step only, never on the rank or the
accumulation micro-batch, so every DDP rank draws from the same competence set.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sadcli.errors import InputError


@dataclass(frozen=True)
class Curriculum:
    """Per-example ordering keys; ``None`` entries mean the field is absent."""

    stages: tuple[int, ...] | None
    ranks: tuple[float, ...] | None

    @property
    def active(self) -> bool:
        return self.stages is not None or self.ranks is not None

    def expand(self, record_index: Sequence[int]) -> Curriculum:
        """Per-example keys from per-record keys (``record_index[i]``: the record of example i)."""
        pick = lambda v: None if v is None else tuple(v[j] for j in record_index)  # noqa: E731
        return Curriculum(pick(self.stages), pick(self.ranks))


CURRICULA = ("none", "sorted", "stages", "competence")


@dataclass(frozen=True)
class Pacing:
    """How the curriculum is paced (``sad distill --curriculum``; see the module docstring)."""

    mode: str = "none"
    c0: float = 0.1          # competence at step 0
    steps: int = 0           # T, optimizer steps to full competence / through the stages (0 = half the run)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "c0": self.c0, "steps": self.steps}


def competence(t: float, T: float, c0: float) -> float:
    """Platanios et al. (2019), square-root competence: ``min(1, sqrt(t (1 - c0^2) / T + c0^2))``."""
    if T <= 0:
        return 1.0
    return min(1.0, math.sqrt(t * (1.0 - c0 * c0) / T + c0 * c0))


def resolve_pacing(requested: str | None, curriculum: Curriculum, *, c0: float = 0.1, steps: int = 0) -> Pacing:
    """The pacing to use: ``requested``, or ``sorted`` when the records carry curriculum fields (else ``none``)."""
    mode = requested or ("sorted" if curriculum.active else "none")
    if mode not in CURRICULA:
        raise InputError(f"unknown curriculum {mode!r}", hint="use one of: " + ", ".join(CURRICULA))
    hint = "order the data first: sad curriculum seg.jsonl -o ordered.jsonl"
    if mode != "none" and not curriculum.active:
        raise InputError(f"--curriculum {mode}: the records carry no curriculum_rank/curriculum_stage", hint=hint)
    if mode == "stages" and curriculum.stages is None:
        raise InputError("--curriculum stages: the records carry no curriculum_stage", hint=hint)
    if mode == "competence" and curriculum.ranks is None:
        raise InputError("--curriculum competence: the records carry no curriculum_rank", hint=hint)
    if mode == "competence" and curriculum.ranks is not None and any(not 0 < r <= 1 for r in curriculum.ranks):
        raise InputError("--curriculum competence: curriculum_rank must lie in (0, 1] (an empirical CDF)", hint=hint)
    if not 0 < c0 <= 1:
        raise InputError(f"--c0 must be in (0, 1], got {c0}")
    if steps < 0:
        raise InputError(f"--curriculum-steps must be >= 0, got {steps}")
    return Pacing(mode, float(c0), int(steps))


def read_curriculum(records: Sequence[dict[str, Any]], where: Sequence[tuple[str, int | str]] | None = None
                    ) -> Curriculum:
    """Collect and validate ``curriculum_stage`` / ``curriculum_rank`` from records (all or none)."""

    def collect(key: str, cast: type) -> tuple | None:
        present = [key in r for r in records]
        if not any(present):
            return None
        if not all(present):
            i = present.index(False)
            file, line = where[i] if where else (None, None)
            raise InputError(f"record has no {key!r} but others do", file=file, line=line,
                             hint="a curriculum needs the field on every record (re-run sad curriculum)")
        out = []
        for i, r in enumerate(records):
            v = r[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (cast is int and int(v) != v) \
                    or (cast is int and v < 0):
                file, line = where[i] if where else (None, None)
                raise InputError(f"{key} must be a {'non-negative integer' if cast is int else 'number'}, "
                                 f"got {v!r}", file=file, line=line)
            out.append(cast(v))
        return tuple(out)

    return Curriculum(collect("curriculum_stage", int), collect("curriculum_rank", float))


def fingerprint_settings(render: str, max_length: int | None, truncate: str, window: str) -> dict[str, Any]:
    """The settings hashed with the examples into a data fingerprint (segmented input): the teacher cache
    and ``sad curriculum --teacher-cache`` rebuild examples with them and compare fingerprints."""
    return {"render": render, "max_length": max_length, "truncate": truncate, "emitted": False, "window": window}


def _length_grouped(indices: list[int], lengths: Sequence[int], batch_size: int, window: int,
                    rng: random.Random) -> list[list[int]]:
    """Shuffle-then-sort inside windows of ``window`` batches (the HF LengthGroupedSampler idea).

    ``indices`` arrive already shuffled; each window is sorted by length (longest first) and cut into
    batches, then the batches are shuffled, so padding is low but the order stays random.
    """
    size = batch_size * window
    batches: list[list[int]] = []
    for start in range(0, len(indices), size):
        chunk = sorted(indices[start:start + size], key=lambda i: -lengths[i])
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def epoch_batches(lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int,
                  length_group: int = 50, curriculum: Curriculum | None = None) -> list[list[int]]:
    """All micro-batches (lists of example indices) of one epoch, deterministic in (seed, epoch).

    Without a curriculum: seeded shuffle, length-grouped. With ranks (the ``sorted`` pacing):
    increasing rank, ties shuffled, cut into consecutive batches. With stages only: stage 0's batches
    first, then stage 1's, ...; each stage shuffled and length-grouped on its own (a batch never mixes
    stages).
    """
    rng = random.Random(f"{seed}:{epoch}")
    n = len(lengths)
    if curriculum is None or not curriculum.active:
        order = list(range(n))
        rng.shuffle(order)
        return _length_grouped(order, lengths, batch_size, length_group, rng)
    if curriculum.ranks is not None:
        tiebreak = [rng.random() for _ in range(n)]
        order = sorted(range(n), key=lambda i: (curriculum.ranks[i], tiebreak[i]))
        return [order[j:j + batch_size] for j in range(0, n, batch_size)]
    if curriculum.stages is not None:
        batches: list[list[int]] = []
        for stage in sorted(set(curriculum.stages)):
            members = [i for i in range(n) if curriculum.stages[i] == stage]
            rng.shuffle(members)
            batches.extend(_length_grouped(members, lengths, batch_size, length_group, rng))
        return batches
    raise AssertionError("unreachable")


class BatchSchedule:
    """Micro-batches across the run, addressable by a global micro-batch index (for resume).

    ``schedule[k]`` is ``(epoch, batch)`` for the k-th micro-batch of the whole run (all processes:
    rank r of W takes ``k = (step * grad_accum + j) * W + r``). ``micro_per_step`` (grad_accum x W)
    and ``total_steps`` place a micro-batch at its optimizer step, which the sampled pacings need.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int, length_group: int = 50,
                 curriculum: Curriculum | None = None, pacing: Pacing | None = None, micro_per_step: int = 1,
                 total_steps: int = 0):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.length_group = length_group
        self.pacing = pacing or Pacing("sorted" if curriculum is not None and curriculum.active else "none")
        self.curriculum = curriculum if self.pacing.mode != "none" else None
        self.micro_per_step = max(1, micro_per_step)
        self.total_steps = total_steps
        self._cache: dict[int, list[list[int]]] = {}
        n = len(self.lengths)
        if self.pacing.mode in ("stages", "competence"):
            assert self.curriculum is not None
            self.per_epoch = max(1, -(-n // batch_size))
            if self.pacing.mode == "stages":
                assert self.curriculum.stages is not None
                levels = sorted(set(self.curriculum.stages))
                level = {v: i for i, v in enumerate(levels)}
                self.n_stages = len(levels)
                key = [float(level[v]) for v in self.curriculum.stages]
            else:
                assert self.curriculum.ranks is not None
                key = list(self.curriculum.ranks)
            self._order = sorted(range(n), key=lambda i: (key[i], i))   # easy -> hard
            self._keys = [key[i] for i in self._order]
        else:
            self.per_epoch = len(self.epoch(0))  # same count every epoch (stage sizes are fixed)

    # --- pacing -------------------------------------------------------------------------------
    @property
    def curriculum_steps(self) -> int:
        """T: steps to full competence / through all stages (``pacing.steps``, default half the run)."""
        if self.pacing.mode == "stages":
            return self.pacing.steps or max(1, self.total_steps)
        return self.pacing.steps or max(1, self.total_steps // 2)

    def competence_at(self, step: int) -> float:
        """c(t) of the competence pacing; for stages, the share of stages open; 1 otherwise."""
        if self.pacing.mode == "competence":
            return competence(step, self.curriculum_steps, self.pacing.c0)
        if self.pacing.mode == "stages":
            return (self.stage_at(step) + 1) / self.n_stages
        return 1.0

    def stage_at(self, step: int) -> int:
        return min(self.n_stages - 1, step * self.n_stages // self.curriculum_steps)

    def pool_size(self, step: int) -> int:
        """How many examples the sampler may draw from at optimizer ``step``."""
        if self.pacing.mode == "competence":
            c = self.competence_at(step)
            m = bisect.bisect_right(self._keys, c + 1e-12)
            # fewer than 1/c0 records: no rank is that small yet -> the easiest record(s)
            return m if m else bisect.bisect_right(self._keys, self._keys[0])
        if self.pacing.mode == "stages":
            return bisect.bisect_right(self._keys, float(self.stage_at(step)))
        return len(self.lengths)

    def pool(self, step: int) -> list[int]:
        """The example indices the sampler draws from at optimizer ``step`` (easy -> hard)."""
        if self.pacing.mode in ("stages", "competence"):
            return self._order[:self.pool_size(step)]
        return list(range(len(self.lengths)))

    def state(self, next_micro: int) -> dict[str, Any]:
        """What a checkpoint records about the sampler (the schedule itself is a pure function)."""
        step = next_micro // self.micro_per_step
        out: dict[str, Any] = {**self.pacing.to_dict(), "seed": self.seed, "next_micro": next_micro,
                               "micro_per_step": self.micro_per_step, "total_steps": self.total_steps}
        if self.pacing.mode in ("stages", "competence"):
            out.update(curriculum_steps=self.curriculum_steps, competence=self.competence_at(step),
                       pool=self.pool_size(step))
        return out

    # --- batches ------------------------------------------------------------------------------
    def epoch(self, e: int) -> list[list[int]]:
        if e not in self._cache:
            self._cache = {e: epoch_batches(self.lengths, self.batch_size, seed=self.seed, epoch=e,
                                            length_group=self.length_group, curriculum=self.curriculum)}
        return self._cache[e]

    def __getitem__(self, k: int) -> tuple[int, list[int]]:
        if self.pacing.mode in ("stages", "competence"):
            pool = self.pool(k // self.micro_per_step)
            rng = random.Random(f"{self.seed}:{self.pacing.mode}:{k}")
            return k // self.per_epoch, rng.sample(pool, min(self.batch_size, len(pool)))
        e, j = divmod(k, self.per_epoch)
        return e, self.epoch(e)[j]

    def iter_from(self, k: int) -> Iterator[tuple[int, list[int]]]:
        while True:
            yield self[k]
            k += 1


def pad_batch(examples: Sequence[Any], pad_id: int) -> dict[str, Any]:
    """Pad a micro-batch to its own longest sequence (right padding), as tensors.

    Each example has ``input_ids`` and ``token_labels`` (lists of ints; labels from sadcli.labels).
    Returns ``input_ids`` [B, T] long, ``attention_mask`` [B, T] long, ``token_labels`` [B, T] long
    (``PAD`` = -1 on padding), with T = the longest example in the batch.
    """
    import numpy as np
    import torch

    from sadcli.labels import PAD

    T = max(len(ex.input_ids) for ex in examples)
    B = len(examples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    att = torch.zeros((B, T), dtype=torch.long)
    lab = torch.full((B, T), PAD, dtype=torch.long)
    for b, ex in enumerate(examples):
        n = len(ex.input_ids)
        ids[b, :n] = torch.from_numpy(np.asarray(ex.input_ids, dtype=np.int64))  # lists or cached numpy views
        att[b, :n] = 1
        lab[b, :n] = torch.from_numpy(np.asarray(ex.token_labels, dtype=np.int64))
    return {"input_ids": ids, "attention_mask": att, "token_labels": lab}


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of padding tokens over all batches (0 = none)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    return 0.0 if padded == 0 else 1 - real / padded
