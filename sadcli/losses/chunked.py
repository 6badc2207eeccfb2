"""Memory-lean engine: LM head + divergence over supervised rows, chunk by chunk, forward and backward.

Every loss reduces to ``total = Σ_i coef_div[i] · div_i + coef_ce[i] · ce_i`` over the ``N`` supervised
rows, where ``div_i`` is the (τ²-scaled) divergence between teacher and student next-token distributions
at row ``i`` and ``ce_i`` the cross-entropy of the true next token. The coefficients carry the span
weights λ and the normalization, so this engine knows nothing about spans.

Memory: at most ``[chunk_size, V]`` logits (and a few fp32 temporaries of that size) exist at once.
For an LM head given as a weight (``nn.Linear``, tied embeddings...), the custom autograd function
:class:`_FusedRows` computes, chunk by chunk in the forward pass, the exact gradient of ``total`` with
respect to the gathered hidden states ``[N, H]``, the head weight ``[V, H]`` and bias ``[V]`` (the
gradient of each chunk's logits is obtained with autograd on that chunk only, then multiplied through
the head); backward only scales them. Nothing of size ``[N, V]`` is ever stored. For student logits given
directly, the gradient is written into one ``[B*T, V]`` buffer (the size of the logits' own gradient).
For an opaque head module, each chunk is wrapped in ``torch.utils.checkpoint`` (recomputed in backward).
Results do not depend on the chunk size (up to float summation order).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sadcli.losses.divergences import LOG_FLOOR, cross_entropy_rows, divergence
from sadcli.losses.sparse import bucket_logprobs
from sadcli.losses.teachers import Head, TeacherRows
from sadcli.losses.transforms import LogitTransform


@dataclass
class Segment:
    """Rows processed with one vocabulary.

    Attributes:
        rows: ``[n]`` long, supervised-row numbers (``0..N-1``).
        vocab_ids: ``[V_a]`` long (restricted vocabulary, renormalized) or None (full vocabulary).
        vocab_lookup: ``[V]`` long, full id -> column in ``vocab_ids`` (-1 if absent), for sparse teachers.
        bucket_ids: ``[D]`` long or None: bucketed domain (``span_vocab="bucketed"``). Teacher and student
            full distributions become ``D + 1`` buckets (the D ids, then "every other token"), dense
            teachers only.
    """

    rows: torch.Tensor
    vocab_ids: torch.Tensor | None = None
    vocab_lookup: torch.Tensor | None = None
    bucket_ids: torch.Tensor | None = None


@dataclass
class Job:
    """Everything the engine needs besides the differentiable tensors.

    Attributes:
        segments: row groups (see :class:`Segment`).
        coef_div: ``[N]`` fp32 weight of each row's divergence (0 = not in the objective).
        coef_ce: ``[N]`` fp32 weight of each row's cross-entropy, or None.
        targets: ``[N]`` long next-token ids (for cross-entropy), or None.
        teacher: :class:`TeacherRows` or None (no divergence term).
        divergence: "forward" | "reverse" | "jsd".
        beta: JSD β.
        temperature: τ; the divergence is multiplied by τ².
        transform: the student model's final-logit transform, or None.
        chunk_size: rows per chunk.
        general_chunk_size: rows per chunk for segments that need the general per-chunk autograd path
            (it keeps several times more ``[c, V]`` temporaries than the closed form); None = ``chunk_size``.
        div: ``[N]`` fp32 per-row divergence (τ²-scaled; output, detached).
        ce: ``[N]`` fp32 per-row cross-entropy (output, detached) or None.
    """

    segments: list[Segment]
    coef_div: torch.Tensor | None
    coef_ce: torch.Tensor | None
    targets: torch.Tensor | None
    teacher: TeacherRows | None
    divergence: str = "forward"
    beta: float = 0.5
    temperature: float = 1.0
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    chunk_size: int = 256
    general_chunk_size: int | None = None
    div: torch.Tensor | None = None
    ce: torch.Tensor | None = None

    def chunks(self):
        """Yield ``(segment, rows[c])`` over all segments."""
        for seg in self.segments:
            step = self.chunk_size
            if self.general_chunk_size is not None and not fast_path_ok(self, seg):
                step = self.general_chunk_size
            step = max(1, int(step))
            n = int(seg.rows.numel())
            for s in range(0, n, step):
                yield seg, seg.rows[s:s + step]


def row_terms(zs: torch.Tensor, job: Job, seg: Segment, rows: torch.Tensor
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-row divergence and cross-entropy for one chunk.

    Args:
        zs: ``[c, V]`` fp32 student logits (after the model's logit transform).
        rows: ``[c]`` supervised-row numbers.
    Returns:
        ``(div [c] or None, ce [c] or None)``; div already multiplied by τ².
    """
    div = ce = None
    if job.coef_ce is not None:
        ce = cross_entropy_rows(zs, job.targets[rows])
    if job.teacher is not None and job.coef_div is not None:
        tau = job.temperature
        s = zs / tau if tau != 1.0 else zs
        if seg.vocab_ids is not None:
            s = s.index_select(1, seg.vocab_ids)
        ls = torch.log_softmax(s, dim=-1)
        buckets = None if seg.bucket_ids is None else seg.bucket_ids.to(zs.device)[None, :].expand(zs.shape[0], -1)
        if buckets is not None:
            ls = bucket_logprobs(ls, buckets)
        tc = job.teacher.chunk(rows)
        if tc.logits is not None:
            zt = tc.logits / tau if tau != 1.0 else tc.logits
            if seg.vocab_ids is not None:
                zt = zt.index_select(1, seg.vocab_ids)
            lt = torch.log_softmax(zt, dim=-1)
            if buckets is not None:
                lt = bucket_logprobs(lt, buckets)
        elif buckets is not None:
            raise ValueError("a bucketed segment needs a dense teacher")
        else:
            ids = tc.ids.to(zs.device)
            if seg.vocab_lookup is not None:
                ids = seg.vocab_lookup[ids]
            ls = bucket_logprobs(ls, ids)
            lt = torch.cat([tc.logprobs, tc.tail_logprob[:, None]], dim=-1).to(zs.device)
        div = divergence(job.divergence, lt, ls, job.beta)
        if tau != 1.0:
            div = div * (tau * tau)
    return div, ce


