"""Batches for training: length-grouped, padding-aware, seeded, resumable, curriculum-aware.

The order of every epoch is a pure function of ``(seed, epoch)``, so a resumed run only needs the
index of the next micro-batch to continue with exactly the same data.

Curriculum fields (written by ``sad curriculum``, read here; see docs/distill.md):

- ``curriculum_stage`` (int, >= 0): stages are presented in increasing order (0 = easiest);
  records inside a stage are shuffled (seeded, per epoch) and length-grouped.
- ``curriculum_rank`` (number): easy-to-hard position. Without stages, records are presented in
  increasing rank (ties shuffled); with stages, rank orders nothing inside a stage (the stage is
  shuffled) but it is validated and recorded.

Either every record carries the field or none does; a mix is an error.
"""

from __future__ import annotations

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

    Without a curriculum: seeded shuffle, length-grouped. With stages: stage 0's batches first, then
    stage 1's, ...; each stage shuffled and length-grouped on its own (a batch never mixes stages).
    With ranks only: increasing rank, ties shuffled, cut into consecutive batches.
    """
    rng = random.Random(f"{seed}:{epoch}")
    n = len(lengths)
    if curriculum is None or not curriculum.active:
        order = list(range(n))
        rng.shuffle(order)
        return _length_grouped(order, lengths, batch_size, length_group, rng)
    if curriculum.stages is not None:
        batches: list[list[int]] = []
        for stage in sorted(set(curriculum.stages)):
            members = [i for i in range(n) if curriculum.stages[i] == stage]
            rng.shuffle(members)
            batches.extend(_length_grouped(members, lengths, batch_size, length_group, rng))
        return batches
    assert curriculum.ranks is not None
    tiebreak = [rng.random() for _ in range(n)]
    order = sorted(range(n), key=lambda i: (curriculum.ranks[i], tiebreak[i]))
    return [order[j:j + batch_size] for j in range(0, n, batch_size)]


class BatchSchedule:
    """Micro-batches across epochs, addressable by a global micro-batch index (for resume).

    ``schedule[k]`` is ``(epoch, batch)`` for the k-th micro-batch of the whole run.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int, length_group: int = 50,
                 curriculum: Curriculum | None = None):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.length_group = length_group
        self.curriculum = curriculum
        self._cache: dict[int, list[list[int]]] = {}
        self.per_epoch = len(self.epoch(0))  # same count every epoch (stage sizes are fixed)

    def epoch(self, e: int) -> list[list[int]]:
        if e not in self._cache:
            self._cache = {e: epoch_batches(self.lengths, self.batch_size, seed=self.seed, epoch=e,
                                            length_group=self.length_group, curriculum=self.curriculum)}
        return self._cache[e]

    def __getitem__(self, k: int) -> tuple[int, list[int]]:
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
    import torch

    from sadcli.labels import PAD

    T = max(len(ex.input_ids) for ex in examples)
    B = len(examples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    att = torch.zeros((B, T), dtype=torch.long)
    lab = torch.full((B, T), PAD, dtype=torch.long)
    for b, ex in enumerate(examples):
        n = len(ex.input_ids)
        ids[b, :n] = torch.as_tensor(list(ex.input_ids), dtype=torch.long)
        att[b, :n] = 1
        lab[b, :n] = torch.as_tensor(list(ex.token_labels), dtype=torch.long)
    return {"input_ids": ids, "attention_mask": att, "token_labels": lab}


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of padding tokens over all batches (0 = none)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    return 0.0 if padded == 0 else 1 - real / padded
