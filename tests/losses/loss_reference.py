"""Deliberately naive reference implementations for the loss tests.

Full ``[B, T, V]`` logits, explicit Python loops over every position, probabilities from the textbook
softmax formula and divergences written as ``Σ p log(p / q)``. Nothing here shares code with
``sadcli.losses``.
"""

from __future__ import annotations

import torch

PROMPT, REASON, ACT, OBS = 0, 1, 2, 3


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


SPAN_AWARE = ("sad", "random-spans", "only-reason", "only-act")
DEFAULT_SUPERVISE = {"token-kd": ("reason", "act", "obs"), "kd": ("reason", "act", "obs"),
                     "only-reason": ("reason",), "only-act": ("act",)}


def kinds_after_prompt(row) -> list[str]:
    """Kind name of every token of one sequence: the leading PROMPT run is "prompt", any later PROMPT or
    OBS token "obs" (everything after the task prompt), REASON/ACT "reason"/"act", padding "pad"."""
    out, started = [], False
    for lab in [int(x) for x in row]:
        if lab in (REASON, ACT, OBS):
            started = True
        if lab < 0:
            out.append("pad")
        elif lab == REASON:
            out.append("reason")
        elif lab == ACT:
            out.append("act")
        elif lab == OBS or started:
            out.append("obs")
        else:
            out.append("prompt")
    return out


def bucketed(p: torch.Tensor, ids) -> torch.Tensor:
    """A full distribution [V] as len(ids) + 1 buckets: p at ids, then everything else."""
    ids = torch.as_tensor(ids)
    inside = p[ids]
    return torch.cat([inside, (p.sum() - inside.sum()).reshape(1)])


def naive_loss(name: str, *, logits: torch.Tensor, teacher_logits: torch.Tensor | None, input_ids: torch.Tensor,
               labels: torch.Tensor, divergence: str = "forward", beta: float = 0.5, temperature: float = 1.0,
               lambda_reason: float = 1.0, lambda_act: float = 1.0, normalization: str = "per-span",
               vocab_a: torch.Tensor | None = None, alpha: float = 0.5, counts: tuple | None = None,
               supervise: tuple | None = None, span_vocab: dict | None = None) -> dict:
    """Loss from full logits [B, T, V] (student, differentiable) and teacher logits [B, T, V].

    ``labels`` are the (already relabelled, for random-spans) per-token span labels.
    ``counts`` = (num_reason, num_act, num_other) global counts, default this batch's.
    ``supervise``: kind names trained on (default: the loss's own set). ``span_vocab``: {REASON: ids,
    ACT: ids} for the bucketed domains (span-aware losses only).
    """
    B, T, V = logits.shape
    sup = tuple(supervise) if supervise else DEFAULT_SUPERVISE.get(name, ("reason", "act"))
    sums = {"r": 0.0, "a": 0.0, "o": 0.0}
    ce_sums = {"r": 0.0, "a": 0.0, "o": 0.0}
    n = {"r": 0, "a": 0, "o": 0}
    tau = temperature
    for b in range(B):
        kinds = kinds_after_prompt(labels[b])
        for t in range(1, T):
            kind = kinds[t]
            if kind == "pad" or kind not in sup:
                continue
            key = "r" if kind == "reason" else "a" if kind == "act" else "o"
            n[key] += 1
            zs = logits[b, t - 1]
            ce = -torch.log(softmax(zs)[input_ids[b, t]])
            ce_sums[key] = ce_sums[key] + ce
            if teacher_logits is None:
                continue
            zt = teacher_logits[b, t - 1]
            if vocab_a is not None and key == "a" and name in ("sad", "only-act", "random-spans"):
                zs, zt = zs[vocab_a], zt[vocab_a]
            p, q = softmax(zt / tau), softmax(zs / tau)
            if span_vocab is not None and key in ("r", "a") and name in SPAN_AWARE:
                dom = span_vocab[REASON if key == "r" else ACT]
                p, q = bucketed(p, dom), bucketed(q, dom)
            d = tau * tau * div_naive(divergence, p, q, beta)
            sums[key] = sums[key] + d
    if counts is not None:
        n = {"r": counts[0], "a": counts[1], "o": counts[2]}
    per = normalization == "per-span"

    def norm(x, c):
        if not per:
            return x
        return x / c if c > 0 else x * 0.0

    cot, act, other = norm(sums["r"], n["r"]), norm(sums["a"], n["a"]), norm(sums["o"], n["o"])
    n_all = n["r"] + n["a"] + n["o"]
    if name in SPAN_AWARE:
        total = lambda_reason * cot + lambda_act * act + other
    elif name in ("token-kd", "flat"):
        total = norm(sums["r"] + sums["a"] + sums["o"], n_all)
    elif name == "kd":
        total = (alpha * norm(ce_sums["r"] + ce_sums["a"] + ce_sums["o"], n_all)
                 + (1 - alpha) * norm(sums["r"] + sums["a"] + sums["o"], n_all))
    elif name in ("seqkd", "sft"):
        total = norm(ce_sums["r"] + ce_sums["a"] + ce_sums["o"], n_all)
    else:
        raise ValueError(name)
    if not isinstance(total, torch.Tensor):
        total = logits.sum() * 0.0
    return {"total": total, "cot": cot, "act": act, "other": other, "n": n}


def naive_bucketed_forward_kl(zs: torch.Tensor, ids: torch.Tensor, t_logp: torch.Tensor, t_tail: torch.Tensor,
                              kind: str = "forward", beta: float = 0.5) -> torch.Tensor:
    """One position: student logits zs [V], teacher top-k ids [k], log-probs [k], tail log-mass []."""
    q_all = softmax(zs)
    q_top = q_all[ids]
    q_tail = 1.0 - q_top.sum()
    p = torch.cat([torch.exp(t_logp), torch.exp(t_tail)[None]])
    q = torch.cat([q_top, q_tail[None]])
    return div_naive(kind, p, q, beta)