def _weighted(job: Job, rows: torch.Tensor, div, ce) -> torch.Tensor:
    tot = None
    if div is not None:
        tot = (job.coef_div[rows] * div).sum()
    if ce is not None:
        t = (job.coef_ce[rows] * ce).sum()
        tot = t if tot is None else tot + t
    return tot


def _record(job: Job, rows: torch.Tensor, div, ce) -> None:
    if div is not None:
        job.div.index_copy_(0, rows, div.detach())
    if ce is not None:
        job.ce.index_copy_(0, rows, ce.detach())


def fast_path_ok(job: Job, seg: Segment) -> bool:
    """Whether a chunk can use the closed-form gradient (:func:`_fast_chunk`) instead of local autograd."""
    return ((job.transform is None or isinstance(job.transform, LogitTransform))
            and seg.bucket_ids is None
            and (seg.vocab_ids is None or job.coef_ce is None)
            and (job.teacher is None or job.coef_div is None or not job.teacher.sparse)
            and (job.coef_ce is None or job.temperature == 1.0))


def _fast_chunk(z: torch.Tensor, job: Job, seg: Segment, rows: torch.Tensor, need_grad: bool):
    """Closed-form loss and gradient for forward/reverse KL and JSD (+ cross-entropy at τ = 1), dense teacher.

    ``z`` (``[c, V]``) is owned by this function and overwritten; at most ~4 fp32 ``[c, V]`` buffers live
    at once. With s = z/τ, p = softmax(s), M = β p_T + (1 − β) p_S:
    d(τ² KL(p_T||p_S))/dz = τ (p_S − p_T);  d(τ² KL(p_S||p_T))/dz = τ p_S (log p_S − log p_T − KL(p_S||p_T));
    d(τ² JSD_β)/dz = τ (1 − β) p_S (log p_S − log M − KL(p_S||M));  d(ce)/dz = p_S − onehot (τ = 1).
    """
    tau = job.temperature
    va = seg.vocab_ids                                        # restricted vocabulary: softmax over V_a only
    full_shape = z.shape
    tf = job.transform
    deriv = None                                              # d transform(z) / dz, elementwise
    if tf is not None and not tf.is_identity:
        s = z.float()                                         # z is owned: in-place is safe
        del z
        if tf.scale != 1.0:
            s.mul_(tf.scale)
        if tf.softcap is not None:
            s.div_(tf.softcap).tanh_()
            deriv = torch.mul(s, s).neg_().add_(1.0).mul_(tf.scale)   # scale · (1 − tanh²)
            s.mul_(tf.softcap)
        if va is not None:
            s = s.index_select(1, va)
            deriv = None if deriv is None else deriv.index_select(1, va)
        const = tf.scale if deriv is None else None
    else:
        s = z.float() if va is None else z.index_select(1, va).float()
        del z
        const = None
    if tau != 1.0:
        s.div_(tau)
    ls = torch.log_softmax(s, dim=-1)
    del s
    ls.clamp_(min=LOG_FLOOR)
    cd = None if job.coef_div is None or job.teacher is None else job.coef_div[rows]
    cc = None if job.coef_ce is None else job.coef_ce[rows]
    tgt = None if cc is None else job.targets[rows][:, None]
    div = ce = pt = ps = None
    if cc is not None:
        ce = -ls.gather(1, tgt).squeeze(1)                   # τ = 1 here, so ls is the plain log-softmax
    if cd is not None:
        zt = job.teacher.chunk(rows).logits.to(ls.device)
        if va is not None:
            zt = zt.index_select(1, va)
        if tau != 1.0:
            zt = zt / tau
        lt = torch.log_softmax(zt, dim=-1)
        del zt
        lt.clamp_(min=LOG_FLOOR)
        if job.divergence == "forward":
            pt = lt.exp()
            lt.sub_(ls).mul_(pt)                              # p_T (log p_T - log p_S)
            kl = lt.sum(-1)
            del lt
        elif job.divergence == "reverse":
            ps = ls.exp()
            lt.neg_().add_(ls)                                # log p_S - log p_T
            kl = (lt * ps).sum(-1)
            diff = lt
            del lt
        else:                                                 # generalized JSD_β
            beta = job.beta
            lm = torch.logaddexp(lt + math.log(beta), ls + math.log1p(-beta))   # log M
            lm.clamp_(min=LOG_FLOOR)
            pt = lt.exp()
            kl_t = lt.sub_(lm).mul_(pt).sum(-1)               # KL(p_T || M)
            del lt, pt
            ps = ls.exp()
            diff = lm.neg_().add_(ls)                         # log p_S - log M
            del lm
            kl_s = (diff * ps).sum(-1)                        # KL(p_S || M)
            kl = beta * kl_t + (1.0 - beta) * kl_s
        div = kl * (tau * tau) if tau != 1.0 else kl
    tot = _weighted(job, rows, div, ce)
    _record(job, rows, div, ce)
    if not need_grad:
        return tot.detach(), None
    if cd is None:                                            # cross-entropy only
        g = ls.exp_().mul_(cc[:, None])
    elif job.divergence == "forward":
        w = cd * tau
        g = ls.exp_().mul_((w + cc)[:, None] if cc is not None else w[:, None])
        g.sub_(pt.mul_(w[:, None]))
    else:
        # reverse: τ p_S (log p_S − log p_T − KL); JSD_β: τ (1 − β) p_S (log p_S − log M − KL(p_S||M))
        w = cd * tau if job.divergence == "reverse" else cd * (tau * (1.0 - job.beta))
        g = diff.sub_((kl if job.divergence == "reverse" else kl_s)[:, None]).mul_(ps).mul_(w[:, None])
        if cc is not None:
            g.addcmul_(ps, cc[:, None].expand_as(ps))
    if cc is not None:
        g.scatter_add_(1, tgt, -cc[:, None])
    if deriv is not None:                                     # chain rule through the logit transform
        g.mul_(deriv)
    elif const is not None and const != 1.0:
        g.mul_(const)
    if va is not None:                                        # logits outside V_a get no gradient
        g = torch.zeros(full_shape, dtype=g.dtype, device=g.device).index_copy_(1, va, g)
    return tot.detach(), g


