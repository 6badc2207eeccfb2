"""``--shard I/N``: a deterministic partition of episode ids across N machines (``sad collect``, ``sad eval``).

An episode belongs to shard ``I`` (0-based, ``0 <= I < N``) of ``N`` when::

    int.from_bytes(sha256(episode_id.encode("utf-8")).digest()[:8], "big") % N == I

The rule looks at the episode's own id only: not at ``--parallel``, timing, the machine, or which other
episodes were selected; so the N shards of one selection (same ``--split``, ``--episodes``, ``--offset``)
are disjoint and together hold exactly that selection, and ``cat shard-*.jsonl`` has the episodes of a
single run (in another order: sort by ``id`` to compare). Hashing (not contiguous blocks) spreads every
task type over all shards, so the shards take about the same time. No dependencies (stdlib only).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from sadcli.errors import InputError

T = TypeVar("T")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int   # I, 0-based
    count: int   # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, episode_id: str) -> bool:
        return shard_of(episode_id, self.count) == self.index


def shard_of(episode_id: str, count: int) -> int:
    """The shard (0-based) of ``episode_id`` among ``count``."""
    digest = hashlib.sha256(str(episode_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str | None) -> Shard | None:
    """``"I/N"`` -> Shard (None -> None); anything else is an ``InputError`` naming the fix."""
    if text is None:
        return None
    m = _SHARD.match(text)
    hint = "write --shard I/N with 0 <= I < N, e.g. --shard 0/4 ... --shard 3/4 on four machines"
    if not m:
        raise InputError(f"--shard {text!r} is not I/N", hint=hint)
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise InputError(f"--shard {text}: N must be at least 1", hint=hint)
    if i >= n:
        raise InputError(f"--shard {text}: I must be below N (shards are numbered 0 to {n - 1})", hint=hint)
    return Shard(i, n)


def shard_tasks(tasks: Sequence[T], shard: Shard | None, key=lambda t: t.id) -> list[T]:
    """The tasks of ``shard`` (all of them for None), in their original order."""
    if shard is None:
        return list(tasks)
    return [t for t in tasks if shard.owns(key(t))]
