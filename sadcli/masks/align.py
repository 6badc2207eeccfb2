"""Per-token labels from character spans and a fast tokenizer's offset mapping.

The straddling rule: a token whose characters come from two or more spans (e.g. one BPE token
covering the newline that ends a reasoning span and the ``[`` that opens ``[ACT]``) belongs to the span
that holds its **first non-whitespace character**; a token made only of whitespace belongs to the span
of its first character. Such tokens are counted (``ExampleStats.straddling``). Tokens with no
characters (special tokens the tokenizer adds, e.g. a BOS) are PROMPT.
"""

from __future__ import annotations

import numpy as np

from sadcli.labels import PROMPT


def align(offsets: np.ndarray, text: str, starts: np.ndarray, span_labels: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Assign every token to a span.

    Args:
        offsets: ``[N, 2]`` int64 character ``(start, end)`` of each token in ``text``.
        text: the tokenized string.
        starts: ``[S]`` int64 sorted span starts (spans partition ``text``; ``starts[0] == 0``).
        span_labels: ``[S]`` int64 label id of each span.

    Returns:
        ``(token_labels [N], token_span [N], straddling token indices)``; ``token_span`` is -1 for
        tokens with no characters.
    """
    n = offsets.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), []
    s = offsets[:, 0]
    e = offsets[:, 1]
    first = np.searchsorted(starts, s, side="right") - 1
    last = np.searchsorted(starts, e - 1, side="right") - 1
    empty = e <= s
    token_span = first
    straddle = np.flatnonzero((first != last) & ~empty).tolist()
    for i in straddle:  # few per trajectory: resolve them one by one
        a, b = int(s[i]), int(e[i])
        piece = text[a:b]
        k = len(piece) - len(piece.lstrip())
        if k < len(piece):
            token_span[i] = int(np.searchsorted(starts, a + k, side="right") - 1)
    token_labels = span_labels[token_span]
    if empty.any():
        token_labels = np.where(empty, PROMPT, token_labels)
        token_span = np.where(empty, -1, token_span)
    return token_labels, token_span, straddle


def char_labels_reference(text: str, starts: list[int], ends: list[int], labels: list[int],
                          offsets: list[tuple[int, int]]) -> list[int]:
    """The straddling rule written naively, character by character (for tests)."""
    per_char = [PROMPT] * len(text)
    for a, b, lab in zip(starts, ends, labels, strict=False):
        for c in range(a, b):
            per_char[c] = lab
    out = []
    for a, b in offsets:
        if b <= a:
            out.append(PROMPT)
            continue
        k = next((c for c in range(a, b) if not text[c].isspace()), a)
        out.append(per_char[k])
    return out
