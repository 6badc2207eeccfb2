"""Collect teacher trajectories: the library side of ``sad collect``.

``collect(env, teacher, ...)`` yields one schema-v1 record per finished episode; ``read_done_ids`` and
``repair_tail`` support ``--resume`` on an output file written one flushed line per episode.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sadcli.agent.loop import EnvPool, Policy
from sadcli.agent.scheduler import play
from sadcli.envs.base import Task
from sadcli.envs.registry import EnvSpec
from sadcli.errors import InputError
from sadcli.jsonl import loads


@dataclass
class CollectStats:
    planned: int = 0          # episodes this run plays (after --resume skipped the done ones)
    skipped: int = 0          # already in the output (--resume)
    done: int = 0
    success: int = 0
    failed: int = 0           # episodes that ended with an error (env fault, policy failure)
    filtered: int = 0         # not written because of --only-success
    truncated: int = 0        # stopped by the step budget (--max-steps)
    repeated: int = 0         # not written because an action repeats more than --max-repeats times
    written: int = 0
    steps: int = 0
    t0: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.t0, 1e-9)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.elapsed

    @property
    def success_rate(self) -> float:
        return self.success / self.done if self.done else 0.0


def select_tasks(all_tasks: list[Task], episodes: int | None, offset: int = 0) -> list[Task]:
    """The first ``episodes`` tasks after ``offset`` (0/None: all), in the environment's stable order."""
    if offset < 0:
        raise InputError("--offset must be >= 0")
    chosen = all_tasks[offset:]
    if episodes:
        chosen = chosen[:episodes]
    return chosen


def repair_tail(path: str) -> int:
    """Cut a half-written last line (a run killed while writing it); return the bytes removed."""
    if not os.path.exists(path):
        return 0
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return 0
        # find the last newline
        pos = size - 1
        chunk = 65536
        keep = 0
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            data = fh.read(pos - start)
            j = data.rfind(b"\n")
            if j != -1:
                keep = start + j + 1
                break
            pos = start
        fh.truncate(keep)
        return size - keep


def read_done_ids(path: str) -> set[str]:
    """Ids of the episodes already in ``path`` (missing file: none)."""
    ids: set[str] = set()
    if not os.path.exists(path):
        return ids
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                rec = loads(raw)
            except ValueError:
                raise InputError("invalid JSON line in the file to resume", file=path, line=lineno,
                                 hint="remove or fix the line, or start over without --resume") from None
            if isinstance(rec, dict) and "id" in rec:
                ids.add(str(rec["id"]))
    return ids


def max_repeat(record: dict) -> int:
    """How often the most repeated action of an episode was taken (0 for no steps)."""
    counts = Counter(s.get("action") for s in record.get("steps") or [])
    return max(counts.values(), default=0)


def collect(pool: EnvPool, tasks: list[Task], policy: Policy, *, done_ids: set[str] | None = None,
            only_success: bool = False, max_steps: int | None = None, max_repeats: int | None = None,
            on_step: Callable[[CollectStats], None] | None = None,
            stats: CollectStats | None = None) -> Iterator[dict]:
    """Play ``tasks`` (minus ``done_ids``) and yield the records to write.

    Filters, each counted in ``stats``: ``only_success`` drops failed episodes; ``max_repeats`` drops an
    episode in which one action (the same text) was taken more than that many times — the loops of a
    confused expert (``examine desk 1`` x 13). ``max_steps`` is the step budget: longer episodes are
    cut (``meta.truncated``) and counted.
    """
    stats = stats or CollectStats()
    done_ids = done_ids or set()
    todo = [t for t in tasks if t.id not in done_ids]
    stats.skipped = len(tasks) - len(todo)
    stats.planned = len(todo)

    def _step(n: int) -> None:
        stats.steps += n
        if on_step:
            on_step(stats)

    for rec in play(pool, todo, policy, max_steps=max_steps, on_step=_step):
        stats.done += 1
        stats.success += bool(rec["success"])
        stats.failed += "error" in rec["meta"]
        stats.truncated += bool(rec["meta"].get("truncated"))
        drop = None
        if only_success and not rec["success"]:
            stats.filtered += 1
            drop = "failed"
        elif max_repeats is not None and max_repeat(rec) > max_repeats:
            stats.repeated += 1
            drop = "repeats"
        if drop:
            if on_step:
                on_step(stats)
            continue
        stats.written += 1
        if on_step:
            on_step(stats)
        yield rec


def open_pool(env: str, options: dict | None = None, *, parallel: int = 1, in_process: bool = False,
              timeout: float | None = 300.0) -> EnvPool:
    return EnvPool(EnvSpec.parse(env, options), parallel, in_process=in_process, timeout=timeout)
