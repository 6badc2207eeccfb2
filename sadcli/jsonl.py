"""JSONL in, JSONL out: streaming readers that know file and line, atomic writers.

Input is a path or ``-`` (stdin). ``.jsonl`` streams line by line; a ``.json`` file (or stdin
starting with ``[``) may hold an array of records, or an object mapping ids to records/strings
(as the ReAct prompt files do). Blank lines, a UTF-8 BOM and CRLF line ends are accepted.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from sadcli.errors import InputError

try:  # orjson is several times faster than json; json is the fallback
    import orjson as _orjson

    def loads(text: str | bytes) -> Any:
        return _orjson.loads(text)

    def dumps(obj: Any) -> str:
        return _orjson.dumps(obj).decode("utf-8")

    def dumps_line(obj: Any) -> bytes:
        return _orjson.dumps(obj, option=_orjson.OPT_APPEND_NEWLINE)

    _DecodeError: tuple[type[Exception], ...] = (_orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - orjson is a declared dependency
    def loads(text: str | bytes) -> Any:
        return json.loads(text)

    def dumps(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False)

    def dumps_line(obj: Any) -> bytes:
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")

    _DecodeError = (json.JSONDecodeError, ValueError)


@dataclass
class Line:
    """One input record before parsing: where it came from, and its raw text."""

    file: str
    line: int | str  # 1-based line number, or "item N" inside a JSON array/object
    raw: str | bytes  # the line as read (bytes from .jsonl files and stdin)

    def text(self) -> str:
        return self.raw.decode("utf-8", "replace") if isinstance(self.raw, bytes) else self.raw


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _open_binary(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer if hasattr(sys.stdin, "buffer") else io.BytesIO(sys.stdin.read().encode("utf-8"))
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}", hint="check the path, or use - for stdin") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory", hint="give a .jsonl or .json file") from None


def _decode(name: str, data: bytes, line: int | str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", hint="convert the file to UTF-8",
                         file=name, line=line) from None


def _whole_json_lines(name: str, text: str) -> Iterator[Line]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})",
                         hint="a .json file must hold one JSON array or object; use .jsonl for one record per line",
                         file=name, line=e.lineno) from None
    if isinstance(data, list):
        for i, item in enumerate(data, 1):
            yield Line(name, f"item {i}", dumps(item))
    elif isinstance(data, dict):
        if any(k in data for k in _RECORD_KEYS):
            yield Line(name, 1, dumps(data))
        else:  # {"id": record-or-string, ...}
            for i, (key, value) in enumerate(data.items(), 1):
                rec = dict(value) if isinstance(value, dict) else {"text": value}
                rec.setdefault("id", key)
                yield Line(name, f"item {i} ({key})", dumps(rec))
    else:
        raise InputError(f"a .json file must hold an array or an object, not {type(data).__name__}",
                         file=name, line=1)


# keys that mark a JSON object as one record rather than a mapping of records
_RECORD_KEYS = ("messages", "conversations", "steps", "text", "output", "spans", "trajectory")


def read_lines(path: str) -> Iterator[Line]:
    """Yield the non-blank records of ``path`` (or stdin for ``-``) with their location.

    Lines are read as bytes (JSON parsers take bytes; no decode/encode round trip); a UTF-8 BOM and
    CRLF line ends are accepted.
    """
    name = display_name(path)
    fh = _open_binary(path)
    try:
        if path.endswith(".json"):
            yield from _whole_json_lines(name, _decode(name, fh.read(), 1))
            return
        first = True
        for lineno, raw in enumerate(fh, 1):
            if first:
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                stripped = raw.lstrip()
                if not stripped:
                    continue
                first = False
                if stripped.startswith(b"[") and not path.endswith(".jsonl"):
                    # a JSON array on stdin (or in a file without extension)
                    yield from _whole_json_lines(name, _decode(name, raw + fh.read(), lineno))
                    return
            if raw.strip():
                yield Line(name, lineno, raw)
    finally:
        if path != "-":
            fh.close()


SKIP_HINT = "each line must be one JSON object; fix or remove the line, or use --on-error skip"
FIX_HINT = "each line must be one JSON object; fix or remove the line"


def _invalid_utf8(raw: str | bytes) -> int | None:
    """Byte offset of the first invalid UTF-8 sequence in ``raw`` (None when it is valid)."""
    if not isinstance(raw, bytes):
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    return None


def parse_line(line: Line, *, hint: str = SKIP_HINT) -> dict:
    """Parse one record; raise :class:`InputError` naming file and line.

    ``hint``: what to suggest for a line that is not JSON (commands without ``--on-error`` pass
    :data:`FIX_HINT`).
    """
    row = getattr(line, "record", None)  # a dataset row (sadcli.records.RowLine) is parsed already
    if isinstance(row, dict):
        return row
    try:
        obj = loads(line.raw)
    except _DecodeError as e:
        bad = _invalid_utf8(line.raw)
        if bad is not None:
            raise InputError(f"invalid UTF-8 at byte {bad} of the line",
                             hint="convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                             file=line.file, line=line.line) from None
        msg = str(e).split("\n")[0]
        raise InputError(f"invalid JSON: {msg}", hint=hint, file=line.file, line=line.line) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object per line, got {type(obj).__name__}",
                         hint="each line must be one trajectory object",
                         file=line.file, line=line.line)
    return obj


def read_records(path: str, *, hint: str = SKIP_HINT) -> Iterator[tuple[Line, dict]]:
    """Yield ``(Line, record)`` pairs; the first bad line raises :class:`InputError`."""
    for line in read_lines(path):
        yield line, parse_line(line, hint=hint)


class Output:
    """Where records go: stdout, or a file written atomically (temp file + rename on success).

    Use as a context manager; on an exception the temp file is removed and the path keeps what it
    held. A FIFO or device path (``/dev/stdout``, ``/dev/null``) is written in place, never replaced
    (see :mod:`sadcli.fsutil`). OS errors (a full disk, a read-only folder) raise
    :class:`~sadcli.errors.SadError` naming the path.
    """

    def __init__(self, path: str | None, *, append: bool = False, what: str = "output"):
        self.path = None if path in (None, "-") else path
        self.append = append
        self.what = what
        self._fh: IO[bytes] | None = None
        self._writer: Any = None
        self.count = 0

    def __enter__(self) -> Output:
        if self.path is None:
            sys.stdout.flush()
            self._fh = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else _TextAsBytes(sys.stdout)
        else:
            from sadcli.fsutil import AtomicWriter

            self._writer = AtomicWriter(self.path, append=self.append, what=self.what)
            self._fh = self._writer.__enter__()
        return self

    def _write(self, data: bytes) -> None:
        assert self._fh is not None
        if self._writer is None:
            self._fh.write(data)
            return
        try:
            self._fh.write(data)
        except OSError as e:
            from sadcli.fsutil import write_error

            raise write_error(e, self.path or "-", self.what) from None

    def write(self, record: dict) -> None:
        self._write(dumps_line(record))
        self.count += 1

    def write_raw(self, raw: str | bytes) -> None:
        """Write one line verbatim (a rejected or passed-through input line)."""
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        if data.endswith(b"\r\n"):
            data = data[:-2] + b"\n"
        self._write(data if data.endswith(b"\n") else data + b"\n")
        self.count += 1

    def flush(self) -> None:
        if self._fh is None:
            return
        if self._writer is None:
            self._fh.flush()
            return
        try:
            self._fh.flush()
        except OSError as e:
            from sadcli.fsutil import write_error

            raise write_error(e, self.path or "-", self.what) from None

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._fh is None:
            return
        if self._writer is None:
            try:
                self._fh.flush()
            except BrokenPipeError:
                pass
            return
        self._fh = None
        self._writer.__exit__(exc_type, exc, tb)


class _TextAsBytes:
    """A bytes writer over a text stream (for stdout replaced by a StringIO, as in tests)."""

    def __init__(self, fh: IO[str]):
        self._text = fh

    def write(self, data: bytes) -> int:
        return self._text.write(data.decode("utf-8"))

    def flush(self) -> None:
        self._text.flush()


def write_records(path: str | None, records: Iterable[dict]) -> int:
    with Output(path) as out:
        for r in records:
            out.write(r)
        return out.count
