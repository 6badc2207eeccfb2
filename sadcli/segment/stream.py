"""Segmenting a stream of input lines, with the stop/skip error policy shared by the commands.

:func:`segment_lines` works in this process. :func:`segment_parallel` spreads chunks of lines over worker
processes and hands the results back in input order: the output, the rejects and the first error are the
ones the one-process run gives (a worker's error is raised when its line's turn comes, located at FILE:LINE).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sadcli.errors import InputError
from sadcli.jsonl import Line, dumps_line, parse_line
from sadcli.segment.core import default_id_for, segment_record
from sadcli.segment.stats import SegmentStats
from sadcli.segment.template import Template

CHUNK = 4000  # lines per worker task (few hand-offs between processes: each waits for the scheduler)


def _default_id(line: Line) -> str:
    where = line.line
    if isinstance(where, str) and where.startswith("row "):  # a dataset row: file:N, as for a JSON line
        where = int(where[4:])
    return default_id_for(line.file, where)


def segment_lines(lines: Iterable[Line], *, fmt: str = "auto", markers: str = "paper",
                  template: Template | None = None, on_error: str = "stop",
                  reject: Callable[[Line, InputError], None] | None = None) -> Iterator[dict]:
    """Yield segmented records. A bad line raises :class:`InputError` located at FILE:LINE, or, with
    ``on_error="skip"``, is passed to ``reject`` and skipped."""
    for line in lines:
        try:
            rec = parse_line(line)
            out = segment_record(rec, fmt=fmt, markers=markers, template=template, default_id=_default_id(line))
        except InputError as e:
            e.located(line.file, line.line)
            if on_error == "skip":
                if reject is not None:
                    reject(line, e)
                continue
            raise
        yield out


# --- worker processes -------------------------------------------------------------------------------

@dataclass
class Chunk:
    """What a worker sends back for one chunk of lines, in input order."""

    out: list[Any]                            # segmented records (dicts), or their JSON lines (bytes)
    errors: list[tuple[int, tuple]]           # (position in the chunk, InputError fields), in order
    stats: SegmentStats                       # counts of the records in ``out``


def _error_fields(e: InputError) -> tuple:
    return (type(e).__name__, e.message, e.hint, e.file, e.line)


def _error_from(fields: tuple) -> InputError:
    from sadcli import errors

    cls = getattr(errors, fields[0], InputError)
    return cls(fields[1], hint=fields[2], file=fields[3], line=fields[4])


def _segment_chunk(lines: list[Line], fmt: str, markers: str, template: Template | None, as_bytes: bool,
                   stop: bool) -> Chunk:
    """Worker side: segment one chunk; with ``stop`` the chunk ends at its first error."""
    chunk = Chunk([], [], SegmentStats())
    for i, line in enumerate(lines):
        try:
            rec = segment_record(parse_line(line), fmt=fmt, markers=markers, template=template,
                                 default_id=_default_id(line))
        except InputError as e:
            chunk.errors.append((i, _error_fields(e.located(line.file, line.line))))
            if stop:
                break
            continue
        chunk.stats.add(rec)
        chunk.out.append(dumps_line(rec) if as_bytes else rec)
    return chunk


def _merge(into: SegmentStats, part: SegmentStats) -> None:
    into.trajectories += part.trajectories
    into.steps += part.steps
    into.with_warnings += part.with_warnings
    for k, v in part.spans.items():
        into.spans[k] = into.spans.get(k, 0) + v
    for k, v in part.chars.items():
        into.chars[k] = into.chars.get(k, 0) + v
    for k, v in part.formats.items():
        into.formats[k] = into.formats.get(k, 0) + v


def segment_parallel(lines: Iterable[Line], *, workers: int, fmt: str = "auto", markers: str = "paper",
                     template: Template | None = None, on_error: str = "stop",
                     reject: Callable[[Line, InputError], None] | None = None, stats: SegmentStats,
                     as_bytes: bool = False, chunk_size: int | None = None) -> Iterator[Any]:
    """Like :func:`segment_lines` over ``workers`` processes: yields records (or, with ``as_bytes``, their
    JSON lines) in input order and adds their counts to ``stats``; a bad line raises at its turn (nothing
    after it is yielded) or goes to ``reject``. At most ``4 * workers`` chunks are in flight, so memory
    stays bounded on any input size."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    it = iter(lines)
    chunk_size = chunk_size or CHUNK
    stop = on_error != "skip"
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_sigint) as pool:
        pending: deque = deque()

        def submit() -> bool:
            batch = list(islice(it, chunk_size))
            if not batch:
                return False
            pending.append((batch, pool.submit(_segment_chunk, batch, fmt, markers, template, as_bytes, stop)))
            return True

        more = True
        while more and len(pending) < 4 * workers:
            more = submit()
        try:
            while pending:
                batch, fut = pending.popleft()
                chunk = fut.result()
                if more:
                    more = submit()
                _merge(stats, chunk.stats)  # the good records of the chunk (a stopping chunk ends at its error)
                out = iter(chunk.out)
                emitted = 0
                for k, (pos, fields) in enumerate(chunk.errors):
                    good_before = pos - k   # good records come before the bad line in input order
                    yield from islice(out, good_before - emitted)
                    emitted = good_before
                    err = _error_from(fields)
                    if stop:
                        raise err
                    if reject is not None:
                        reject(batch[pos], err)
                yield from out
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process (which stops them), so no worker prints a traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)