def _chunk_grad(z: torch.Tensor, job: Job, seg: Segment, rows: torch.Tensor, need_grad: bool):
    """Loss of one chunk and the gradient w.r.t. its raw logits ``z`` (``[c, V]``) as fp32."""
    if fast_path_ok(job, seg):
        return _fast_chunk(z, job, seg, rows, need_grad)
    z32 = z.float()
    if not need_grad:
        zs = job.transform(z32) if job.transform is not None else z32
        div, ce = row_terms(zs, job, seg, rows)
        _record(job, rows, div, ce)
        return _weighted(job, rows, div, ce).detach(), None
    with torch.enable_grad():
        z32 = z32.detach().requires_grad_(True)
        zs = job.transform(z32) if job.transform is not None else z32
        div, ce = row_terms(zs, job, seg, rows)
        tot = _weighted(job, rows, div, ce)
        (g,) = torch.autograd.grad(tot, z32)
    _record(job, rows, div, ce)
    return tot.detach(), g


class _FusedRows(torch.autograd.Function):
    """total = Σ rows loss, with LM head ``hidden [N, H] @ weight.T [H, V] + bias``; grads computed in forward."""

    @staticmethod
    def forward(ctx, job: Job, need_grad: bool, hidden: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None):
        want_h = need_grad and ctx.needs_input_grad[2]
        want_w = need_grad and ctx.needs_input_grad[3]
        want_b = need_grad and bias is not None and ctx.needs_input_grad[4]
        need = want_h or want_w or want_b
        dt = weight.dtype
        grad_h = torch.zeros_like(hidden) if want_h else None
        acc = torch.float32 if dt in (torch.float16, torch.bfloat16) else dt
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if want_w else None
        grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if want_b else None
        total = torch.zeros((), dtype=torch.float32, device=weight.device)
        for seg, rows in job.chunks():
            h = hidden.index_select(0, rows).to(dt)
            # the [c, V] logits are handed over without a reference here, so they can be freed early
            tot, g = _chunk_grad(torch.nn.functional.linear(h, weight, bias), job, seg, rows, need)
            total += tot
            if g is None:
                continue
            if want_h:
                grad_h.index_copy_(0, rows, (g.to(dt) @ weight).to(grad_h.dtype))
            if want_w:
                if acc == dt:
                    grad_w.addmm_(g.t().to(dt), h)
                else:
                    grad_w += (g.t().to(dt) @ h).float()
            if want_b:
                grad_b += g.sum(0)
        ctx.grads = (grad_h,
                     None if grad_w is None else grad_w.to(dt),
                     None if grad_b is None else grad_b.to(bias.dtype))
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grads = ctx.grads
        if grads is None:
            raise RuntimeError("the chunked loss can be backpropagated only once (its gradients are computed "
                               "in the forward pass and released after the first backward)")
        ctx.grads = None
        if float(grad_out) != 1.0:
            grads = tuple(None if g is None else g * grad_out.to(g.dtype) for g in grads)
        return (None, None) + grads


