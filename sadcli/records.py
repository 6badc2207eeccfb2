"""Trajectory records from JSONL or from a Hugging Face ``datasets`` dataset (Parquet / Arrow), one reader.

:func:`read_lines` / :func:`read_records` yield what :mod:`sadcli.jsonl` yields — ``(Line, dict)`` with the
location for error messages — whatever the input is:

- ``-`` or a ``.jsonl`` / ``.json`` file (or any other file): JSON lines, as :func:`sadcli.jsonl.read_lines`;
- a ``.parquet`` file, or a directory of ``*.parquet`` shards (read in name order): a Parquet dataset;
- an ``.arrow`` file (the Arrow IPC stream files ``datasets`` writes, or the IPC file format);
- a directory written by ``Dataset.save_to_disk`` (``state.json`` + ``dataset_info.json``): read with
  :func:`datasets.load_from_disk`.

Detection is by extension and directory contents (:func:`dataset_kind`). A row's location is
``FILE:row N`` (1-based, N counted inside that shard), so errors read ``Error: FILE:row N: what — hint``.

Rows written by ``sad segment --output-format parquet`` (:class:`ParquetWriter`) hold typed ``id``, ``text``
and ``spans`` columns (what a ``datasets`` user filters and maps on) plus ``sad_record``, the JSON of the
rest of the record with its key order, so reading them back gives exactly the dict that was written.
Any other dataset's rows are taken as they are, with a null top-level column value read as an absent field
(Arrow gives every row every column).

``datasets`` and ``pyarrow`` are imported only when a dataset is read or written: JSONL input never loads them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from sadcli.errors import InputError, SadError
from sadcli.jsonl import FIX_HINT, SKIP_HINT, Line, dumps, loads, parse_line
from sadcli.jsonl import read_lines as read_jsonl_lines

SAD_RECORD = "sad_record"          # JSON of the record, with null placeholders for the typed columns
TYPED = ("id", "text", "spans")    # columns stored typed (when the values fit the types)
SHARD_RE = re.compile(r"^data-\d{5}-of-\d{5}\.parquet$")
BATCH_ROWS = 1024                  # rows per Arrow record batch read or written
DATASET_EXTS = (".parquet", ".arrow")


def dataset_kind(path: str) -> str | None:
    """``"parquet"``, ``"arrow"``, ``"saved"`` (``save_to_disk``) or None (JSON lines)."""
    if path == "-":
        return None
    if os.path.isdir(path):
        names = os.listdir(path)
        if "state.json" in names and "dataset_info.json" in names:
            return "saved"
        if "dataset_dict.json" in names:
            return "saved"  # refused with a hint in _saved_rows
        if any(n.endswith(".parquet") for n in names):
            return "parquet"
        if any(n.endswith(".arrow") for n in names):
            return "arrow"
        return None
    if path.endswith(".parquet"):
        return "parquet"
    if path.endswith(".arrow"):
        return "arrow"
    return None


def is_dataset(path: str) -> bool:
    return dataset_kind(path) is not None


class RowLine(Line):
    """One dataset row: its location (``row N``) and the record; ``raw`` is its JSON line, made on demand."""

    def __init__(self, file: str, row: int, record: dict):
        self.file = file
        self.line = f"row {row}"
        self.row = row
        self.record = record

    @property  # type: ignore[override]
    def raw(self) -> bytes:  # a rejected row goes to --rejects (JSONL) as one line
        return dumps(self.record).encode("utf-8")

    def __repr__(self) -> str:
        return f"RowLine({self.file!r}, {self.row})"


def read_lines(path: str) -> Iterator[Line]:
    """Records of ``path`` with their location: JSON lines (:class:`Line`) or dataset rows (:class:`RowLine`)."""
    kind = dataset_kind(path)
    if kind is None:
        yield from read_jsonl_lines(path)
        return
    for file, row, rec in iter_rows(path, kind):
        yield RowLine(file, row, rec)


def read_records(path: str, *, hint: str = SKIP_HINT) -> Iterator[tuple[Line, dict]]:
    """``(Line, record)`` pairs from JSONL or a dataset; the first bad line or row raises :class:`InputError`."""
    for line in read_lines(path):
        yield line, parse_line(line, hint=hint)


__all__ = ["FIX_HINT", "SKIP_HINT", "ParquetWriter", "RowLine", "dataset_kind", "is_dataset", "iter_rows",
           "read_lines", "read_records", "record_from_row", "row_from_record"]


# --- reading ------------------------------------------------------------------------------------

def iter_rows(path: str, kind: str | None = None) -> Iterator[tuple[str, int, dict]]:
    """``(file, row, record)`` for every row of a dataset (``row`` 1-based inside ``file``)."""
    kind = kind or dataset_kind(path)
    if kind == "saved":
        yield from _saved_rows(path)
        return
    files = _files(path, ".parquet" if kind == "parquet" else ".arrow")
    for file in files:
        batches = _parquet_batches(file) if kind == "parquet" else _arrow_batches(file)
        row = 0
        for batch in batches:
            sad = SAD_RECORD in batch.schema.names
            for r in batch.to_pylist():
                row += 1
                try:
                    rec = record_from_row(r) if sad else {k: v for k, v in r.items() if v is not None}
                except InputError as e:
                    raise e.located(file, f"row {row}") from None  # type: ignore[arg-type]
                yield file, row, rec


def _files(path: str, ext: str) -> list[str]:
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise InputError(f"no such file: {path}", hint="check the path, or use - for stdin")
        return [path]
    files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(ext))
    return files


def _bad_file(file: str, what: str, err: Exception) -> InputError:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return InputError(f"not a readable {what} file ({msg})",
                      hint=f"check that it is a complete {what} file (an interrupted copy?), or give JSONL",
                      file=file)


def _parquet_batches(file: str) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(file, memory_map=True)
    except (pa.ArrowException, OSError) as e:
        raise _bad_file(file, "Parquet", e) from None
    try:
        yield from pf.iter_batches(batch_size=BATCH_ROWS)
    except (pa.ArrowException, OSError) as e:
        raise _bad_file(file, "Parquet", e) from None
    finally:
        pf.close()


def _arrow_batches(file: str) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    try:
        source = pa.memory_map(file)
    except (pa.ArrowException, OSError) as e:
        raise _bad_file(file, "Arrow", e) from None
    with source:
        try:
            reader: Any = ipc.open_stream(source)   # what datasets writes
            stream = True
        except pa.ArrowInvalid:
            source.seek(0)
            try:
                reader = ipc.open_file(source)
                stream = False
            except (pa.ArrowException, OSError) as e:
                raise _bad_file(file, "Arrow", e) from None
        try:
            if stream:
                yield from reader
            else:
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)
        except (pa.ArrowException, OSError) as e:
            raise _bad_file(file, "Arrow", e) from None


def _saved_rows(path: str) -> Iterator[tuple[str, int, dict]]:
    if os.path.exists(os.path.join(path, "dataset_dict.json")):
        splits = sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)))
        raise InputError("a DatasetDict (several splits), not one dataset", file=path,
                         hint="give one split's folder, e.g. " + os.path.join(path, splits[0] if splits else "train"))
    from datasets import load_from_disk

    try:
        ds = load_from_disk(path)
    except Exception as e:  # noqa: BLE001 - datasets raises many types for a damaged folder
        raise _bad_file(path, "save_to_disk dataset", e) from None
    sad = SAD_RECORD in ds.column_names
    row = 0
    for table in ds.with_format("arrow").iter(batch_size=BATCH_ROWS):
        for r in table.to_pylist():
            row += 1
            try:
                rec = record_from_row(r) if sad else {k: v for k, v in r.items() if v is not None}
            except InputError as e:
                raise e.located(path, f"row {row}") from None  # type: ignore[arg-type]
            yield path, row, rec


def record_from_row(row: dict) -> dict:
    """The record a :class:`ParquetWriter` row holds (the exact dict that was written)."""
    raw = row.get(SAD_RECORD)
    if not isinstance(raw, str):
        raise InputError(f"column {SAD_RECORD!r} is {'null' if raw is None else type(raw).__name__}, not JSON text",
                         hint="write the dataset with `sad segment --output-format parquet`")
    try:
        rec = loads(raw)
    except ValueError as e:
        raise InputError(f"column {SAD_RECORD!r} is not JSON ({str(e).splitlines()[0]})",
                         hint="write the dataset with `sad segment --output-format parquet`") from None
    if not isinstance(rec, dict):
        raise InputError(f"column {SAD_RECORD!r} holds a {type(rec).__name__}, not an object")
    for key in TYPED:
        v = row.get(key)
        if v is not None and key in rec:   # null column: the JSON holds the value (or it was null)
            rec[key] = v
    return rec


# --- writing ------------------------------------------------------------------------------------

def _schema() -> Any:
    import pyarrow as pa

    span = pa.struct([("kind", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("step", pa.int64())])
    return pa.schema([("id", pa.string()), ("text", pa.string()), ("spans", pa.list_(span)),
                      (SAD_RECORD, pa.string())], metadata={b"sad": b"records-v1"})


_SPAN_KEYS = ("kind", "start", "end", "step")


def _typed_spans(spans: Any) -> list | None:
    """``spans`` when every span fits the Arrow struct exactly (same keys, same order), else None."""
    if not isinstance(spans, list):
        return None
    for sp in spans:
        if not isinstance(sp, dict) or tuple(sp) != _SPAN_KEYS or not isinstance(sp["kind"], str):
            return None
        for k in ("start", "end", "step"):
            v = sp[k]
            if not isinstance(v, int) or isinstance(v, bool) or not -2**63 <= v < 2**63:
                return None
    return spans


def row_from_record(rec: dict) -> dict:
    """The Parquet row of one record: typed ``id``/``text``/``spans`` + the rest as JSON (key order kept)."""
    row: dict[str, Any] = {}
    rest = dict(rec)
    rid, text, spans = rec.get("id"), rec.get("text"), _typed_spans(rec.get("spans"))
    row["id"] = rid if isinstance(rid, str) else None
    row["text"] = text if isinstance(text, str) else None
    row["spans"] = spans
    for key in TYPED:
        if row[key] is not None:
            rest[key] = None     # placeholder: keeps the key's position
    row[SAD_RECORD] = dumps(rest)
    return row


class ParquetWriter:
    """Records in, ``N`` Parquet shards out (``data-0000i-of-0000N.parquet``), written atomically.

    Rows are first streamed to a temp Arrow file (bounded memory), then cut into ``shards`` contiguous,
    equal-count shards (the first ``n % N`` hold one more row), so reading the shards in name order gives
    the input order back. Everything is written in a temp folder beside ``out_dir`` and renamed into place
    on success; on an error or Ctrl-C nothing changes at ``out_dir``. An existing ``out_dir`` is replaced
    only when it holds nothing but shards of an earlier run (refused otherwise, before any work: see
    :func:`check_output_dir`).

    Give N a multiple of the number of training processes: ``datasets.distributed.split_dataset_by_node``
    then hands every rank whole shards (otherwise every rank reads every shard and skips rows).
    """

    def __init__(self, out_dir: str, shards: int = 1, *, compression: str = "zstd", what: str = "-o"):
        if shards < 1:
            raise SadError(f"--shards must be at least 1, got {shards}")
        self.out_dir = out_dir
        self.shards = shards
        self.compression = compression
        self.what = what
        self.count = 0
        self._buf: list[dict] = []
        self._tmp: str | None = None
        self._writer: Any = None
        self._sink: Any = None

    def __enter__(self) -> ParquetWriter:
        check_output_dir(self.out_dir, self.what)
        target = os.path.abspath(self.out_dir)
        parent = os.path.dirname(target)
        try:
            os.makedirs(parent, exist_ok=True)
            self._tmp = tempfile.mkdtemp(prefix=".sad-" + os.path.basename(target) + "-", dir=parent)
        except OSError as e:
            from sadcli.fsutil import os_error

            raise os_error(e, self.out_dir, f"cannot write {self.what}") from None
        return self

    def write(self, rec: dict) -> None:
        self._buf.append(row_from_record(rec))
        self.count += 1
        if len(self._buf) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        if not self._buf:
            return
        assert self._tmp is not None
        if self._writer is None:
            self._sink = pa.OSFile(os.path.join(self._tmp, "rows.arrow"), "wb")
            self._writer = ipc.new_stream(self._sink, _schema())
        self._writer.write_batch(pa.RecordBatch.from_pylist(self._buf, schema=_schema()))
        self._buf = []

    def flush(self) -> None:  # Output-compatible; rows are only visible after close
        return None

    def _finish(self) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc
        import pyarrow.parquet as pq

        assert self._tmp is not None
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
        n, N = self.count, self.shards
        sizes = [n // N + (1 if i < n % N else 0) for i in range(N)]
        rows = os.path.join(self._tmp, "rows.arrow")
        batches: Iterator[Any] = iter(())
        source = None
        if os.path.exists(rows):
            source = pa.memory_map(rows)
            batches = iter(ipc.open_stream(source))
        pending = None
        try:
            for i, size in enumerate(sizes):
                with pq.ParquetWriter(os.path.join(self._tmp, f"data-{i:05d}-of-{N:05d}.parquet"), _schema(),
                                      compression=self.compression) as w:
                    left = size
                    while left > 0:
                        if pending is None or pending.num_rows == 0:
                            pending = next(batches)
                        take = pending.slice(0, left)
                        w.write_batch(take)
                        left -= take.num_rows
                        pending = pending.slice(take.num_rows)
                    if size == 0:
                        w.write_table(_schema().empty_table())
        finally:
            if source is not None:
                source.close()
        os.unlink(rows) if os.path.exists(rows) else None
        _swap_into_place(self._tmp, self.out_dir)
        self._tmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    self._finish()
                except OSError as e:
                    from sadcli.fsutil import os_error

                    raise os_error(e, self.out_dir, f"cannot write {self.what}") from None
        finally:
            if self._writer is not None and self._tmp is not None:
                with contextlib.suppress(Exception):
                    self._writer.close()
                    self._sink.close()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None


def check_output_dir(path: str, what: str = "-o") -> None:
    """Refuse an output folder that exists with anything but the shards of an earlier run, or a file."""
    from sadcli.fsutil import check_output_dir as _check

    if os.path.isdir(path):
        others = [n for n in os.listdir(path) if not SHARD_RE.match(n)]
        if others:
            raise SadError(f"{what} folder exists and holds other files ({others[0]}{', ...' if len(others) > 1 else ''})",
                           hint="give a new folder: only a folder of earlier Parquet shards is replaced", file=path)
    _check(path, what=what)


def _swap_into_place(tmp: str, out_dir: str) -> None:
    """Rename the finished folder to ``out_dir``; an old shard folder is moved aside first, then removed."""
    target = os.path.abspath(out_dir)
    old = None
    if os.path.isdir(target):
        old = tempfile.mkdtemp(prefix=".sad-old-", dir=os.path.dirname(target))
        os.rmdir(old)
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        if old is not None:
            os.rename(old, target)   # put the old output back
        raise
    os.chmod(target, _dir_mode())
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _dir_mode() -> int:
    from sadcli.fsutil import new_dir_mode

    return new_dir_mode()


def write_parquet(records: Iterable[dict], out_dir: str, shards: int = 1) -> int:
    """Write ``records`` as ``shards`` Parquet files in ``out_dir``; returns the record count."""
    with ParquetWriter(out_dir, shards) as w:
        for r in records:
            w.write(r)
        return w.count
