"""The straddling rule and per-token labels, against a naive character-by-character reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sadcli.labels import ACT, OBS, PROMPT, REASON
from sadcli.masks.align import align, char_labels_reference


def run(text, spans, offsets):
    starts = np.array([s for s, _, _ in spans], dtype=np.int64)
    labels = np.array([lab for _, _, lab in spans], dtype=np.int64)
    return align(np.array(offsets, dtype=np.int64).reshape(-1, 2), text, starts, labels)


def test_straddling_token_goes_to_its_first_non_space_character():
    text = "think\n Action"
    spans = [(0, 6, REASON), (6, 13, ACT)]            # "think\n" | " Action"
    offsets = [(0, 5), (5, 7), (7, 13)]               # "think" | "\n " (whitespace only) | "Action"
    labels, span, straddle = run(text, spans, offsets)
    assert labels.tolist() == [REASON, REASON, ACT]   # whitespace-only: its first character's span
    assert straddle == [1]
    offsets = [(0, 4), (4, 13)]                       # "thin" | "k\n Action": first non-space 'k' -> reason
    labels, _, straddle = run(text, spans, offsets)
    assert labels.tolist() == [REASON, REASON] and straddle == [1]
    offsets = [(0, 5), (5, 13)]                       # "\n Action": first non-space 'A' -> act
    labels, span, straddle = run(text, spans, offsets)
    assert labels.tolist() == [REASON, ACT] and span.tolist() == [0, 1] and straddle == [1]


def test_tokens_without_characters_are_prompt():
    text = "ab"
    labels, span, straddle = run(text, [(0, 1, REASON), (1, 2, ACT)], [(0, 0), (0, 1), (1, 2)])
    assert labels.tolist() == [PROMPT, REASON, ACT]
    assert span.tolist() == [-1, 0, 1] and straddle == []


@st.composite
def cases(draw):
    text = draw(st.text(alphabet="ab \n[]é", min_size=1, max_size=40))
    n = len(text)
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=6))) if n > 1 else []
    bounds = [0, *cuts, n]
    spans = [(a, b, draw(st.sampled_from([PROMPT, REASON, ACT, OBS]))) for a, b in zip(bounds, bounds[1:], strict=False)]
    tcuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n))) if n > 1 else []
    tb = [0, *tcuts, n]
    offsets = list(zip(tb, tb[1:], strict=False))
    if draw(st.booleans()):
        offsets = [(0, 0), *offsets]  # a BOS-like special token
    return text, spans, offsets


@settings(max_examples=300, deadline=None)
@given(cases())
def test_property_matches_reference_and_exactly_one(case):
    text, spans, offsets = case
    labels, span, straddle = run(text, spans, offsets)
    ref = char_labels_reference(text, [s for s, _, _ in spans], [e for _, e, _ in spans],
                                [lab for _, _, lab in spans], offsets)
    assert labels.tolist() == ref
    m_r, m_a = labels == REASON, labels == ACT
    m_o = (labels == PROMPT) | (labels == OBS)
    assert ((m_r.astype(int) + m_a + m_o) == 1).all()
    # a token straddles exactly when its characters touch two spans
    owner = [next(i for i, (s, e, _) in enumerate(spans) if s <= c < e) for c in range(len(text))]
    naive = [i for i, (a, b) in enumerate(offsets) if b > a and owner[a] != owner[b - 1]]
    assert straddle == naive
