"""Next-token alignment and supervised positions — done here, and only here.

A causal LM's logits at position ``t-1`` predict token ``t``. With per-token span labels
``token_labels[b, t]`` (the kind of token ``t``: ``sadcli.labels`` PROMPT=0, REASON=1, ACT=2, OBS=3,
PAD=-1), position ``t-1`` is supervised with kind ``token_labels[b, t]``. Position ``T-1`` predicts
nothing and token 0 is never predicted.

Supervised positions are returned flattened in row-major order (``b * T + p``, ascending). This order
is the contract shared with teachers passed per supervised position (``[N, ...]`` hidden states,
logits or sparse top-k): row ``i`` of such a teacher belongs to position ``index[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sadcli.labels import ACT, OBS, PROMPT, REASON


@dataclass
class SupervisedPositions:
    """Positions whose next-token prediction is trained.

    Attributes:
        index: ``[N]`` long, flat position ``b * T + p`` into ``[B * T]`` (ascending).
        kinds: ``[N]`` long, span label of the *predicted* token ``t = p + 1``.
        targets: ``[N]`` long, the predicted token ids ``input_ids[b, p + 1]``, or None.
        batch: ``[N]`` long, the sequence ``b`` of each position.
        batch_size: B.
        seq_len: T.
    """

    index: torch.Tensor
    kinds: torch.Tensor
    targets: torch.Tensor | None
    batch: torch.Tensor
    batch_size: int
    seq_len: int

    def __len__(self) -> int:
        return int(self.index.numel())

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of a per-token tensor at the supervised positions: ``[B, T, ...]`` -> ``[N, ...]``."""
        if x.shape[0] != self.batch_size or x.shape[1] != self.seq_len:
            raise ValueError(f"expected a [{self.batch_size}, {self.seq_len}, ...] tensor, got {list(x.shape)}")
        flat = x.reshape(self.batch_size * self.seq_len, *x.shape[2:])
        return flat.index_select(0, self.index.to(flat.device))

    def select(self, rows: torch.Tensor) -> SupervisedPositions:
        """A subset of these positions (``rows``: ``[n]`` indices into ``0..N-1``)."""
        return SupervisedPositions(
            index=self.index[rows], kinds=self.kinds[rows],
            targets=None if self.targets is None else self.targets[rows],
            batch=self.batch[rows], batch_size=self.batch_size, seq_len=self.seq_len)


AGENT_KINDS = (REASON, ACT)
CONTINUATION_KINDS = (REASON, ACT, OBS)
ALL_KINDS = (PROMPT, REASON, ACT, OBS)


def continuation_labels(token_labels: torch.Tensor) -> torch.Tensor:
    """Labels for supervision: PROMPT tokens that come *after* the task prompt become OBS.

    The task prompt is the leading run of PROMPT tokens of each sequence; PROMPT tokens later on are the
    chat template's glue between turns (``<|im_start|>user``...): context the agent did not write, inside
    the continuation. Relabelled as OBS, the kinds ``{REASON, ACT, OBS}`` then cover exactly "every token
    after the task prompt" and ``PROMPT`` exactly the task prompt. ``[B, T]`` -> ``[B, T]`` (a copy; PAD kept).
    """
    lab = token_labels
    started = torch.cumsum(((lab == REASON) | (lab == ACT) | (lab == OBS)).long(), dim=1) > 0
    out = lab.clone()
    out[started & (lab == PROMPT)] = OBS
    return out


def next_token_labels(token_labels: torch.Tensor) -> torch.Tensor:
    """Kind supervised at each position: ``[B, T]`` -> ``[B, T]``; column ``p`` holds the label of token
    ``p + 1`` and the last column is PAD (-1)."""
    out = torch.full_like(token_labels, -1)
    out[:, :-1] = token_labels[:, 1:]
    return out


def supervised_positions(token_labels: torch.Tensor, *, input_ids: torch.Tensor | None = None,
                         kinds: tuple[int, ...] = AGENT_KINDS) -> SupervisedPositions:
    """Flat supervised positions and their kinds (next-token aligned).

    Args:
        token_labels: ``[B, T]`` span label per token (label of token t); negative = padding.
        input_ids: ``[B, T]`` token ids, to return the targets (needed by cross-entropy losses).
        kinds: the labels that are supervised: ``(REASON, ACT)`` for span losses, all four for ``flat``.
    Returns:
        :class:`SupervisedPositions` with ``N`` rows.
    """
    if token_labels.dim() != 2:
        raise ValueError(f"token_labels must be [B, T], got {list(token_labels.shape)}")
    B, T = token_labels.shape
    nxt = token_labels[:, 1:]                                   # [B, T-1]
    mask = torch.zeros_like(nxt, dtype=torch.bool)
    for k in kinds:
        mask |= nxt == k
    b, p = mask.nonzero(as_tuple=True)
    index = b * T + p
    targets = None
    if input_ids is not None:
        if input_ids.shape != token_labels.shape:
            raise ValueError(f"input_ids {list(input_ids.shape)} and token_labels {list(token_labels.shape)} differ")
        targets = input_ids.to(token_labels.device)[b, p + 1]
    return SupervisedPositions(index=index, kinds=nxt[b, p].long(), targets=targets, batch=b,
                               batch_size=B, seq_len=T)


@dataclass
class SpanCounts:
    """Supervised-token counts of one (micro-)batch, next-token aligned (0-dim long tensors).

    Sum these over gradient-accumulation steps and devices (e.g. ``all_reduce``) and pass the totals as
    ``num_reason`` / ``num_act`` / ``num_other`` to :func:`sadcli.losses.compute_loss`, so per-span
    normalization does not depend on how a batch is split.
    """

    reason: torch.Tensor
    act: torch.Tensor
    other: torch.Tensor   # prompt + observation tokens (only the ``flat`` loss supervises them)


def span_counts(token_labels: torch.Tensor, kinds: tuple[int, ...] = ALL_KINDS) -> SpanCounts:
    """Count positions per kind. ``token_labels``: ``[B, T]`` (after any relabelling the loss does:
    use ``loss_positions(cfg, ...).kinds`` or :func:`positions_counts` for a configured loss).

    ``other`` counts the PROMPT/OBS positions among ``kinds`` (default: all of them)."""
    nxt = token_labels[:, 1:]
    other = torch.zeros_like(nxt, dtype=torch.bool)
    for k in kinds:
        if k in (PROMPT, OBS):
            other |= nxt == k
    return SpanCounts(reason=(nxt == REASON).sum(), act=(nxt == ACT).sum(), other=other.sum())


def positions_counts(pos: SupervisedPositions) -> SpanCounts:
    """(reason, act, other) counts of supervised positions, e.g. from ``loss_positions``."""
    k = pos.kinds
    r, a = (k == REASON).sum(), (k == ACT).sum()
    return SpanCounts(reason=r, act=a, other=k.numel() - r - a)
