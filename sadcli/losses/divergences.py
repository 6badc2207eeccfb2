"""Per-row divergences between two distributions given as log-probabilities, in fp32.

Every function here takes log-probability tensors ``[n, K]`` (K = the vocabulary, a restricted
vocabulary, or the k+1 buckets of a sparse teacher) and returns one value per row ``[n]``. They are
the building blocks of every loss in :mod:`sadcli.losses`; chunking, gathering and normalization live
elsewhere.

Conventions:

- ``teacher`` and ``student`` are *log*-probabilities (``log_softmax`` outputs), fp32.
- Entries of ``-inf`` (a zero-probability bucket, a masked vocabulary entry) are allowed: they are
  clamped to :data:`LOG_FLOOR` first, so ``0 * log 0`` terms are exactly 0 and gradients stay finite
  (never NaN). Values above the floor are untouched, so this changes nothing else.
- Divergences (the temperature τ is applied by the caller to the logits; the τ² factor as well):

  * ``forward``: KL(p_T || p_S) = Σ_v p_T(v) (log p_T(v) − log p_S(v))   — the paper's Eq. 4/5.
  * ``reverse``: KL(p_S || p_T) = Σ_v p_S(v) (log p_S(v) − log p_T(v)).
  * ``jsd``: generalized Jensen–Shannon with weight β ∈ (0, 1):
    M = β p_T + (1 − β) p_S,  JSD_β = β KL(p_T || M) + (1 − β) KL(p_S || M).
    Symmetric in (T, S) at β = 0.5; it tends to 0 at both ends, so β must be strictly inside (0, 1)
    (use ``forward``/``reverse`` for the KL limits).
"""

from __future__ import annotations

import math

import torch

LOG_FLOOR = -1e30
"""Log-probabilities below this (i.e. ``-inf``) are clamped to it: exp() of it is exactly 0 in fp32."""

DIVERGENCES = ("forward", "reverse", "jsd")


def log_softmax_fp32(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log_softmax(logits / τ)`` over the last dim, always computed in fp32.

    Args:
        logits: ``[..., V]`` in any float dtype (bf16/fp16 are upcast first).
        temperature: τ > 0.
    Returns:
        ``[..., V]`` fp32 log-probabilities.
    """
    x = logits.float()
    if temperature != 1.0:
        x = x / temperature
    return torch.log_softmax(x, dim=-1)


def _floor(logp: torch.Tensor) -> torch.Tensor:
    return logp.clamp(min=LOG_FLOOR)


def forward_kl(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """KL(p_T || p_S) per row.

    Args:
        teacher: ``[n, K]`` teacher log-probabilities.
        student: ``[n, K]`` student log-probabilities.
    Returns:
        ``[n]`` fp32.
    """
    lt, ls = _floor(teacher), _floor(student)
    return (lt.exp() * (lt - ls)).sum(-1)


def reverse_kl(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """KL(p_S || p_T) per row. Shapes as :func:`forward_kl`."""
    lt, ls = _floor(teacher), _floor(student)
    return (ls.exp() * (ls - lt)).sum(-1)


def generalized_jsd(teacher: torch.Tensor, student: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """Generalized JSD_β = β KL(p_T || M) + (1 − β) KL(p_S || M), M = β p_T + (1 − β) p_S.

    Args:
        teacher: ``[n, K]`` teacher log-probabilities.
        student: ``[n, K]`` student log-probabilities.
        beta: β, strictly between 0 and 1.
    Returns:
        ``[n]`` fp32.
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"JSD beta must be strictly between 0 and 1, got {beta}")
    lt, ls = _floor(teacher), _floor(student)
    lm = _floor(torch.logaddexp(lt + math.log(beta), ls + math.log1p(-beta)))
    kl_t = (lt.exp() * (lt - lm)).sum(-1)
    kl_s = (ls.exp() * (ls - lm)).sum(-1)
    return beta * kl_t + (1.0 - beta) * kl_s


def divergence(name: str, teacher: torch.Tensor, student: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """Dispatch on ``name`` ∈ {"forward", "reverse", "jsd"}. Shapes as :func:`forward_kl`."""
    if name == "forward":
        return forward_kl(teacher, student)
    if name == "reverse":
        return reverse_kl(teacher, student)
    if name == "jsd":
        return generalized_jsd(teacher, student, beta)
    raise ValueError(f"unknown divergence {name!r} (choose from {', '.join(DIVERGENCES)})")


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) per row of log-probabilities ``[..., K]`` -> ``[...]`` fp32."""
    lp = _floor(logp.float())
    return -(lp.exp() * lp).sum(-1)


def cross_entropy_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy −log softmax(logits)[target] in fp32.

    Args:
        logits: ``[n, V]`` (any float dtype).
        targets: ``[n]`` token ids in ``[0, V)``.
    Returns:
        ``[n]`` fp32.
    """
    x = logits.float()
    return torch.logsumexp(x, dim=-1) - x.gather(1, targets[:, None]).squeeze(1)
