"""The mask audit: checks that catch silent masking bugs before any GPU time is spent.

Violations (each counted per trajectory and in total; ``sad mask-check --strict`` exits 1 on any):

- ``exactly-one``: a real token is not in exactly one of m_r, m_a, m_o (or a padding position is in one);
- ``labels``: ``labels`` disagrees with ``token_labels`` (supervised where it should not be, or not the token id);
- ``pad-supervised``: a padding position (attention_mask 0) is supervised;
- ``special-supervised``: a special token is supervised, other than the assistant end-of-turn token;
- ``eot``: chat rendering only — an assistant turn has no end-of-turn token, or it is not labeled action;
- ``empty-span``: a span with visible text received no token;
- ``decode``: the decoded tokens of a span differ from the span's text (whitespace ignored);
- ``act-truncated``: ``--max-length`` cut every action token of the trajectory;
- ``span-step`` / ``span-text``: a span claims a step that does not exist, or its text is not the
  marker plus the step field it claims (:mod:`sadcli.masks.spancheck`; records with ``steps`` only).

Notes (counted, not violations): tokens straddling a span boundary (resolved by the documented rule in
:mod:`sadcli.masks.align`), reasoning/action tokens lost to truncation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sadcli.labels import ACT, IGNORE_INDEX, LABEL_TO_KIND, OBS, PROMPT, REASON
from sadcli.masks.spancheck import SPAN_CHECKS, check_spans
from sadcli.masks.types import MaskedExample

CHECKS: dict[str, str] = {
    "exactly-one": "token not in exactly one of m_r, m_a, m_o",
    "labels": "labels disagree with token labels",
    "pad-supervised": "padding position supervised",
    "special-supervised": "special token supervised (other than end-of-turn)",
    "eot": "assistant end-of-turn token missing or not supervised",
    "empty-span": "span with text received no token",
    "decode": "decoded span tokens differ from span text",
    "act-truncated": "every action token cut by --max-length",
    **SPAN_CHECKS,
}
_WS = re.compile(r"\s+")


@dataclass
class Violation:
    id: str
    check: str
    token: int | None      # token position in the example (after truncation), when one applies
    char: int | None       # character offset in the rendered text, when known
    detail: str

    def where(self) -> str:
        parts = []
        if self.token is not None:
            parts.append(f"token {self.token}")
        if self.char is not None:
            parts.append(f"char {self.char}")
        return ", ".join(parts)


class Auditor:
    """Runs every check on examples built by one tokenizer with ``render``."""

    def __init__(self, tokenizer: Any, *, render: str = "text"):
        self.render = render
        self.special_ids = frozenset(int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []))
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            self._decode_batch: Callable[[list[list[int]]], list[str]] = \
                lambda seqs: backend.decode_batch(seqs, skip_special_tokens=False)
        else:
            self._decode_batch = lambda seqs: [tokenizer.decode(s, skip_special_tokens=False) for s in seqs]

    def check(self, ex: MaskedExample) -> list[Violation]:
        out = check_labels(ex, self.special_ids, self._eot_positions(ex))
        if ex.alignment is not None:
            out += self._check_spans(ex)
        if ex.stats.truncated_act and not any(lab == ACT for lab in ex.token_labels):
            out.append(Violation(ex.id, "act-truncated", None, None,
                                 f"all {ex.stats.truncated_act} action tokens were cut by --max-length"))
        return out

    def _eot_positions(self, ex: MaskedExample) -> set[int]:
        a = ex.alignment
        if a is None or not a.rendered.eot:
            return set()
        ts = a.token_span[a.index()]
        return set(np.flatnonzero(np.isin(ts, a.rendered.eot)).tolist())

    def _check_spans(self, ex: MaskedExample) -> list[Violation]:
        a = ex.alignment
        assert a is not None
        r, lo, hi = a.rendered, a.kept[0], a.kept[1]
        out: list[Violation] = []
        if ex.window is not None and ex.window.index > 0:
            # step windows share one full encoding: its spans are decoded once, with the first window
            return self._check_eot(ex) if self.render == "chat" else out
        for src in ex.stats.empty_spans:
            j = r.sources.index(src)
            out.append(Violation(ex.id, "empty-span", None, r.starts[j],
                                 f"{LABEL_TO_KIND[r.labels[j]]} span {src} "
                                 f"{_clip(r.text[r.starts[j]:r.ends[j]])!r} has no token"))
        # decode: every record span whose tokens all survived truncation
        order = np.argsort(a.token_span, kind="stable")
        sorted_spans = a.token_span[order]
        bounds = np.searchsorted(sorted_spans, np.arange(len(r.starts) + 1))
        todo, seqs = [], []
        for j, src in enumerate(r.sources):
            if src < 0:
                continue
            toks = order[bounds[j]:bounds[j + 1]]
            if len(toks) == 0 or toks.min() < lo or toks.max() >= hi:
                continue
            todo.append((j, int(toks.min())))
            seqs.append(a.ids[np.sort(toks)].tolist())
        for (j, first), got in zip(todo, self._decode_batch(seqs) if seqs else [], strict=False):
            want = r.text[r.starts[j]:r.ends[j]]
            if _WS.sub("", got) != _WS.sub("", want):
                out.append(Violation(ex.id, "decode", None if ex.window else first - lo, r.starts[j],
                                     f"{LABEL_TO_KIND[r.labels[j]]} span {r.sources[j]}: decoded "
                                     f"{_clip(got)!r} != text {_clip(want)!r}"))
        if self.render == "chat":
            out += self._check_eot(ex)
        return out

    def _check_eot(self, ex: MaskedExample) -> list[Violation]:
        a = ex.alignment
        assert a is not None
        r = a.rendered
        where = {int(p): i for i, p in enumerate(a.index().tolist())}      # full position -> example position
        w = ex.window
        out = []
        if len(r.eot) < len(r.turn_ends) and (w is None or w.index == 0):
            missing = len(r.turn_ends) - len(r.eot)
            out.append(Violation(ex.id, "eot", None, r.turn_ends[-1],
                                 f"{missing} assistant turn(s) have no end-of-turn special token "
                                 "in the chat template"))
        for j in r.eot:
            toks = np.flatnonzero(a.token_span == j)
            if len(toks) == 0:
                out.append(Violation(ex.id, "eot", None, r.starts[j],
                                     f"end-of-turn {r.text[r.starts[j]:r.ends[j]]!r} got no token"))
                continue
            for t in toks.tolist():
                if w is not None and not w.target[0] <= t < w.target[1]:
                    continue  # context of a step window: unsupervised by design
                i = where.get(t)
                if i is not None and ex.token_labels[i] != ACT:
                    out.append(Violation(ex.id, "eot", i, r.starts[j],
                                         f"end-of-turn token labeled {LABEL_TO_KIND.get(ex.token_labels[i])}"))
        return out


def span_violations(rec: dict, rid: str) -> list[Violation]:
    """``span-step`` / ``span-text`` violations of one segmented record (empty without ``steps``)."""
    out = []
    for p in check_spans(rec):
        sp = rec["spans"][p.span]
        out.append(Violation(rid, p.check, None, sp.get("start"), p.message()))
    return out


def check_labels(ex: MaskedExample, special_ids: frozenset[int] | set[int] = frozenset(),
                 allowed_special: set[int] | None = None) -> list[Violation]:
    """The checks that need only ids, attention mask and labels (also for read-back ``--emit`` files).

    ``allowed_special``: token positions where a supervised special token is expected (end-of-turn).
    """
    tl = np.asarray(ex.token_labels, dtype=np.int64)
    ids = np.asarray(ex.input_ids, dtype=np.int64)
    att = np.asarray(ex.attention_mask, dtype=np.int64)
    lab = np.asarray(ex.labels, dtype=np.int64)
    out: list[Violation] = []
    if not (len(tl) == len(ids) == len(att) == len(lab)):
        return [Violation(ex.id, "exactly-one", None, None,
                          f"length mismatch: input_ids {len(ids)}, token_labels {len(tl)}, "
                          f"attention_mask {len(att)}, labels {len(lab)}")]
    m_r, m_a = tl == REASON, tl == ACT
    m_o = (tl == PROMPT) | (tl == OBS)
    total = m_r.astype(np.int64) + m_a + m_o
    real = att == 1
    for t in np.flatnonzero((real & (total != 1)) | (~real & (total != 0))).tolist():
        out.append(Violation(ex.id, "exactly-one", t, None,
                             f"token label {int(tl[t])}: m_r+m_a+m_o = {int(total[t])}"
                             + ("" if real[t] else " at a padding position")))
    supervised = (m_r | m_a) & real
    expected = np.where(supervised, ids, IGNORE_INDEX)
    for t in np.flatnonzero(real & (lab != expected)).tolist():
        out.append(Violation(ex.id, "labels", t, None, f"labels[{t}] = {int(lab[t])}, expected {int(expected[t])}"))
    for t in np.flatnonzero(~real & (lab != IGNORE_INDEX)).tolist():
        out.append(Violation(ex.id, "pad-supervised", t, None, f"labels[{t}] = {int(lab[t])} at padding"))
    if special_ids:
        allowed = allowed_special or set()
        is_special = np.isin(ids, np.fromiter(special_ids, dtype=np.int64))
        for t in np.flatnonzero(is_special & (lab != IGNORE_INDEX)).tolist():
            if t not in allowed:
                out.append(Violation(ex.id, "special-supervised", t, None,
                                     f"special token id {int(ids[t])} is supervised"))
    return out


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def count_by_check(violations: Sequence[Violation]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in violations:
        out[v.check] = out.get(v.check, 0) + 1
    return out
