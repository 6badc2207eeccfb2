"""Streaming, batched mask building: segmented records in, :class:`MaskedExample` out.

Long trajectories (more tokens than ``max_length``) are either truncated (``window="truncate"``,
``keep`` start or end) or cut into **step windows** (``window="steps"``, the default): several
examples, each holding the task prompt plus as many whole preceding steps as fit as unsupervised
context, then the steps it supervises — so every reasoning and action token is supervised exactly
once. See :func:`step_windows` for the rule (and for a step that alone exceeds the budget).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np

from sadcli.errors import SadError
from sadcli.labels import ACT, IGNORE_INDEX, PROMPT, REASON
from sadcli.masks.align import align
from sadcli.masks.charcut import add_cut_estimate, char_bound, cut_rendered
from sadcli.masks.render import ChatRenderer, render_text
from sadcli.masks.types import Alignment, ExampleStats, MaskedExample, Rendered, Window

RENDERS = ("text", "chat")
KEEPS = ("start", "end")
WINDOWS = ("steps", "truncate", "none")  # none = truncate (one example per record, cut at max_length)
# record fields copied to MaskedExample.extra (and to --emit lines)
CARRY = ("success", "reward", "teacher", "env", "meta", "curriculum", "curriculum_rank", "curriculum_stage")

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
                   check: bool = True, on_error: OnError | None = None,
                   window: str = "truncate") -> Iterator[MaskedExample]:
    """Tokenize segmented records and label every token; yields examples in input order.

    Args:
        records: schema-v1 segmented records (``text`` + ``spans``; chat rendering uses the spans too).
        tokenizer: a fast Hugging Face tokenizer (see :func:`sadcli.models.load_tokenizer`).
        render: ``"text"`` tokenizes the linearized ``text``; ``"chat"`` renders turns with the chat template.
        max_length: longer records are cut (``window="truncate"``) or windowed (``"steps"``) to this
            many tokens (None: no cut).
        keep: with truncation, which part survives the cut: ``"start"`` (drop the end) or ``"end"``.
        window: ``"steps"``: a record longer than ``max_length`` becomes several examples (step
            windows, :func:`step_windows`; ``example.window`` says which, ``example.index`` stays the
            record's input position); ``"truncate"``/``"none"``: one example per record, cut.
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
    if window not in WINDOWS:
        raise SadError(f"unknown window mode {window!r}", hint=f"use one of {', '.join(WINDOWS)}")
    if max_length is not None and max_length < 1:
        raise SadError(f"max_length must be at least 1, got {max_length}")
    encode = _Encoder(tokenizer)
    renderer = ChatRenderer(tokenizer) if render == "chat" else None
    special = (render == "text") if add_special_tokens is None else add_special_tokens
    # a huge record is cut by characters before tokenizing (truncation only: windows need every token)
    bound = char_bound(tokenizer, max_length) if max_length is not None and window != "steps" else None
    cuts: dict[int, tuple[dict[int, int], int]] = {}
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
                if bound is not None and len(r.text) > bound:
                    r, removed = cut_rendered(r, bound, keep)
                    cuts[index] = (removed, len(r.text))
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
            if window == "steps" and max_length is not None and len(ids) > max_length:
                yield from _windowed(index, rec, r, ids, offsets, max_length, keep_alignment)
            else:
                ex = _example(index, rec, r, ids, offsets, max_length, keep, keep_alignment)
                if index in cuts:
                    add_cut_estimate(ex.stats, *cuts.pop(index))
                yield ex


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
    """One record (see :func:`build_examples` for the options; the first window in step-window mode)."""
    return next(build_examples([record], tokenizer, **kwargs))


# --- step windows ----------------------------------------------------------------------------

def step_units(token_steps: np.ndarray, token_labels: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """The prompt head and the token range of every step.

    Args:
        token_steps: ``[N]`` step index of each token (-1: the prompt, chat-template text, special
            tokens without characters).
        token_labels: ``[N]`` label ids.

    Returns:
        ``(h, units)``: tokens ``[0, h)`` are the head (everything before the first token of a step
        or the first supervised token); ``units`` are consecutive ``(start, end)`` ranges tiling
        ``[h, N)``, one per step. Step-less tokens after the head (chat-template text between turns)
        belong to the step that follows them (the trailing ones to the last step), so a window that
        starts at a step starts with that step's turn header.
    """
    n = len(token_steps)
    has_step = np.flatnonzero((token_steps >= 0) | (token_labels == REASON) | (token_labels == ACT))
    if not len(has_step):
        return n, []
    h = int(has_step[0])
    steps = token_steps[h:].astype(np.int64).copy()
    valid = steps >= 0
    if not valid[0]:  # a supervised token without a step: it opens step "-1"
        steps[0] = max(0, int(steps[valid].min())) if valid.any() else 0
        valid[0] = True
    # backfill step-less tokens with the next stepped token's step, the trailing ones with the last
    idx = np.where(valid, np.arange(len(steps)), len(steps))
    nxt = np.minimum.accumulate(idx[::-1])[::-1]
    last = int(np.flatnonzero(valid)[-1])
    nxt = np.where(nxt >= len(steps), last, nxt)
    filled = np.maximum.accumulate(steps[nxt])        # monotone: a unit never reopens
    cuts = np.flatnonzero(filled[1:] != filled[:-1]) + 1
    bounds = [h, *(int(c) + h for c in cuts), n]
    return h, [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def step_windows(h: int, units: list[tuple[int, int]], max_length: int) -> tuple[list[Window], int]:
    """Cut a trajectory into windows of at most ``max_length`` tokens.

    The rule:

    1. The head (task prompt) starts every window. A head longer than ``max_length // 2`` keeps only
       its last ``max_length // 2`` tokens (the task text sits at its end); the cut is counted.
    2. With ``B = max_length - head`` tokens left, windows are filled greedily from the first step:
       the first supervises as many whole consecutive steps as fit in ``B``; each later one as many
       whole consecutive steps as fit in ``ceil(B / 2)`` (at least one step), then takes as many
       whole steps immediately before them as still fit in ``B``, as unsupervised context (so every
       step after the first window is learned with at least ``B / 2`` tokens of history when the
       history exists).
    3. A step longer than ``B`` alone is split at token boundaries: its first piece holds its first
       ``B`` tokens, each later piece the next ``ceil(B / 2)`` tokens with the ``B - piece`` tokens
       just before it (same step) as context. Such steps are counted (``split_steps``).

    The targets tile ``[h, N)`` in order, so every token after the head — and so every reasoning
    and action token — is supervised in exactly one window. Returns ``(windows, split_steps)``.
    """
    half = max_length // 2
    head = (max(0, h - half), h)
    budget = max_length - (head[1] - head[0])
    out: list[tuple[tuple[int, int], tuple[int, int], bool]] = []  # (context, target, split)
    split_steps = 0
    j = 0
    while j < len(units):
        s, e = units[j]
        if e - s > budget:  # one step alone is too long
            split_steps += 1
            out.append(((s, s), (s, s + budget), True))
            piece = -(-budget // 2)
            p = s + budget
            while p < e:
                q = min(e, p + piece)
                out.append(((max(s, p - (budget - (q - p))), p), (p, q), True))
                p = q
            j += 1
            continue
        # the first window supervises as much as fits; later ones at most half the budget (at least
        # one step), so that every step after the first window is trained with earlier steps in view
        cap = budget if j == 0 else -(-budget // 2)
        k, used = j + 1, e - s
        while k < len(units) and used + units[k][1] - units[k][0] <= cap:
            used += units[k][1] - units[k][0]
            k += 1
        c, room = j, budget - used
        while c > 0 and units[c - 1][1] - units[c - 1][0] <= room:
            room -= units[c - 1][1] - units[c - 1][0]
            c -= 1
        out.append(((units[c][0], s), (s, units[k - 1][1]), False))
        j = k
    return [Window(i, len(out), head, ctx, tgt, split) for i, (ctx, tgt, split) in enumerate(out)], split_steps


def _windowed(index: int, rec: dict, r: Rendered, ids: np.ndarray, offsets: np.ndarray, max_length: int,
              keep_alignment: bool) -> Iterator[MaskedExample]:
    full = _example(index, rec, r, ids, offsets, None, "start", True)
    a = full.alignment
    assert a is not None
    labels = np.asarray(full.token_labels, dtype=np.int64)
    span_steps = np.asarray(r.steps, dtype=np.int64)
    token_steps = np.where(a.token_span >= 0, span_steps[np.maximum(a.token_span, 0)], -1)
    h, units = step_units(token_steps, labels)
    if not units:  # nothing after the prompt: plain truncation
        yield _example(index, rec, r, ids, offsets, max_length, "start", keep_alignment)
        return
    windows, split_steps = step_windows(h, units, max_length)
    for w in windows:
        pos = w.positions()
        lab = labels[pos].copy()
        lab[len(pos) - (w.target[1] - w.target[0]) - (w.context[1] - w.context[0]):
            len(pos) - (w.target[1] - w.target[0])] = PROMPT      # context: never supervised
        wid = ids[pos]
        sup = (lab == REASON) | (lab == ACT)
        first = w.index == 0
        stats = ExampleStats(n_tokens=len(pos), n_tokens_full=len(ids),
                             straddling=full.stats.straddling if first else 0,
                             empty_spans=list(full.stats.empty_spans) if first else [],
                             windows=w.count, context_tokens=w.context[1] - w.context[0],
                             split_steps=split_steps if first else 0, head_cut=w.head[0] if first else 0)
        yield MaskedExample(
            id=full.id, input_ids=wid.tolist(), attention_mask=[1] * len(pos), token_labels=lab.tolist(),
            labels=np.where(sup, wid, IGNORE_INDEX).tolist(), stats=stats, index=index, extra=dict(full.extra),
            alignment=Alignment(r, a.ids, a.offsets, a.token_span, a.straddle, (0, len(ids)), pos)
            if keep_alignment else None,
            window=w)
