"""Span-aware distillation losses: SAD (Liu et al., AAMAS 2026) and every baseline/ablation of the paper.

Stable interface (``sad distill``, ``sad curriculum`` and ``sad eval`` build on it; see docs/losses.md)::

    from sadcli.losses import LossConfig, compute_loss, loss_positions, span_counts, HiddenTeacher

    cfg = LossConfig(name="sad", divergence="forward", temperature=1.0)        # fields have help text
    pos = loss_positions(cfg, token_labels, input_ids)         # supervised positions: pos.index [N], pos.kinds [N]
    t_hidden = pos.gather(teacher_last_hidden)                  # [B, T, H_t] -> [N, H_t] (teacher at N rows only)
    counts = span_counts(token_labels)                          # sum over accumulation steps / devices
    out = compute_loss(cfg, input_ids=input_ids, token_labels=token_labels,
                       student_hidden=h, lm_head=model.lm_head,           # [B, T, H] + nn.Linear / [V, H] weight
                       teacher=HiddenTeacher(t_hidden, teacher.lm_head, t_transform),
                       num_reason=R_global, num_act=A_global,
                       student_transform=logit_transform_for(model))
    out.total.backward(); log(out.as_dict())                    # loss, l_cot, l_act, n_reason, n_act

Shapes and conventions:

- ``token_labels [B, T]``: ``sadcli.labels`` ids of each token (PROMPT=0, REASON=1, ACT=2, OBS=3, PAD=-1).
  Next-token alignment happens in one place (:func:`supervised_positions`): logits at position t-1 are
  trained on token t with kind ``token_labels[:, t]``.
- Supervised rows are ordered by flat position ``b * T + t`` (ascending). Any teacher given per row
  (``[N, V]`` logits, ``[N, H_t]`` hidden states, :class:`SparseTeacher` ``[N, k]``) follows that order;
  build it from :func:`loss_positions` for the same config (each loss supervises its ``supervise`` kinds;
  docs/losses.md has the table).
- The teacher may be dense logits ``[B, T, V]`` / ``[N, V]``, a :class:`HiddenTeacher` (hidden + LM head:
  teacher logits are then also computed only at supervised positions, chunked), or a
  :class:`SparseTeacher` (top-k ids + log-probs + tail log-mass, exact bucketed divergence).
- Memory: at most ``[chunk_size, V]`` logits exist at once, in forward and backward.
- fp32 log-softmax always; never NaN; a term with no tokens is 0.
- Model logit transforms (Gemma-2 soft-capping, Cohere/Granite scaling): :func:`logit_transform_for`
  returns the transform or raises :class:`~sadcli.errors.ModelSpecError`; :func:`check_logit_transform`
  verifies it numerically against the model's own forward.

Helpers: :func:`teacher_topk` (offline teacher cache rows), :func:`token_entropy` (curriculum),
:func:`span_divergence` (eval), :func:`build_action_vocab` (V_a for ``action_vocab="restricted"``),
:func:`build_span_vocab` + :func:`marker_token_ids` (V_r, V_a for ``span_vocab="bucketed"``),
:func:`random_span_labels` (``random-spans``), :func:`positions_counts` (the counts a configured loss
normalizes by), and the per-row :mod:`~sadcli.losses.divergences`.
"""

from sadcli.losses.alignment import (
    SpanCounts,
    SupervisedPositions,
    continuation_labels,
    next_token_labels,
    positions_counts,
    span_counts,
    supervised_positions,
)
from sadcli.losses.baselines import random_span_labels, shuffle_span_labels
from sadcli.losses.divergences import (
    DIVERGENCES,
    divergence,
    entropy,
    forward_kl,
    generalized_jsd,
    log_softmax_fp32,
    reverse_kl,
)
from sadcli.losses.metrics import SpanDivergence, span_divergence, token_entropy
from sadcli.losses.sad_loss import LOSS_NAMES, LossConfig, LossOutput, compute_loss, loss_positions
from sadcli.losses.sparse import SparseTeacher, bucket_logprobs, teacher_topk
from sadcli.losses.teachers import DenseTeacher, HiddenTeacher
from sadcli.losses.transforms import LogitTransform, check_logit_transform, logit_transform_for
from sadcli.losses.vocab import build_action_vocab, build_span_vocab, marker_token_ids

__all__ = [
    "DIVERGENCES", "LOSS_NAMES", "DenseTeacher", "HiddenTeacher", "LogitTransform", "LossConfig", "LossOutput",
    "SpanCounts", "SpanDivergence", "SparseTeacher", "SupervisedPositions", "bucket_logprobs",
    "build_action_vocab", "build_span_vocab", "check_logit_transform", "continuation_labels", "compute_loss", "divergence", "entropy", "forward_kl",
    "generalized_jsd", "log_softmax_fp32", "logit_transform_for", "loss_positions", "marker_token_ids", "next_token_labels", "positions_counts",
    "random_span_labels",
    "reverse_kl", "shuffle_span_labels", "span_counts", "span_divergence", "supervised_positions",
    "teacher_topk", "token_entropy",
]
