"""The complexity score of the paper (Eq. 13) and what ``sad curriculum`` derives from it.

    C(τ) = α · f(len_r(τ)) + β · f(len_a(τ)) + γ · f(H(π_T(τ)))

``len_r`` / ``len_a``: tokens in the trajectory's reasoning / action spans; ``H``: the teacher's mean
token entropy over those positions. ``f`` is the scaling (``--scale``):

- ``cdf`` (default): the empirical CDF over the data set, ``F(x) = #{x_j <= x} / n`` in (0, 1], so the
  three terms are comparable whatever their units (tokens vs nats) and α, β, γ are plain weights;
- ``zscore``: ``(x - mean) / std`` (population std; 0 when constant);
- ``raw``: the values as they are (tokens and nats: α, β, γ then carry the units).

``curriculum_rank`` is the empirical CDF of the score (ties share the highest rank, so the hardest
record has rank 1) and ``curriculum_stage`` its ``K`` equal-count buckets:
``stage = ceil(K · rank) - 1`` (ties never straddle a stage boundary). Pure numpy/scipy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCALES = ("cdf", "zscore", "raw")


def ecdf(x: Sequence[float]) -> np.ndarray:
    """Empirical CDF of each value within ``x``: ``#{j: x_j <= x_i} / n``, float64 ``[n]`` in (0, 1]."""
    from scipy.stats import rankdata

    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return a
    return rankdata(a, method="max") / a.size


def scale(x: Sequence[float], how: str = "cdf") -> np.ndarray:
    """One component mapped by ``how`` (``cdf``, ``zscore`` or ``raw``): float64 ``[n]``."""
    a = np.asarray(x, dtype=np.float64)
    if how == "cdf":
        return ecdf(a)
    if how == "zscore":
        sd = a.std() if a.size else 0.0
        return (a - a.mean()) / sd if sd > 0 else np.zeros_like(a)
    if how == "raw":
        return a.copy()
    raise ValueError(f"unknown scale {how!r} (use one of {', '.join(SCALES)})")


def complexity(len_reason: Sequence[float], len_act: Sequence[float], entropy: Sequence[float] | None, *,
               alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0, how: str = "cdf") -> np.ndarray:
    """``α f(len_r) + β f(len_a) + γ f(H)``: float64 ``[n]``; ``entropy`` may be None when ``γ = 0``."""
    s = alpha * scale(len_reason, how) + beta * scale(len_act, how)
    if gamma:
        if entropy is None:
            raise ValueError("gamma != 0 needs the teacher entropy")
        s = s + gamma * scale(entropy, how)
    return s


def stages(rank: Sequence[float], k: int) -> np.ndarray:
    """Equal-count buckets of an empirical-CDF rank: ``ceil(k · rank) - 1`` clipped to ``[0, k-1]``: int64 ``[n]``."""
    if k < 1:
        raise ValueError("stages must be >= 1")
    r = np.asarray(rank, dtype=np.float64)
    return np.clip(np.ceil(k * r - 1e-9).astype(np.int64) - 1, 0, k - 1)


def order(score: Sequence[float]) -> np.ndarray:
    """Indices easy -> hard: increasing score, ties in input order (stable)."""
    return np.argsort(np.asarray(score, dtype=np.float64), kind="stable")
