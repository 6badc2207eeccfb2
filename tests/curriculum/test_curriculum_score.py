"""The complexity score, its empirical CDF rank and the stages (no models needed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sadcli.curriculum.score import complexity, ecdf, order, scale, stages

values = st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=60)


def naive_ecdf(x):
    return [sum(1 for y in x if y <= v) / len(x) for v in x]


@given(values)
@settings(max_examples=100, deadline=None)
def test_ecdf_equals_the_definition(x):
    r = ecdf(x)
    assert r.tolist() == pytest.approx(naive_ecdf(x))
    assert 0 < r.min() and r.max() == 1.0
    # monotone in the value; equal values share a rank
    for i in range(len(x)):
        for j in range(len(x)):
            if x[i] < x[j]:
                assert r[i] < r[j]
            if x[i] == x[j]:
                assert r[i] == r[j]


@given(values, st.integers(1, 8))
@settings(max_examples=100, deadline=None)
def test_stages_are_monotone_equal_count_buckets(x, k):
    r = ecdf(x)
    s = stages(r, k)
    assert s.min() >= 0 and s.max() <= k - 1
    for i in range(len(x)):
        for j in range(len(x)):
            if r[i] <= r[j]:
                assert s[i] <= s[j]
    if len(set(x)) == len(x):  # no ties: counts differ by at most one... per bucket of ceil(n/k)
        counts = np.bincount(s, minlength=k)
        n = len(x)
        # stage j holds ranks in ((j)/k, (j+1)/k]: exactly the integers m with j*n/k < m <= (j+1)*n/k
        want = [sum(1 for m in range(1, n + 1) if j * n / k < m <= (j + 1) * n / k) for j in range(k)]
        assert counts.tolist() == want


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 200), st.floats(0, 8, allow_nan=False)),
                min_size=1, max_size=50),
       st.sampled_from(["cdf", "zscore", "raw"]),
       st.floats(0, 3), st.floats(0, 3), st.floats(0, 3))
@settings(max_examples=100, deadline=None)
def test_order_is_easy_to_hard_and_ties_keep_input_order(rows, how, a, b, g):
    lr, la, h = (list(c) for c in zip(*rows, strict=True))
    s = complexity(lr, la, h, alpha=a, beta=b, gamma=g, how=how)
    ref = [a * p + b * q + g * w for p, q, w in zip(scale(lr, how), scale(la, how), scale(h, how), strict=True)]
    assert s.tolist() == pytest.approx(ref)
    idx = order(s).tolist()
    assert sorted(idx) == list(range(len(rows)))
    for u, v in zip(idx, idx[1:], strict=False):
        assert s[u] < s[v] or (s[u] == s[v] and u < v)


def test_scales_by_hand():
    x = [10, 20, 20, 40]
    assert scale(x, "cdf").tolist() == [0.25, 0.75, 0.75, 1.0]
    assert scale(x, "raw").tolist() == x
    z = scale(x, "zscore")
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    assert scale([3, 3], "zscore").tolist() == [0, 0]
    # cdf makes the weights unit-free: tokens (hundreds) and nats (units) count the same
    s = complexity([100, 200, 300], [1, 1, 1], [3.0, 2.0, 1.0], how="cdf")
    assert s.tolist() == pytest.approx([1 / 3 + 1 + 1, 2 / 3 + 1 + 2 / 3, 1 + 1 + 1 / 3])
    with pytest.raises(ValueError):
        complexity([1], [1], None, gamma=1.0)
    assert complexity([1, 2], [1, 1], None, gamma=0.0).tolist() == [1.5, 2.0]
