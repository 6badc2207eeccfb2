"""Streaming, batched mask building: segmented records in, :class:`MaskedExample` out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np

from sadcli.errors import SadError
from sadcli.labels import ACT, IGNORE_INDEX, REASON
from sadcli.masks.align import align
from sadcli.masks.render import ChatRenderer, render_text
from sadcli.masks.types import Alignment, ExampleStats, MaskedExample, Rendered

RENDERS = ("text", "chat")
KEEPS = ("start", "end")
CARRY = ("success", "reward", "teacher", "env", "meta")  # record fields copied to MaskedExample.extra

OnError = Callable[[int, dict, SadError], None]


def check_tokenizer(tokenizer: Any) -> None:
    """Raise :class:`SadError` unless ``tokenizer`` is fast (has an offset mapping)."""
    if not getattr(tokenizer, "is_fast", False) or getattr(tokenizer, "backend_tokenizer", None) is None:
        name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
        raise SadError(f"tokenizer {name!r} is a slow (Python) tokenizer without an offset mapping",
                       hint="masks need a fast tokenizer: a folder with tokenizer.json, "
                            "or AutoTokenizer.from_pretrained(..., use_fast=True)")


class _Encoder:
    """Batch encoding with offsets through the Rust tokenizer, without padding or truncation."""

    def __init__(self, tokenizer: Any):
        check_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        bt = tokenizer.backend_tokenizer
        # a backend with padding/truncation switched on would change the encodings: use the wrapper
        self.backend = bt if bt.padding is None and bt.truncation is None else None

    def __call__(self, texts: list[str], add_special_tokens: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        if self.backend is not None:
            encs = self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
            return [(np.asarray(e.ids, dtype=np.int64), np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2))
                    for e in encs]
        out = self.tokenizer(texts, add_special_tokens=add_special_tokens, return_offsets_mapping=True,
                             return_attention_mask=False, truncation=False, padding=False)
        return [(np.asarray(i, dtype=np.int64), np.asarray(o, dtype=np.int64).reshape(-1, 2))
                for i, o in zip(out["input_ids"], out["offset_mapping"], strict=False)]


def build_examples(records: Iterable[dict], tokenizer: Any, *, render: str = "text",
                   max_length: int | None = None, keep: str = "start", batch_size: int = 64,
                   add_special_tokens: bool | None = None, keep_alignment: bool = False,
                   check: bool = True, on_error: OnError | None = None) -> Iterator[MaskedExample]:
    """Tokenize segmented records and label every token; yields examples in input order.

    Args:
        records: schema-v1 segmented records (``text`` + ``spans``; chat rendering uses the spans too).
        tokenizer: a fast Hugging Face tokenizer (see :func:`sadcli.models.load_tokenizer`).
        render: ``"text"`` tokenizes the linearized ``text``; ``"chat"`` renders turns with the chat template.
        max_length: cut longer examples to this many tokens (None: no cut).
        keep: which part survives the cut: ``"start"`` (drop the end) or ``"end"`` (drop the start).
        batch_size: records encoded per ``encode_batch`` call.
        add_special_tokens: passed to the tokenizer; default True for text, False for chat (the
            template already holds them).
        keep_alignment: keep offsets and span bookkeeping in ``example.alignment`` (audits, previews).
        check: validate that spans partition the text (schema v1) before use.
        on_error: ``f(index, record, error)`` for a bad record, which is then skipped; without it the
            error is raised, naming the record.
    """
    if render not in RENDERS:
        raise SadError(f"unknown render {render!r}", hint=f"use one of {', '.join(RENDERS)}")
    if keep not in KEEPS:
        raise SadError(f"unknown keep {keep!r}", hint=f"use one of {', '.join(KEEPS)}")
    if max_length is not None and max_length < 1:
        raise SadError(f"max_length must be at least 1, got {max_length}")
    encode = _Encoder(tokenizer)
    renderer = ChatRenderer(tokenizer) if render == "chat" else None
    special = (render == "text") if add_special_tokens is None else add_special_tokens
    it = iter(enumerate(records))
    while True:
        batch = list(islice(it, max(1, batch_size)))
        if not batch:
            return
        prepared: list[tuple[int, dict, Rendered | SadError]] = []
        for index, rec in batch:
            try:
                if not isinstance(rec, dict):
                    raise SadError(f"expected a record (dict), got {type(rec).__name__}")
                r = renderer(rec, check=check) if renderer is not None else render_text(rec, check=check)
            except SadError as e:
                r = e
            prepared.append((index, rec, r))
        ok = [r for _, _, r in prepared if isinstance(r, Rendered)]
        encoded = iter(encode([r.text for r in ok], special)) if ok else iter(())
        for index, rec, r in prepared:
            if isinstance(r, SadError):
                _fail(index, rec, r, on_error)
                continue
            ids, offsets = next(encoded)
            yield _example(index, rec, r, ids, offsets, max_length, keep, keep_alignment)


def _fail(index: int, rec: Any, err: SadError, on_error: OnError | None) -> None:
    if on_error is not None:
        on_error(index, rec, err)
        return
    rid = rec.get("id", index) if isinstance(rec, dict) else index
    err.message = f"record {rid!r}: {err.message}"
    raise err


def _example(index: int, rec: dict, r: Rendered, ids: np.ndarray, offsets: np.ndarray,
             max_length: int | None, keep: str, keep_alignment: bool) -> MaskedExample:
    starts = np.asarray(r.starts, dtype=np.int64)
    span_labels = np.asarray(r.labels, dtype=np.int64)
    token_labels, token_span, straddle = align(offsets, r.text, starts, span_labels)
    n = len(ids)
    stats = ExampleStats(n_tokens_full=n, straddling=len(straddle))
    # record spans with visible text that no token was assigned to
    counts = np.bincount(token_span[token_span >= 0], minlength=len(r.starts)) if n else np.zeros(len(r.starts))
    for j in np.flatnonzero(counts == 0).tolist():
        if r.sources[j] >= 0 and r.text[r.starts[j]:r.ends[j]].strip():
            stats.empty_spans.append(r.sources[j])
    lo, hi = 0, n
    if max_length is not None and n > max_length:
        lo, hi = (0, max_length) if keep == "start" else (n - max_length, n)
        cut = np.concatenate([token_labels[:lo], token_labels[hi:]])
        stats.truncated_reason = int((cut == REASON).sum())
        stats.truncated_act = int((cut == ACT).sum())
        stats.truncated_tokens = n - (hi - lo)
    kept_ids = ids[lo:hi]
    kept_labels = token_labels[lo:hi]
    supervised = (kept_labels == REASON) | (kept_labels == ACT)
    stats.n_tokens = hi - lo
    rid = rec.get("id")
    return MaskedExample(
        id=str(rid) if rid is not None else str(index),
        input_ids=kept_ids.tolist(),
        attention_mask=[1] * (hi - lo),
        token_labels=kept_labels.tolist(),
        labels=np.where(supervised, kept_ids, IGNORE_INDEX).tolist(),
        stats=stats,
        index=index,
        extra={k: rec[k] for k in CARRY if k in rec},
        alignment=Alignment(r, ids, offsets, token_span, straddle, (lo, hi)) if keep_alignment else None,
    )


def build_example(record: dict, tokenizer: Any, **kwargs: Any) -> MaskedExample:
    """One record (see :func:`build_examples` for the options)."""
    return next(build_examples([record], tokenizer, **kwargs))
