"""Statistics for evaluation reports, from scipy rather than hand-rolled formulas.

- :func:`wilson` — the 95% Wilson score interval of a success rate
  (``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``);
- :func:`mcnemar_exact` — the exact McNemar test of two policies on the same episodes: a two-sided
  binomial test of the discordant pairs (``binomtest(b, b + c, 0.5)``);
- :func:`mean_sd` — mean and sample standard deviation (``ddof=1``) across seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials; ``(nan, nan)`` when ``n == 0``."""
    if n <= 0:
        return (math.nan, math.nan)
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """Exact McNemar test of paired outcomes ``a[i]``, ``b[i]`` (same episodes, two policies).

    Returns ``{"n", "a_only", "b_only", "p_value"}``; ``a_only`` counts episodes only ``a`` won. With no
    discordant pair the p-value is 1.
    """
    if len(a) != len(b):
        raise ValueError("paired outcomes need the same episodes")
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    if a_only + b_only == 0:
        p = 1.0
    else:
        from scipy.stats import binomtest

        p = float(binomtest(a_only, a_only + b_only, 0.5, alternative="two-sided").pvalue)
    return {"n": len(a), "a_only": a_only, "b_only": b_only, "p_value": p}


def pairwise_mcnemar(outcomes: dict[str, dict]) -> list[dict]:
    """:func:`mcnemar_exact` for every pair of models, on the items (episodes, steps) both have.

    ``outcomes`` maps a model label to ``{item key: bool}``; pairs with no common item are left out.
    Each entry: ``{"a", "b", "n", "a_only", "b_only", "p_value"}``.
    """
    from itertools import combinations

    out = []
    for a, b in combinations(list(outcomes), 2):
        ra, rb = outcomes[a], outcomes[b]
        common = [k for k in ra if k in rb]
        if common:
            out.append({"a": a, "b": b, **mcnemar_exact([ra[k] for k in common], [rb[k] for k in common])})
    return out


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``nan`` sd for fewer than two values)."""
    vals = [float(v) for v in values]
    if not vals:
        return (math.nan, math.nan)
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return (m, math.nan)
    import numpy as np

    return (m, float(np.std(vals, ddof=1)))
