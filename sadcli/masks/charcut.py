"""Cut a huge rendered trajectory by characters before tokenizing it.

With ``--max-length N`` only N tokens survive truncation, yet tokenizing a 50 MB record whole takes
gigabytes and a minute. No token covers more than ``L`` characters (``L`` = the longest vocabulary
entry, in bytes, which bounds its characters), so the first (or last) N tokens of a text lie inside
its first (or last) ``N * L`` characters. :func:`cut_rendered` keeps ``N * L + SLACK`` characters on
the kept side — the tokens that survive truncation are the same as without the cut, except where one
pre-token (a word) longer than ``SLACK`` characters crosses the cut — and only when the text is longer
than that bound, so ordinary records are untouched and their truncation counts stay exact.

For a record cut this way the reasoning/action tokens lost to truncation beyond the character cut are
estimated from the kept part's tokens-per-character ratio (reported as part of ``truncated_*``).
"""

from __future__ import annotations

from typing import Any

from sadcli.labels import ACT, REASON
from sadcli.masks.types import Rendered

SLACK = 4096  # characters kept beyond the bound: room for the pre-token that crosses the cut


def max_token_chars(tokenizer: Any) -> int:
    """Longest vocabulary entry (bytes of its stored form, >= its characters), cached on the tokenizer."""
    cached = getattr(tokenizer, "_sad_max_token_chars", None)
    if cached:
        return cached
    vocab = tokenizer.get_vocab()
    longest = max((len(t.encode("utf-8")) for t in vocab), default=1)
    try:
        tokenizer._sad_max_token_chars = longest
    except AttributeError:
        pass
    return longest


def char_bound(tokenizer: Any, max_length: int) -> int:
    return max_length * max_token_chars(tokenizer) + SLACK


def cut_rendered(r: Rendered, bound: int, keep: str) -> tuple[Rendered, dict[int, int]] | None:
    """``r`` cut to ``bound`` characters on the ``keep`` side, and the characters removed per label.

    None when ``r.text`` is not longer than ``bound``.
    """
    n = len(r.text)
    if n <= bound:
        return None
    lo, hi = (0, bound) if keep == "start" else (n - bound, n)
    removed: dict[int, int] = {}
    keep_idx = []
    for j, (s, e, lab) in enumerate(zip(r.starts, r.ends, r.labels, strict=True)):
        cs, ce = max(s, lo), min(e, hi)
        inside = max(0, ce - cs)
        if e - s - inside:
            removed[lab] = removed.get(lab, 0) + (e - s - inside)
        if inside > 0:
            keep_idx.append(j)
    remap = {j: k for k, j in enumerate(keep_idx)}
    out = Rendered(
        text=r.text[lo:hi],
        starts=[max(r.starts[j], lo) - lo for j in keep_idx],
        ends=[min(r.ends[j], hi) - lo for j in keep_idx],
        labels=[r.labels[j] for j in keep_idx],
        steps=[r.steps[j] for j in keep_idx],
        sources=[r.sources[j] for j in keep_idx],
        eot=[remap[j] for j in r.eot if j in remap],
        turn_ends=[t - lo for t in r.turn_ends if lo <= t <= hi],
    )
    return out, removed


def add_cut_estimate(stats: Any, removed: dict[int, int], kept_chars: int) -> None:
    """Add the tokens estimated for the removed characters to an example's truncation counts."""
    if kept_chars <= 0:
        return
    per_char = stats.n_tokens_full / kept_chars
    est = {lab: int(round(c * per_char)) for lab, c in removed.items()}
    total = sum(est.values())
    stats.truncated_reason += est.get(REASON, 0)
    stats.truncated_act += est.get(ACT, 0)
    stats.truncated_tokens += total
    stats.n_tokens_full += total