class _FusedLogits(torch.autograd.Function):
    """total = Σ rows loss over given student logits ``[M, V]``; rows map to logits rows via ``index``."""

    @staticmethod
    def forward(ctx, job: Job, need_grad: bool, index: torch.Tensor, logits: torch.Tensor):
        need = need_grad and ctx.needs_input_grad[3]
        grad = torch.zeros_like(logits) if need else None
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for seg, rows in job.chunks():
            idx = index[rows]
            tot, g = _chunk_grad(logits.index_select(0, idx), job, seg, rows, need)
            total += tot
            if g is not None:
                grad.index_copy_(0, idx, g.to(grad.dtype))
        ctx.grad = grad
        return total

    @staticmethod
    def backward(ctx, grad_out):
        g = ctx.grad
        if g is None and ctx.needs_input_grad[3]:
            raise RuntimeError("the chunked loss can be backpropagated only once")
        ctx.grad = None
        if g is not None and float(grad_out) != 1.0:
            g = g * grad_out.to(g.dtype)
        return None, None, None, g


def run_hidden(job: Job, hidden: torch.Tensor, head: Head) -> torch.Tensor:
    """Scalar loss over supervised rows from gathered hidden states ``[N, H]`` and an LM head."""
    _alloc_outputs(job, hidden.shape[0], hidden.device)
    need_grad = torch.is_grad_enabled()
    if head.module is None:
        return _FusedRows.apply(job, need_grad, hidden, head.weight, head.bias)
    from torch.utils.checkpoint import checkpoint

    total = hidden.sum() * 0.0
    for seg, rows in job.chunks():
        def fn(h: torch.Tensor, seg=seg, rows=rows) -> torch.Tensor:
            z = head(h).float()
            zs = job.transform(z) if job.transform is not None else z
            div, ce = row_terms(zs, job, seg, rows)
            _record(job, rows, div, ce)
            return _weighted(job, rows, div, ce)
        h = hidden.index_select(0, rows)
        total = total + (checkpoint(fn, h, use_reentrant=False) if need_grad else fn(h))
    return total


def run_logits(job: Job, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Scalar loss over supervised rows from student logits ``[M, V]``; row i is ``logits[index[i]]``."""
    _alloc_outputs(job, index.shape[0], logits.device)
    return _FusedLogits.apply(job, torch.is_grad_enabled(), index.to(logits.device), logits)


def _alloc_outputs(job: Job, n: int, device: Any) -> None:
    job.div = torch.zeros(n, dtype=torch.float32, device=device)
    job.ce = torch.zeros(n, dtype=torch.float32, device=device) if job.coef_ce is not None else None


def map_rows(fn: Callable[[torch.Tensor], torch.Tensor], n: int, chunk_size: int) -> list[torch.Tensor]:
    """Apply ``fn(rows[c]) -> tensor`` over ``0..n-1`` in chunks (no grad); returns the pieces."""
    out = []
    with torch.no_grad():
        for s in range(0, n, max(1, chunk_size)):
            out.append(fn(torch.arange(s, min(n, s + chunk_size))))
    return out
