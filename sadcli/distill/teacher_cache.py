"""Offline teacher signal: top-k log-probabilities + sampled tail tokens at supervised positions, on disk.

Layout of a cache directory (written to a temp dir, renamed into place when complete)::

    cache.json            manifest: teacher identity, data fingerprint, k, samples, temperature, shards
    index.npy             int64 [E + 1]: rows of example e are index[e]:index[e+1] (global row ids)
    shard-00000.npy ...   structured rows, memory-mapped at training time (np.load(mmap_mode="r"))

One row per supervised token, in the order the loss gathers them (example order, then position).

Several caches as one (``--teacher-cache A,B,...`` or a folder of cache folders): build one cache per
data shard (``sad distill shard-00003.jsonl --cache-teacher cache/00003``, on as many machines as there
are shards), then train on the shards in the same order with all the caches: their examples follow each
other, and each part is checked against its own range of the training examples (its fingerprint).

Why sampled tail tokens. A top-k cache with one "tail" bucket (what DistillKit stores) makes the loss
the KL of *bucketed* distributions, which is always below the dense KL (data-processing inequality)
and biased: measured here with the embedded teacher and a 6-layer student, top-64 + tail gives a loss
8% below the dense one (the teacher leaves ~10% of its mass outside its top 64). So of the k = 64 ids
per row, ``k - s`` are the top ids and ``s = 16`` are drawn from the teacher's tail distribution
(with replacement, seeded). For the forward KL, which is linear in the teacher's probabilities, the
target ``q`` = (exact top probabilities, tail mass spread evenly over the drawn tail tokens) gives an
unbiased estimate of the dense loss and of its gradient (the "random sampling KD" of Anshumann et al.,
ACL 2025); the loss value also needs the teacher's negative entropy ``Σ p log p``, stored per row.
Measured: within 0.1% of the dense loss on the same batch. Reverse KL and JSD are not linear in the
teacher, so they fall back to the exact bucketed KL over the top ids + one tail bucket.

Encoding of one row at k = 64 (13 top + 51 tail samples, the default), vocabulary under 65,536 tokens —
149 bytes:

    ids         uint16 [13]  top token ids, by decreasing probability                    26 B
    q           uint8  [13]  quantized log-probs: lp_i = top - q_i * step                  13 B
    samples     uint16 [51]  tail tokens drawn from p_T restricted to the tail             102 B
    top         float16      log-prob of the most likely token                              2 B
    step        float16      quantization step = (lp_0 - lp_12) / 255                       2 B
    log_tail    float16      log of the probability mass outside the top ids                2 B
    neg_entropy float16      Σ_v p_T(v) log p_T(v) over the whole vocabulary                2 B

A draw costs 2 bytes (no log-prob: the tail mass is spread evenly over the draws), a top id 3, so moving
ids from the top to the draws shrinks the row; measured (benchmarks/bench_teacher_cache.py, embedded
teacher): 13 top + 51 draws is as close to the dense loss and gradient as 48 + 16 (184 B, the default
before), both within 0.1%. Pure top-64 (``--tail-samples 0``): 198 bytes, 8% low. Vocabularies above
65,536 tokens use 3-byte ids (13 + 51: 213 B). Caches written with another split (e.g. 48 + 16) are read
as they are: the manifest and the row dtype say how many ids of each kind a row holds. On decode the top and tail buckets are renormalized to
sum to 1, so quantization never yields an improper distribution; the uniform per-row grid keeps every
stored log-prob within step / 2 of the truth (measured effect on the loss: < 0.01%).

The manifest's ``data.fingerprint`` is a SHA-256 of every example's token ids and span labels (plus
max length/render); training refuses a cache whose fingerprint differs from its data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sadcli.errors import InputError

FORMAT = "sad-teacher-cache"
VERSION = 2
ROWS_PER_SHARD = 1 << 16
_NEG_INF_F16 = -60000.0


def default_tail_samples(k: int) -> int:
    """Tail draws among ``k`` ids by default: all but the top fifth (k = 64: 13 top ids + 51 draws, 149 B)."""
    return k - max(1, math.ceil(k / 5))


def id_bytes(vocab_size: int) -> int:
    """Bytes per stored token id: 2 up to 65,536 tokens, else 3 (up to 16.7M), else 4."""
    return 2 if vocab_size <= 1 << 16 else 3 if vocab_size <= 1 << 24 else 4


def _id_field(name: str, n: int, vocab_size: int) -> tuple:
    nb = id_bytes(vocab_size)
    return (name, "<u2", (n,)) if nb == 2 else (name, "u1", (n, 3)) if nb == 3 else (name, "<u4", (n,))


def row_dtype(k_top: int, vocab_size: int, samples: int = 0) -> np.dtype:
    """The structured dtype of one cached position (``k_top`` top ids + ``samples`` tail draws)."""
    fields = [_id_field("ids", k_top, vocab_size), ("q", "u1", (k_top,)), ("top", "<f2"), ("step", "<f2"),
              ("log_tail", "<f2")]
    if samples:
        fields += [_id_field("samples", samples, vocab_size), ("neg_entropy", "<f2")]
    return np.dtype(fields)


def _pack_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    if id_bytes(vocab_size) != 3:
        return ids
    v = ids.astype(np.uint32)
    return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=-1).astype(np.uint8)


def _unpack_ids(raw: np.ndarray) -> np.ndarray:
    if raw.ndim == 3:  # [N, k, 3] little-endian 24-bit
        r = raw.astype(np.int64)
        return r[..., 0] | (r[..., 1] << 8) | (r[..., 2] << 16)
    return raw.astype(np.int64)


@dataclass
class CachedRows:
    """Teacher rows (decoded from the cache, or computed online before encoding).

    Attributes:
        ids: ``[N, k]`` long, top token ids by decreasing probability.
        logprobs: ``[N, k]`` fp32 teacher log-probs of ``ids``.
        log_tail: ``[N]`` fp32 log of the mass outside ``ids`` (-inf when none).
        samples: ``[N, s]`` long tail tokens drawn from the teacher's tail distribution, or None.
        neg_entropy: ``[N]`` fp32 ``Σ_v p_T(v) log p_T(v)`` (full distribution), or None.
    """

    ids: Any
    logprobs: Any
    log_tail: Any
    samples: Any = None
    neg_entropy: Any = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def bucketed(self) -> tuple[Any, Any, Any]:
        """(ids [N, k], logprobs [N, k], tail_logprob [N]): top ids + one tail bucket (exact bucketed KL)."""
        return self.ids, self.logprobs, self.log_tail

    def sampled(self) -> tuple[Any, Any, Any, Any]:
        """The unbiased forward-KL target: top ids with their probabilities, and each drawn tail token
        with (tail mass) x (times drawn) / s; duplicates merged, freed slots padded with distinct ids at
        probability 0.

        Returns ids ``[N, k + s]``, logprobs ``[N, k + s]`` (a proper distribution: no tail left),
        tail_logprob ``[N]`` (-inf), and ``offset [N]`` = Σ p log p − Σ q log q, the constant that turns
        KL(q || p_S) into the estimate of KL(p_T || p_S).
        """
        import torch

        if self.samples is None:
            raise ValueError("these rows hold no tail samples")
        n, k = self.ids.shape
        s = self.samples.shape[1]
        smp, _ = self.samples.sort(dim=1)
        first = torch.ones_like(smp, dtype=torch.bool)
        first[:, 1:] = smp[:, 1:] != smp[:, :-1]
        # times each distinct sample was drawn, stored at its first occurrence
        group = first.long().cumsum(1) - 1                                     # [N, s] group index
        counts = torch.zeros(n, s, dtype=torch.float32).scatter_add_(1, group, torch.ones(n, s))
        cnt = counts.gather(1, group)                                          # count of my group
        w = self.log_tail[:, None] + torch.log(cnt / s)
        w = torch.where(first, w, torch.full_like(w, float("-inf")))
        ids = torch.cat([self.ids, smp], 1)
        lp = torch.cat([self.logprobs, w], 1)
        # duplicates -> distinct padding ids (probability 0) not used elsewhere in the row
        dup = ~first
        if bool(dup.any()):
            pool = torch.arange(2 * (k + s), dtype=torch.long)                 # at least k + s are free
            used = (ids[:, :, None] == pool[None, None, :]).any(1)             # [N, P]
            free_rank = (~used).long().cumsum(1) - 1
            dup_rank = dup.long().cumsum(1) - 1                                # j-th duplicate of the row
            choice = torch.full_like(smp, -1)
            rows_i, cols_j = dup.nonzero(as_tuple=True)
            want = dup_rank[rows_i, cols_j]
            cand = (~used)[rows_i] & (free_rank[rows_i] == want[:, None])
            choice[rows_i, cols_j] = pool[cand.float().argmax(1)]
            ids[:, k:] = torch.where(dup, choice, smp)
        q = lp
        qlogq = torch.where(torch.isfinite(q), q.exp() * q, torch.zeros_like(q)).sum(1)
        offset = self.neg_entropy - qlogq
        return ids, lp, torch.full((n,), float("-inf")), offset


def teacher_rows(logp: Any, k: int, samples: int = 0, generator: Any = None) -> CachedRows:
    """Top ``k - samples`` ids + ``samples`` tail draws of full-vocabulary log-probs.

    Args:
        logp: ``[n, V]`` fp32 teacher log-probabilities (at the loss temperature).
        k: ids per row in total.
        samples: how many of them are drawn from the tail (0 = pure top-k + tail bucket).
        generator: torch.Generator for the draws (seeded by the caller).
    """
    import torch

    n, V = logp.shape
    k_top = k - samples
    if k_top < 1 or k_top > V:
        raise InputError(f"--top-k {k} with --tail-samples {samples} leaves {k_top} top ids (vocabulary {V})")
    top, ids = logp.topk(k_top, dim=-1)
    rest = logp.scatter(1, ids, float("-inf"))
    log_tail = torch.logsumexp(rest, dim=-1)
    if not samples:
        return CachedRows(ids, top, log_tail)
    if k_top == V:
        raise InputError(f"--tail-samples {samples}: the top {k_top} ids already cover the vocabulary")
    probs = (rest - log_tail[:, None]).exp()
    empty = ~torch.isfinite(log_tail)
    if bool(empty.any()):  # no tail mass: the draws get weight 0; draw them off the top ids
        probs[empty] = torch.ones_like(probs[empty]).scatter(1, ids[empty], 0.0)
    drawn = torch.multinomial(probs, samples, replacement=True, generator=generator)
    lp_safe = torch.where(torch.isfinite(logp), logp, torch.zeros_like(logp))
    neg_entropy = (logp.exp() * lp_safe).sum(-1)
    return CachedRows(ids, top, log_tail, drawn, neg_entropy)


def encode(rows: CachedRows, vocab_size: int) -> np.ndarray:
    """Pack rows into the on-disk encoding (structured array ``[N]``)."""
    ids = np.asarray(rows.ids)
    lp = np.asarray(rows.logprobs, dtype=np.float32)
    lt = np.asarray(rows.log_tail, dtype=np.float32)
    n, k = lp.shape
    samples = 0 if rows.samples is None else int(np.asarray(rows.samples).shape[1])
    out = np.zeros(n, dtype=row_dtype(k, vocab_size, samples))
    out["ids"] = _pack_ids(ids, vocab_size)
    top = lp[:, 0].astype(np.float16)
    spread = np.maximum(top.astype(np.float32) - lp[:, -1], 0.0)
    step = (spread / 255.0).astype(np.float16)
    # a step that rounded down could make q exceed 255: nudge it up one fp16 ulp where needed
    too_small = step.astype(np.float32) * 255.0 < spread
    step[too_small] = np.nextafter(step[too_small], np.float16(np.inf))
    step32 = step.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step32[:, None] > 0, np.rint((top.astype(np.float32)[:, None] - lp) / step32[:, None]), 0)
    out["q"] = np.clip(q, 0, 255).astype(np.uint8)
    out["top"] = top
    out["step"] = step
    out["log_tail"] = np.maximum(lt, _NEG_INF_F16).astype(np.float16)  # -inf -> sentinel
    if samples:
        out["samples"] = _pack_ids(np.asarray(rows.samples), vocab_size)
        out["neg_entropy"] = np.asarray(rows.neg_entropy, dtype=np.float32).astype(np.float16)
    return out


def decode(arr: np.ndarray) -> CachedRows:
    """Unpack rows; the top ids and the tail bucket are renormalized in log space to sum to 1."""
    import torch

    ids = torch.from_numpy(_unpack_ids(np.asarray(arr["ids"])))
    top = torch.from_numpy(arr["top"].astype(np.float32))
    step = torch.from_numpy(arr["step"].astype(np.float32))
    q = torch.from_numpy(arr["q"].astype(np.float32))
    lp = top[:, None] - q * step[:, None]
    lt = torch.from_numpy(arr["log_tail"].astype(np.float32))
    lt = torch.where(lt <= _NEG_INF_F16, torch.full_like(lt, float("-inf")), lt)
    norm = torch.logsumexp(torch.cat([lp, lt[:, None]], dim=1), dim=1)
    rows = CachedRows(ids, lp - norm[:, None], lt - norm)
    if "samples" in (arr.dtype.names or ()):
        rows.samples = torch.from_numpy(_unpack_ids(np.asarray(arr["samples"])))
        rows.neg_entropy = torch.from_numpy(arr["neg_entropy"].astype(np.float32))
    return rows


def concat_rows(parts: Sequence[CachedRows]) -> CachedRows:
    import torch

    cat = lambda xs: None if xs[0] is None else torch.cat(xs)  # noqa: E731
    return CachedRows(*(cat([getattr(p, f) for p in parts])
                        for f in ("ids", "logprobs", "log_tail", "samples", "neg_entropy")))


def data_fingerprint(examples: Iterable[Any], **settings: Any) -> str:
    """SHA-256 over each example's ``input_ids`` and ``token_labels`` and the given settings."""
    h = hashlib.sha256()
    h.update(json.dumps(settings, sort_keys=True).encode())
    for ex in examples:
        ids = np.asarray(ex.input_ids, dtype=np.int64)
        lab = np.asarray(ex.token_labels, dtype=np.int64)
        h.update(np.int64(len(ids)).tobytes())
        h.update(ids.tobytes())
        h.update(lab.tobytes())
    return h.hexdigest()


