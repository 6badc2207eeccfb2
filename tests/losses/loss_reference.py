"""Deliberately naive reference implementations for the loss tests.

Full ``[B, T, V]`` logits, explicit Python loops over every position, probabilities from the textbook
softmax formula and divergences written as ``Σ p log(p / q)``. Nothing here shares code with
``sadcli.losses``.
"""

from __future__ import annotations

import torch

REASON, ACT = 1, 2


def softmax(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z - z.max())
    return e / e.sum()


def div_naive(kind: str, p: torch.Tensor, q: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """p = teacher probabilities [K], q = student probabilities [K]."""
    if kind == "forward":
        return (p * torch.log(p / q)).sum()
    if kind == "reverse":
        return (q * torch.log(q / p)).sum()
    m = beta * p + (1 - beta) * q
    return beta * (p * torch.log(p / m)).sum() + (1 - beta) * (q * torch.log(q / m)).sum()


def naive_loss(name: str, *, logits: torch.Tensor, teacher_logits: torch.Tensor | None, input_ids: torch.Tensor,
               labels: torch.Tensor, divergence: str = "forward", beta: float = 0.5, temperature: float = 1.0,
               lambda_reason: float = 1.0, lambda_act: float = 1.0, normalization: str = "per-span",
               vocab_a: torch.Tensor | None = None, alpha: float = 0.5, counts: tuple | None = None) -> dict:
    """Loss from full logits [B, T, V] (student, differentiable) and teacher logits [B, T, V].

    ``labels`` are the (already shuffled, for random-spans) per-token span labels.
    ``counts`` = (num_reason, num_act, num_other) global counts, default this batch's.
    """
    B, T, V = logits.shape
    sums = {"r": 0.0, "a": 0.0, "o": 0.0}
    ce_sums = {"r": 0.0, "a": 0.0, "o": 0.0}
    n = {"r": 0, "a": 0, "o": 0}
    tau = temperature
    for b in range(B):
        for t in range(1, T):
            lab = int(labels[b, t])
            if lab < 0:
                continue
            key = "r" if lab == REASON else "a" if lab == ACT else "o"
            if key == "o" and name != "flat":
                continue
            n[key] += 1
            zs = logits[b, t - 1]
            ce = -torch.log(softmax(zs)[input_ids[b, t]])
            ce_sums[key] = ce_sums[key] + ce
            if teacher_logits is None:
                continue
            zt = teacher_logits[b, t - 1]
            if vocab_a is not None and key == "a" and name in ("sad", "only-act", "random-spans"):
                zs, zt = zs[vocab_a], zt[vocab_a]
            d = tau * tau * div_naive(divergence, softmax(zt / tau), softmax(zs / tau), beta)
            sums[key] = sums[key] + d
    if counts is not None:
        n = {"r": counts[0], "a": counts[1], "o": counts[2]}
    per = normalization == "per-span"

    def norm(x, c):
        if not per:
            return x
        return x / c if c > 0 else x * 0.0

    cot, act = norm(sums["r"], n["r"]), norm(sums["a"], n["a"])
    if name in ("sad", "random-spans"):
        total = lambda_reason * cot + lambda_act * act
    elif name == "only-reason":
        total = lambda_reason * cot
    elif name == "only-act":
        total = lambda_act * act
    elif name == "token-kd":
        total = norm(sums["r"] + sums["a"], n["r"] + n["a"])
    elif name == "kd":
        total = (alpha * norm(ce_sums["r"] + ce_sums["a"], n["r"] + n["a"])
                 + (1 - alpha) * norm(sums["r"] + sums["a"], n["r"] + n["a"]))
    elif name == "seqkd":
        total = norm(ce_sums["r"] + ce_sums["a"], n["r"] + n["a"])
    elif name == "flat":
        total = norm(sums["r"] + sums["a"] + sums["o"], n["r"] + n["a"] + n["o"])
    else:
        raise ValueError(name)
    if not isinstance(total, torch.Tensor):
        total = logits.sum() * 0.0
    return {"total": total, "cot": cot, "act": act, "n": n}


def naive_bucketed_forward_kl(zs: torch.Tensor, ids: torch.Tensor, t_logp: torch.Tensor, t_tail: torch.Tensor,
                              kind: str = "forward", beta: float = 0.5) -> torch.Tensor:
    """One position: student logits zs [V], teacher top-k ids [k], log-probs [k], tail log-mass []."""
    q_all = softmax(zs)
    q_top = q_all[ids]
    q_tail = 1.0 - q_top.sum()
    p = torch.cat([torch.exp(t_logp), torch.exp(t_tail)[None]])
    q = torch.cat([q_top, q_tail[None]])
    return div_naive(kind, p, q, beta)
