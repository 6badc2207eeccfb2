"""Sparse teachers: top-k token ids with log-probabilities plus one tail bucket.

An offline teacher cache or an API teacher gives, per supervised position, the k most likely token ids,
their log-probabilities under the teacher, and the probability mass of everything else (the *tail*).
The losses then compare **bucketed** distributions, exactly: the k+1 buckets are the top-k ids and "every
other token"; the student's bucket probabilities are its probabilities of those k ids and its total mass
on all the others (computed as a masked log-sum-exp, not ``1 - sum``, so it is exact even when tiny).
With k = V (tail empty) the bucketed divergence equals the dense one.

Temperature: a sparse teacher is stored at one temperature τ (the log-probs are ``log_softmax(z / τ)``
of the teacher logits ``z``); it cannot be re-tempered without the full distribution, so the loss
refuses a sparse teacher whose τ differs from the loss's τ.

Restricted action vocabulary: rows flagged in ``restricted_rows`` hold a distribution renormalized over
the action vocabulary V_a (their ids lie in V_a and the tail is V_a minus the top-k); build them with
``teacher_topk(..., vocab_ids=V_a, restricted_rows=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sadcli.errors import SadError
from sadcli.losses.divergences import LOG_FLOOR, log_softmax_fp32


@dataclass
class SparseTeacher:
    """Top-k teacher distributions at the supervised positions (``N`` rows, alignment order).

    Attributes:
        ids: ``[N, k]`` long, distinct token ids per row.
        logprobs: ``[N, k]`` float, teacher log-probabilities of ``ids`` (normalized over the full
            vocabulary, or over V_a for ``restricted_rows``).
        tail_logprob: ``[N]`` float, log of the remaining mass (``-inf`` when the top-k hold it all).
        temperature: τ the log-probs were computed at.
        restricted_rows: ``[N]`` bool or None: rows whose distribution is over the action vocabulary.
    """

    ids: torch.Tensor
    logprobs: torch.Tensor
    tail_logprob: torch.Tensor
    temperature: float = 1.0
    restricted_rows: torch.Tensor | None = None

    @classmethod
    def from_tail_mass(cls, ids: torch.Tensor, logprobs: torch.Tensor, tail_mass: torch.Tensor | None = None,
                       **kw: Any) -> SparseTeacher:
        """Build from the tail *mass* ``[N]`` (default ``1 - sum(exp(logprobs))``, clamped at 0)."""
        if tail_mass is None:
            tail_mass = (1.0 - logprobs.double().exp().sum(-1)).clamp(min=0.0)
        return cls(ids=ids, logprobs=logprobs, tail_logprob=torch.log(tail_mass.double()).float(), **kw)

    @property
    def k(self) -> int:
        return int(self.ids.shape[-1])

    def validate(self, n_rows: int, vocab_size: int | None = None) -> None:
        """Check shapes (and ids when ``vocab_size`` is known); raise :class:`SadError` otherwise."""
        if self.ids.dim() != 2 or self.logprobs.shape != self.ids.shape or self.tail_logprob.shape != self.ids.shape[:1]:
            raise SadError(f"sparse teacher shapes do not match: ids {list(self.ids.shape)}, logprobs "
                           f"{list(self.logprobs.shape)}, tail {list(self.tail_logprob.shape)} (want [N, k], [N, k], [N])")
        if self.ids.shape[0] != n_rows:
            raise SadError(f"sparse teacher has {self.ids.shape[0]} rows but the batch has {n_rows} supervised positions",
                           hint="build the cache with supervised_positions() for the same loss config")
        if self.restricted_rows is not None and self.restricted_rows.shape != (n_rows,):
            raise SadError("sparse teacher restricted_rows must be [N]")
        if self.ids.numel() and int(self.ids.min()) < 0:
            raise SadError("sparse teacher ids must be non-negative token ids")
        if vocab_size is not None and self.ids.numel() and int(self.ids.max()) >= vocab_size:
            raise SadError(f"sparse teacher id {int(self.ids.max())} is outside the vocabulary of size {vocab_size}")
        if self.k > 1 and self.ids.numel():
            s = self.ids.sort(dim=-1).values
            if bool((s[:, 1:] == s[:, :-1]).any()):
                raise SadError("sparse teacher rows must hold distinct token ids")


def bucket_logprobs(logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Bucket a full distribution into (top-k ids, tail).

    Args:
        logp: ``[n, K]`` fp32 log-probabilities.
        ids: ``[n, k]`` distinct column indices into ``K``.
    Returns:
        ``[n, k + 1]``: ``logp`` at ``ids`` and, last, the log of the mass on all other columns
        (``≈ LOG_FLOOR`` when ``k = K``; exp of it is 0).
    """
    top = logp.gather(1, ids)
    rest = logp.scatter(1, ids, LOG_FLOOR)       # finite fill: no NaN gradient when the tail is empty
    tail = torch.logsumexp(rest, dim=-1, keepdim=True)
    return torch.cat([top, tail], dim=-1)


