"""Read-only quantities built on the same machinery: teacher entropy (curriculum), per-span divergence (eval)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from sadcli.labels import ACT, REASON
from sadcli.losses.divergences import entropy, log_softmax_fp32
from sadcli.losses.teachers import as_head


def token_entropy(*, logits: torch.Tensor | None = None, hidden: torch.Tensor | None = None, lm_head: Any = None,
                  transform: Any = None, temperature: float = 1.0, chunk_size: int = 256) -> torch.Tensor:
    """Entropy (nats) of the next-token distribution at each position, chunked, no grad.

    Args:
        logits: ``[..., V]`` logits, or
        hidden: ``[..., H]`` hidden states with ``lm_head`` (and the model's ``transform``).
        temperature: τ of ``softmax(z / τ)``.
        chunk_size: rows per chunk (at most ``[chunk_size, V]`` logits at once).
    Returns:
        ``[...]`` fp32 (the leading dims of the input; e.g. ``[B, T]`` or ``[N]``). Position t-1 is the
        entropy of the prediction of token t (next-token alignment, as in the losses).
    """
    if (logits is None) == (hidden is None):
        raise ValueError("token_entropy needs exactly one of logits or hidden (+ lm_head)")
    src = logits if logits is not None else hidden
    head = as_head(lm_head) if hidden is not None else None
    flat = src.reshape(-1, src.shape[-1])
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=src.device)
    step = max(1, int(chunk_size))
    with torch.no_grad():
        for s in range(0, flat.shape[0], step):
            z = flat[s:s + step]
            if head is not None:
                z = head(z)
                if transform is not None:
                    z = transform(z)
            out[s:s + step] = entropy(log_softmax_fp32(z, temperature))
    return out.reshape(src.shape[:-1])


@dataclass
class SpanDivergence:
    """Per-span divergence sums and counts of one batch (add them up across batches, then divide).

    Attributes:
        reason_sum / act_sum: 0-dim fp32 sums of the per-token divergence over reasoning / action tokens.
        n_reason / n_act: token counts.
        seq_reason_sum / seq_act_sum: ``[B]`` per-sequence sums.
        seq_n_reason / seq_n_act: ``[B]`` per-sequence counts.
    """

    reason_sum: torch.Tensor
    act_sum: torch.Tensor
    n_reason: int
    n_act: int
    seq_reason_sum: torch.Tensor
    seq_act_sum: torch.Tensor
    seq_n_reason: torch.Tensor
    seq_n_act: torch.Tensor

    @property
    def reason(self) -> float:
        """Mean divergence over reasoning tokens (0 when there are none)."""
        return float(self.reason_sum) / self.n_reason if self.n_reason else 0.0

    @property
    def act(self) -> float:
        """Mean divergence over action tokens (0 when there are none)."""
        return float(self.act_sum) / self.n_act if self.n_act else 0.0


def span_divergence(config: Any = None, **inputs: Any) -> SpanDivergence:
    """Per-span teacher→student divergence for evaluation (no grad).

    Takes the same keyword inputs as :func:`~sadcli.losses.compute_loss` (student, teacher, labels).
    ``config`` selects divergence/temperature/action vocabulary (default forward KL, τ = 1, full); the
    loss name is forced to ``sad`` (random-spans shuffling and one-term losses do not apply).
    """
    from sadcli.losses.sad_loss import LossConfig, compute_loss

    cfg = replace(config or LossConfig(), name="sad", normalization="sum", lambda_reason=1.0, lambda_act=1.0)
    with torch.no_grad():
        out = compute_loss(cfg, **inputs)
    pos = out.positions
    v = out.per_token_div
    B = pos.batch_size
    fr = (pos.kinds == REASON).float()
    fa = (pos.kinds == ACT).float()
    z = torch.zeros(B, dtype=torch.float32, device=v.device)
    b = pos.batch.to(v.device)
    return SpanDivergence(
        reason_sum=(v * fr).sum(), act_sum=(v * fa).sum(), n_reason=out.n_reason, n_act=out.n_act,
        seq_reason_sum=z.index_add(0, b, v * fr), seq_act_sum=z.index_add(0, b, v * fa),
        seq_n_reason=z.index_add(0, b, fr), seq_n_act=z.index_add(0, b, fa))