class CacheWriter:
    """Append encoded rows example by example; ``close()`` renames the finished cache into place."""

    def __init__(self, out_dir: str, manifest: dict[str, Any], k: int, vocab_size: int, samples: int = 0):
        self.out_dir = os.path.abspath(out_dir)
        if os.path.exists(self.out_dir) and os.listdir(self.out_dir):
            raise InputError(f"{out_dir} exists and is not empty", hint="choose a new directory for the cache")
        parent = os.path.dirname(self.out_dir) or "."
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=".sad-cache-", dir=parent)
        self.manifest = dict(manifest)
        self.dtype = row_dtype(k - samples, vocab_size, samples)
        self.vocab_size = vocab_size
        self.index = [0]
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.shards: list[dict[str, Any]] = []
        self.rows = 0

    def add_example(self, rows: CachedRows) -> None:
        """Rows of one example (possibly zero rows)."""
        n = len(rows)
        if n:
            self.pending.append(encode(rows, self.vocab_size))
            self.pending_rows += n
        self.rows += n
        self.index.append(self.rows)
        if self.pending_rows >= ROWS_PER_SHARD:
            self._flush()

    def _flush(self) -> None:
        if not self.pending_rows:
            return
        rows = np.concatenate(self.pending)
        name = f"shard-{len(self.shards):05d}.npy"
        np.save(os.path.join(self.tmp, name), rows)
        start = self.shards[-1]["start"] + self.shards[-1]["rows"] if self.shards else 0
        self.shards.append({"file": name, "start": start, "rows": int(rows.shape[0])})
        self.pending, self.pending_rows = [], 0

    def close(self) -> dict[str, Any]:
        self._flush()
        np.save(os.path.join(self.tmp, "index.npy"), np.asarray(self.index, dtype=np.int64))
        payload = sum(os.path.getsize(os.path.join(self.tmp, s["file"])) for s in self.shards)
        self.manifest.update({
            "format": FORMAT, "version": VERSION, "shards": self.shards, "rows": self.rows,
            "examples": len(self.index) - 1, "bytes_per_row": self.dtype.itemsize,
            "bytes_on_disk_per_token": (payload / self.rows) if self.rows else 0.0,
        })
        with open(os.path.join(self.tmp, "cache.json"), "w", encoding="utf-8") as f:
            json.dump(self.manifest, f, indent=2)
        if os.path.isdir(self.out_dir):
            os.rmdir(self.out_dir)  # empty (checked in __init__)
        os.replace(self.tmp, self.out_dir)
        return self.manifest

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class TeacherCache:
    """A finished cache, memory-mapped. ``rows_for(example_indices)`` -> decoded tensors."""

    path: str
    manifest: dict[str, Any]
    index: np.ndarray
    shards: list[np.ndarray]
    starts: np.ndarray

    @classmethod
    def open(cls, path: str) -> TeacherCache:
        """One cache folder; several, comma-separated (``a,b``); or a folder holding only cache folders (name
        order): the parts are read as one cache, examples of each part after those of the previous one."""
        paths = [p.strip() for p in path.split(",") if p.strip()] if "," in path else [path]
        if len(paths) == 1 and os.path.isdir(path) and not os.path.exists(os.path.join(path, "cache.json")):
            entries = [d for d in os.listdir(path) if not d.startswith(".")]
            subs = sorted(d for d in entries if os.path.isfile(os.path.join(path, d, "cache.json")))
            if subs and len(subs) == len(entries):  # a folder of cache folders and nothing else
                paths = [os.path.join(path, d) for d in subs]
        if len(paths) == 1:
            return cls._open_one(paths[0])
        return cls._join([cls._open_one(p) for p in paths], path)

    @classmethod
    def _join(cls, parts: list[TeacherCache], path: str) -> TeacherCache:
        same = ("k", "samples", "vocab_size", "temperature", "positions", "action_vocab")
        first = parts[0].manifest
        for p in parts[1:]:
            for key in same:
                if p.manifest.get(key) != first.get(key):
                    raise InputError(f"the teacher caches {parts[0].path} and {p.path} differ in {key} "
                                     f"({first.get(key)} vs {p.manifest.get(key)})",
                                     hint="build every shard's cache with the same options")
            w0 = (first.get("teacher") or {}).get("weights_sha256")
            if (p.manifest.get("teacher") or {}).get("weights_sha256") != w0:
                raise InputError(f"the teacher caches {parts[0].path} and {p.path} come from different teachers",
                                 hint="build every shard's cache with the same --teacher")
        index, shards, starts, infos = [np.zeros(1, dtype=np.int64)], [], [], []
        rows = examples = 0
        for p in parts:
            index.append(p.index[1:] + rows)
            shards.extend(p.shards)
            starts.extend(int(x) + rows for x in p.starts[:-1])
            infos.append({"path": p.path, "examples": int(len(p.index) - 1), "rows": int(p.manifest["rows"]),
                          "fingerprint": p.manifest.get("data", {}).get("fingerprint"),
                          "source": p.manifest.get("data", {}).get("source")})
            rows += int(p.manifest["rows"])
            examples += int(len(p.index) - 1)
        manifest = dict(first, rows=rows, examples=examples, parts=infos,
                        data=dict(first.get("data", {}), fingerprint=None, examples=examples,
                                  source=",".join(str(i["source"]) for i in infos)))
        return cls(path, manifest, np.concatenate(index), shards, np.asarray(starts + [rows], dtype=np.int64))

    @classmethod
    def _open_one(cls, path: str) -> TeacherCache:
        mf = os.path.join(path, "cache.json")
        try:
            with open(mf, encoding="utf-8") as f:
                manifest = json.load(f)
        except FileNotFoundError:
            raise InputError(f"{path} is not a teacher cache (no cache.json)",
                             hint="build one with: sad distill DATA --teacher SPEC --cache-teacher DIR") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise InputError(f"{path}: unsupported cache format {manifest.get('format')} "
                             f"v{manifest.get('version')} (this sad reads {FORMAT} v{VERSION})",
                             hint="rebuild it: sad distill DATA --teacher SPEC --cache-teacher NEW_DIR")
        index = np.load(os.path.join(path, "index.npy"))
        shards = [np.load(os.path.join(path, s["file"]), mmap_mode="r") for s in manifest["shards"]]
        starts = np.asarray([s["start"] for s in manifest["shards"]] + [manifest["rows"]], dtype=np.int64)
        return cls(path, manifest, index, shards, starts)

    def check(self, *, fingerprint: str, temperature: float | None = None, positions: str | None = None,
              vocab_size: int | None = None, fingerprint_of: Any = None, n_examples: int | None = None) -> None:
        """Refuse a cache built from other data, another temperature, positions or vocabulary.

        A cache of several parts is checked part by part: ``fingerprint_of(lo, hi)`` is the fingerprint of
        the training examples ``lo:hi`` (with the run's settings), ``n_examples`` their number."""
        data = self.manifest.get("data", {})
        if "parts" in self.manifest:
            self._check_parts(fingerprint_of, n_examples)
        elif data.get("fingerprint") != fingerprint:
            raise InputError(
                f"the teacher cache {self.path} was built from other data "
                f"({data.get('source', '?')}, {data.get('examples', '?')} examples, "
                f"max_length {data.get('max_length', '?')}, render {data.get('render', '?')})",
                hint="train on the data it was built from, or rebuild it with --cache-teacher")
        if temperature is not None and abs(self.manifest.get("temperature", 1.0) - temperature) > 1e-9:
            raise InputError(f"the teacher cache holds log-probs at temperature {self.manifest.get('temperature')}"
                             f", the loss uses {temperature}", hint="rebuild the cache with this --temperature")
        have = self.manifest.get("positions", "agent")
        if positions is not None and have != positions:
            def said(p: str) -> str:
                return "reason,act" if p == "agent" else p
            raise InputError(f"this loss trains on {said(positions)} positions but the cache holds the teacher at "
                             f"{said(have)} positions", hint="rebuild the cache with the same --loss and --supervise")
        if vocab_size is not None and self.manifest.get("vocab_size") != vocab_size:
            raise InputError(f"the cache's vocabulary has {self.manifest.get('vocab_size')} tokens, "
                             f"the student's {vocab_size}", hint="use a student with the teacher's tokenizer")

    def _check_parts(self, fingerprint_of: Any, n_examples: int | None) -> None:
        if getattr(self, "_parts_ok", False):  # checked once (the fingerprints hash every example)
            return
        if fingerprint_of is None:
            raise InputError(f"{self.path}: a teacher cache of several parts (one per data shard) is read by "
                             "`sad distill` only", hint="give a single cache folder here")
        lo = 0
        for part in self.manifest["parts"]:
            hi = lo + part["examples"]
            if (n_examples is not None and hi > n_examples) or fingerprint_of(lo, hi) != part["fingerprint"]:
                raise InputError(
                    f"the teacher cache {part['path']} (part {self.manifest['parts'].index(part) + 1} of "
                    f"{len(self.manifest['parts'])}, {part['examples']} examples from {part['source']}) does not "
                    f"match training examples {lo}..{hi - 1}",
                    hint="give the data shards and their caches in the same order, each cache built from its "
                         "shard with the same --max-length/--render/--window")
            lo = hi
        if n_examples is not None and lo != n_examples:
            raise InputError(f"the teacher caches hold {lo} examples, the training data {n_examples}",
                             hint="give one cache per data shard, all of them")
        self._parts_ok = True

    def _rows(self, lo: int, hi: int) -> list[np.ndarray]:
        out = []
        s = int(np.searchsorted(self.starts, lo, side="right") - 1)
        while lo < hi:
            end = min(hi, int(self.starts[s + 1]))
            out.append(np.asarray(self.shards[s][lo - self.starts[s]:end - self.starts[s]]))
            lo, s = end, s + 1
        return out

    def rows_for(self, examples: Sequence[int]) -> CachedRows:
        """Decoded rows of these examples, concatenated in the given order."""
        parts: list[np.ndarray] = []
        for e in examples:
            parts.extend(self._rows(int(self.index[e]), int(self.index[e + 1])))
        m = self.manifest
        dtype = self.shards[0].dtype if self.shards else row_dtype(m["k"] - m.get("samples", 0), m["vocab_size"],
                                                                    m.get("samples", 0))
        rows = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        return decode(rows)

    def rows_per_example(self) -> np.ndarray:
        return np.diff(self.index)
