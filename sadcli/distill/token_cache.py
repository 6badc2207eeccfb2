"""Tokenization and masks built once, cached on disk, memory-mapped by every later run.

``sad distill FILE`` (a JSONL file or a ``datasets`` dataset; not stdin) streams the segmented records through
the mask builder (:func:`sadcli.masks.build.build_examples`) in one pass — checking every record as
:func:`sadcli.distill.pipeline.prepare_data` does — and writes the examples to an Arrow IPC stream file
(``examples.arrow``: ``input_ids`` int32 lists, ``token_labels`` int8 lists, ``index``, ``id``, the curriculum
keys, and ``window`` / ``stats`` / ``extra`` as JSON text) beside a ``manifest.json`` holding the summary
counts and the data fingerprint. Memory stays flat: neither the records nor the examples are held, only one
batch and the per-example lengths.

The cache folder is ``ROOT/<key>`` with ``ROOT`` = ``$SAD_HOME/tokens`` (``--token-cache auto``) or a folder
given with ``--token-cache DIR``, and ``key`` = SHA-256 over

- the data's content (SHA-256 of the file's bytes, of every file's bytes and name for a folder; remembered
  per path + size + mtime + inode in ``ROOT/sources/`` so an unchanged file is not read again),
- the tokenizer (its ``tokenizer.json`` serialization, chat template and special tokens),
- the options that change examples: render, max length, keep, window, trust-spans,
- the source of the mask-building code (``sadcli/masks/*.py`` and this module), so an upgrade rebuilds.

A second run with the same key opens the file memory-mapped (:class:`CachedExamples`; zero copy, pages read
on demand) and starts training after reading the manifest. The file is also a ``datasets`` dataset:
``datasets.Dataset.from_file(ROOT/<key>/examples.arrow)``. Writes are atomic (a temp folder renamed into
place). Processes that need the same key at once (DDP ranks) take turns on a lock file: the first builds,
the others wait and then map what it built. Nothing is ever evicted: remove ``ROOT`` to reclaim the space.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sadcli.errors import InputError, SadError

FORMAT = 1
BATCH = 1024   # examples per Arrow record batch


# --- the key ---------------------------------------------------------------------------------------

def default_root() -> str:
    from sadcli.models.spec import sad_home

    return str(sad_home() / "tokens")


def _files_of(path: str) -> list[str]:
    if os.path.isdir(path):
        out = []
        for d, dirs, files in os.walk(path):
            dirs.sort()
            out.extend(os.path.join(d, f) for f in sorted(files) if not f.startswith("."))
        return out
    return [path]


def source_hash(path: str, root: str | None = None) -> str:
    """SHA-256 of the data's bytes (file, or every file of a folder with its relative name).

    Remembered under ``root/sources`` per (real path, size, mtime, inode) of each file, so an unchanged
    input is hashed once.
    """
    files = _files_of(path)
    stat_key = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        stat_key.update(f"{os.path.realpath(f)}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}\n".encode())
    memo = os.path.join(root, "sources", stat_key.hexdigest()) if root else None
    if memo and os.path.isfile(memo):
        with open(memo, encoding="utf-8") as fh:
            known = fh.read().strip()
        if len(known) == 64:
            return known
    h = hashlib.sha256()
    base = path if os.path.isdir(path) else os.path.dirname(path)
    for f in files:
        h.update(os.path.relpath(f, base).encode() + b"\0" if os.path.isdir(path) else b"")
        with open(f, "rb") as fh:
            while True:
                block = fh.read(1 << 23)
                if not block:
                    break
                h.update(block)
    digest = h.hexdigest()
    if memo:
        try:
            os.makedirs(os.path.dirname(memo), exist_ok=True)
            from sadcli.fsutil import atomic_write_text

            atomic_write_text(memo, digest + "\n", what="token cache source memo")
        except (OSError, SadError):
            pass  # a read-only cache folder: hash again next time
    return digest


def tokenizer_identity(tokenizer: Any) -> str:
    """SHA-256 of what makes a tokenizer's encodings: its serialization, chat template, special tokens."""
    h = hashlib.sha256()
    bt = getattr(tokenizer, "backend_tokenizer", None)
    h.update((bt.to_str() if bt is not None else repr(tokenizer)).encode())
    h.update(str(getattr(tokenizer, "chat_template", None)).encode())
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token"):
        h.update(f"{attr}={getattr(tokenizer, attr, None)}".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_identity() -> str:
    """SHA-256 of the mask-building code's source (sadcli/masks/*.py, this module, sadcli/labels.py)."""
    import sadcli.labels
    import sadcli.masks

    h = hashlib.sha256()
    folder = os.path.dirname(sadcli.masks.__file__)
    for f in sorted(os.listdir(folder)):
        if f.endswith(".py"):
            with open(os.path.join(folder, f), "rb") as fh:
                h.update(f.encode() + fh.read())
    for f in (__file__, sadcli.labels.__file__):
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def cache_key(path: str, tokenizer: Any, settings: dict[str, Any], root: str | None = None) -> str:
    parts = {"format": FORMAT, "data": source_hash(path, root), "tokenizer": tokenizer_identity(tokenizer),
             "settings": settings, "code": code_identity()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


# --- reading the cache -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class CachedExample:
    """One example read from the cache: the attributes of :class:`~sadcli.masks.types.MaskedExample`
    (``input_ids`` and ``token_labels`` are numpy views into the memory-mapped file)."""

    __slots__ = ("_src", "_i", "input_ids", "token_labels")

    def __init__(self, src: CachedExamples, i: int, ids: np.ndarray, labels: np.ndarray):
        self._src, self._i = src, i
        self.input_ids = ids
        self.token_labels = labels

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.input_ids)

    @property
    def labels(self) -> list[int]:
        from sadcli.labels import ACT, IGNORE_INDEX, REASON

        sup = (self.token_labels == REASON) | (self.token_labels == ACT)
        return np.where(sup, self.input_ids, IGNORE_INDEX).tolist()

    @property
    def id(self) -> str:
        return self._src.value("id", self._i)

    @property
    def index(self) -> int:
        return int(self._src.record_index[self._i])

    @property
    def extra(self) -> dict:
        return dict(_json(self._src.value("extra", self._i)) or {})

    @property
    def stats(self) -> Any:
        from sadcli.masks.types import ExampleStats

        return ExampleStats.from_dict(_json(self._src.value("stats", self._i)))

    @property
    def window(self) -> Any:
        from sadcli.masks.types import Window

        w = _json(self._src.value("window", self._i))
        return None if w is None else Window.from_dict(w)

    alignment = None


class CachedExamples(Sequence):
    """The examples of a cache folder, memory-mapped: ``len``, ``[i]`` and iteration are cheap (numpy views
    into the file's record batches; nothing is copied, so memory does not grow with the data)."""

    def __init__(self, folder: str):
        import pyarrow as pa
        import pyarrow.ipc as ipc

        self.folder = folder
        self._map = pa.memory_map(os.path.join(folder, "examples.arrow"))
        self.table = ipc.open_stream(self._map).read_all()
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (offsets, ids, labels) per batch
        starts = [0]
        for ids, labels in zip(self.table.column("input_ids").chunks, self.table.column("token_labels").chunks,
                               strict=True):
            off = ids.offsets.to_numpy()
            self._chunks.append((off, ids.values.to_numpy(zero_copy_only=True),
                                 labels.values.to_numpy(zero_copy_only=True)))
            starts.append(starts[-1] + len(ids))
        self._starts = np.asarray(starts, dtype=np.int64)
        self.lengths = np.concatenate([np.diff(c[0]) for c in self._chunks]) if self._chunks else \
            np.zeros(0, np.int64)
        self.record_index = self.table.column("index").to_numpy()
        self._values: OrderedDict[tuple[str, int], list] = OrderedDict()  # a few decoded batches of a column

    def _locate(self, i: int) -> tuple[int, int]:
        c = int(np.searchsorted(self._starts, i, side="right")) - 1
        return c, i - int(self._starts[c])

    def value(self, name: str, i: int) -> Any:
        """Row ``i`` of column ``name`` (the batch it is in is decoded and kept among the last 8)."""
        c, j = self._locate(i)
        key = (name, c)
        vals = self._values.get(key)
        if vals is None:
            vals = self.table.column(name).chunks[c].to_pylist()
            self._values[key] = vals
            if len(self._values) > 8:
                self._values.popitem(last=False)
        else:
            self._values.move_to_end(key)
        return vals[j]

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> CachedExample:  # type: ignore[override]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        c, j = self._locate(i)
        off, ids, labels = self._chunks[c]
        a, b = off[j], off[j + 1]
        return CachedExample(self, i, ids[a:b], labels[a:b])

    def __iter__(self) -> Iterator[CachedExample]:
        i = 0
        for off, ids, labels in self._chunks:
            for j in range(len(off) - 1):
                a, b = off[j], off[j + 1]
                yield CachedExample(self, i, ids[a:b], labels[a:b])
                i += 1

    def curriculum(self) -> Any:
        from sadcli.distill.data import Curriculum

        def col(name: str, cast: type) -> tuple | None:
            if name not in self.table.column_names:
                return None
            return tuple(cast(v) for v in self.table.column(name).to_numpy())

        return Curriculum(col("curriculum_stage", int), col("curriculum_rank", float))


# --- building ----------------------------------------------------------------------------------------

@dataclass
class Built:
    examples: CachedExamples
    curriculum: Any
    fingerprint: str
    stats: dict[str, Any]
    folder: str
    hit: bool


def prepare(path: str, tokenizer: Any, *, root: str, render: str, max_length: int, truncate: str,
            trust_spans: bool, window: str, fingerprint_settings: dict[str, Any]) -> Built:
    """Open the cache of ``path`` for these options, building it first when it is missing."""
    settings = {"render": render, "max_length": max_length, "truncate": truncate, "window": window,
                "trust_spans": trust_spans}
    key = cache_key(path, tokenizer, settings, root)
    folder = os.path.join(root, key)
    if os.path.isfile(os.path.join(folder, "manifest.json")):
        return _open(folder, hit=True)
    import fcntl

    os.makedirs(root, exist_ok=True)
    # one builder per key: the other processes (DDP ranks started together) wait here, then find it built
    with open(os.path.join(root, f".{key}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(folder, "manifest.json")):
            return _open(folder, hit=True)
        _build(path, tokenizer, folder, render=render, max_length=max_length, truncate=truncate,
               trust_spans=trust_spans, window=window, fingerprint_settings=fingerprint_settings, settings=settings)
    return _open(folder, hit=False)


def _open(folder: str, hit: bool) -> Built:
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    ex = CachedExamples(folder)
    return Built(ex, ex.curriculum(), manifest["fingerprint"], manifest["stats"], folder, hit)


class _Curriculum:
    """``read_curriculum`` streamed: all records carry a field or none does; values checked as they come."""

    def __init__(self) -> None:
        from array import array

        self.values: dict[str, Any] = {"curriculum_stage": array("q"), "curriculum_rank": array("d")}
        self.present: dict[str, int] = {"curriculum_stage": 0, "curriculum_rank": 0}
        self.first_absent: dict[str, tuple | None] = {"curriculum_stage": None, "curriculum_rank": None}
        self.n = 0

    def add(self, rec: dict, where: tuple) -> None:
        self.n += 1
        for key, cast in (("curriculum_stage", int), ("curriculum_rank", float)):
            if key not in rec:
                if self.first_absent[key] is None:
                    self.first_absent[key] = where
                self.values[key].append(0)
                continue
            v = rec[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (cast is int and (int(v) != v or v < 0)):
                raise InputError(f"{key} must be a {'non-negative integer' if cast is int else 'number'}, "
                                 f"got {v!r}", file=where[0], line=where[1])
            self.present[key] += 1
            self.values[key].append(cast(v))

    def check(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.values:
            if self.present[key] == 0:
                out[key] = None
            elif self.present[key] < self.n:
                file, line = self.first_absent[key] or (None, None)
                raise InputError(f"record has no {key!r} but others do", file=file, line=line,
                                 hint="a curriculum needs the field on every record (re-run sad curriculum)")
            else:
                out[key] = self.values[key]
        return out


def _build(path: str, tokenizer: Any, folder: str, *, render: str, max_length: int, truncate: str,
           trust_spans: bool, window: str, fingerprint_settings: dict[str, Any], settings: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from sadcli.labels import ACT, REASON
    from sadcli.masks.build import build_examples
    from sadcli.masks.spancheck import HINT, NO_STEPS_HINT, check_spans, has_steps
    from sadcli.records import FIX_HINT, read_records
    from sadcli.schema import validate_segmented

    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    where: dict[int, tuple] = {}     # locations of the records in flight (pruned as examples come out)
    cur = _Curriculum()

    def records() -> Iterator[dict]:
        for i, (line, rec) in enumerate(read_records(path, hint=FIX_HINT)):
            loc = (line.file, line.line)
            if "spans" not in rec or "text" not in rec:
                raise InputError("record has no \"spans\" (not segmented)", file=loc[0], line=loc[1],
                                 hint=f"run `sad segment {path}` first and train on its output")
            if "input_ids" in rec and "token_labels" in rec:
                raise InputError("a sad mask-check --emit line among segmented records", file=loc[0], line=loc[1])
            if has_steps(rec):
                try:
                    validate_segmented(rec)
                except SadError as e:
                    raise e.located(*loc) from None
                bad = check_spans(rec, limit=1)
                if bad:
                    raise InputError(bad[0].message(), file=loc[0], line=loc[1], hint=HINT)
            elif not trust_spans:
                raise InputError("record has no \"steps\": its spans cannot be checked against them",
                                 file=loc[0], line=loc[1], hint=NO_STEPS_HINT)
            cur.add(rec, loc)
            where[i] = loc
            yield rec

    def located(index: int, rec: dict, err: SadError) -> None:
        raise err.located(*where[index])

    fp = hashlib.sha256(json.dumps(fingerprint_settings, sort_keys=True).encode())
    st = {"examples": 0, "tokens": 0, "reason_tokens": 0, "act_tokens": 0, "truncated_records": 0,
          "truncated_reason_tokens": 0, "truncated_act_tokens": 0, "no_supervised_records": 0}
    per_window: dict[str, int] = {}
    split = context = 0
    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("token_labels", pa.list_(pa.int8())),
                        ("index", pa.int64()), ("id", pa.string()), ("window", pa.string()),
                        ("stats", pa.string()), ("extra", pa.string())])
    cols: dict[str, list] = {n: [] for n in schema.names}
    sink = pa.OSFile(os.path.join(tmp, "examples.body.arrow"), "wb")
    writer = ipc.new_stream(sink, schema)
    last_index = -1

    def flush() -> None:
        if cols["index"]:
            writer.write_batch(pa.RecordBatch.from_pydict(cols, schema=schema))
            for v in cols.values():
                v.clear()

    try:
        for ex in build_examples(records(), tokenizer, render=render, max_length=max_length, keep=truncate,
                                 on_error=located, window=window):
            ids = np.asarray(ex.input_ids, dtype=np.int64)
            lab = np.asarray(ex.token_labels, dtype=np.int64)
            fp.update(np.int64(len(ids)).tobytes())
            fp.update(ids.tobytes())
            fp.update(lab.tobytes())
            st["examples"] += 1
            st["tokens"] += len(ids)
            nr, na = int((lab[1:] == REASON).sum()), int((lab[1:] == ACT).sum())
            st["reason_tokens"] += nr
            st["act_tokens"] += na
            st["truncated_records"] += bool(ex.stats.truncated_tokens)
            st["truncated_reason_tokens"] += ex.stats.truncated_reason
            st["truncated_act_tokens"] += ex.stats.truncated_act
            st["no_supervised_records"] += not (nr or na)
            if ex.window is not None:
                per_window[ex.id] = ex.window.count
                split += ex.stats.split_steps
                context += ex.stats.context_tokens
            cols["input_ids"].append(ids.astype(np.int32))
            cols["token_labels"].append(lab.astype(np.int8))
            cols["index"].append(ex.index)
            cols["id"].append(ex.id)
            cols["window"].append(None if ex.window is None else json.dumps(ex.window.to_dict()))
            cols["stats"].append(json.dumps(ex.stats.to_dict()))
            cols["extra"].append(json.dumps(ex.extra) if ex.extra else None)
            while last_index < ex.index - 1:  # records before this one are done: forget where they were
                last_index += 1
                where.pop(last_index, None)
            if len(cols["index"]) >= BATCH:
                flush()
        flush()
        writer.close()
        sink.close()
        st = {"records": cur.n, **st}
        if cur.n == 0:
            raise InputError(f"{path}: no records", hint="give segmented JSONL (sad segment FILE -o seg.jsonl)")
        curriculum = cur.check()
        if st["reason_tokens"] + st["act_tokens"] == 0:
            raise InputError(f"{path}: no reasoning or action token is left to train on "
                             f"({st['examples']} records, {st['truncated_records']} truncated at --max-length "
                             f"{max_length})",
                             hint="raise --max-length" + (", use --keep end" if truncate != "end" else "")
                                  + ", or check the spans with sad mask-check")
        st.update({"windowed_records": len(per_window), "window_examples": sum(per_window.values()),
                   "max_windows": max(per_window.values(), default=1), "split_steps": split,
                   "context_tokens": context, "windows_per_record": per_window})
        _add_curriculum(tmp, schema, curriculum)
        manifest = {"format": FORMAT, "source": os.path.abspath(path), "settings": settings,
                    "fingerprint": fp.hexdigest(), "stats": st}
        with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not os.path.isfile(os.path.join(folder, "manifest.json")):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process built the same key first
    except BaseException:
        try:
            writer.close()
            sink.close()
        except Exception:  # noqa: BLE001 - closing after a failure
            pass
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _add_curriculum(tmp: str, schema: Any, curriculum: dict[str, Any]) -> None:
    """Rewrite the body with the per-example curriculum keys (windows inherit their record's)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    body = os.path.join(tmp, "examples.body.arrow")
    final = os.path.join(tmp, "examples.arrow")
    keys = {k: np.asarray(v) for k, v in curriculum.items() if v is not None}
    if not keys:
        os.rename(body, final)
        return
    types = {"curriculum_stage": pa.int64(), "curriculum_rank": pa.float64()}
    out_schema = schema
    for k in keys:
        out_schema = out_schema.append(pa.field(k, types[k]))
    with pa.memory_map(body) as src, pa.OSFile(final, "wb") as sink, ipc.new_stream(sink, out_schema) as w:
        for batch in ipc.open_stream(src):
            idx = batch.column("index").to_numpy()
            arrays = list(batch.columns) + [pa.array(keys[k][idx], type=types[k]) for k in keys]
            w.write_batch(pa.RecordBatch.from_arrays(arrays, schema=out_schema))
    os.unlink(body)