def teacher_topk(k: int, *, logits: torch.Tensor | None = None, hidden: torch.Tensor | None = None,
                 lm_head: Any = None, transform: Any = None, temperature: float = 1.0,
                 vocab_ids: torch.Tensor | None = None, restricted_rows: torch.Tensor | None = None,
                 chunk_size: int = 256) -> SparseTeacher:
    """Per-position teacher top-k + tail mass (for an offline teacher cache), chunked, no grad.

    Args:
        k: ids kept per position (``k <= V``; ``k <= |V_a|`` for restricted rows).
        logits: ``[N, V]`` teacher logits (already transformed), or
        hidden: ``[N, H]`` teacher hidden states with ``lm_head`` (and the teacher's ``transform``).
        temperature: τ; the log-probs are ``log_softmax(z / τ)``.
        vocab_ids: ``[V_a]`` action vocabulary, used for ``restricted_rows``.
        restricted_rows: ``[N]`` bool, rows to renormalize over ``vocab_ids`` (the action rows when the
            loss uses ``action_vocab="restricted"``).
        chunk_size: rows per chunk (at most ``[chunk_size, V]`` logits exist at once); ``0`` = auto, as in
            :class:`~sadcli.losses.LossConfig`.
    Returns:
        :class:`SparseTeacher` with ``N`` rows; ``ids`` are full-vocabulary ids.
    """
    from sadcli.losses.teachers import as_head

    if (logits is None) == (hidden is None):
        raise SadError("teacher_topk needs exactly one of logits or hidden (+ lm_head)")
    src = logits if logits is not None else hidden
    head = as_head(lm_head) if hidden is not None else None
    n = int(src.shape[0])
    ids_out, lp_out, tail_out = [], [], []
    if restricted_rows is not None and vocab_ids is None:
        raise SadError("restricted_rows needs vocab_ids (the action vocabulary)")
    if chunk_size <= 0:
        from sadcli.losses.sad_loss import auto_chunk_size

        V = int(src.shape[-1]) if head is None else head.vocab_size
        chunk_size = auto_chunk_size(V, src.device)
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            x = src[start:start + chunk_size]
            z = x if head is None else head(x)
            if head is not None and transform is not None:
                z = transform(z)
            full = log_softmax_fp32(z, temperature)
            ids, lp, tail = _topk_tail(full, k)
            if restricted_rows is not None:
                sel = restricted_rows[start:start + chunk_size].to(full.device)
                if bool(sel.any()):
                    va = vocab_ids.to(full.device)
                    if k > va.numel():
                        raise SadError(f"k={k} is larger than the action vocabulary ({va.numel()} ids)")
                    sub = log_softmax_fp32(z[sel].index_select(1, va), temperature)
                    rid, rlp, rtail = _topk_tail(sub, k)
                    ids[sel], lp[sel], tail[sel] = va[rid], rlp, rtail
            ids_out.append(ids)
            lp_out.append(lp)
            tail_out.append(tail)
    dev = src.device
    def cat(xs: list, shape: tuple, dt: torch.dtype) -> torch.Tensor:
        return torch.cat(xs) if xs else torch.zeros(shape, dtype=dt, device=dev)

    return SparseTeacher(ids=cat(ids_out, (0, k), torch.long), logprobs=cat(lp_out, (0, k), torch.float32),
                         tail_logprob=cat(tail_out, (0,), torch.float32), temperature=temperature,
                         restricted_rows=None if restricted_rows is None else restricted_rows.bool().clone())


def _topk_tail(logp: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if k > logp.shape[-1]:
        raise SadError(f"k={k} is larger than the vocabulary ({logp.shape[-1]})")
    lp, ids = logp.topk(k, dim=-1)
    rest = logp.scatter(1, ids, float("-inf"))
    tail = torch.logsumexp(rest, dim=-1)
    return ids, lp, tail
