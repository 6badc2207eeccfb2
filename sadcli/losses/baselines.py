"""Row weightings of the baselines and ablations (paper Tables 3, 5, 6), and the random-span relabelling.

Every loss is ``Σ_i coef_div[i] · div_i + coef_ce[i] · ce_i`` over supervised rows (see
:mod:`sadcli.losses.chunked`); a loss is defined by its supervised token set (``supervise``), its
per-row coefficients, its divergence and its vocabulary domain (docs/losses.md has the full table).
With ``normalization="per-span"`` every denominator is a *global* token count (``num_reason`` /
``num_act`` / ``num_other`` if the trainer passes them, else this batch's counts); with ``"sum"``
there are no denominators.

=================  ======================================================================================
name               objective (d = τ²·D(p_T^τ || p_S^τ) per token, ce = −log p_S(token)); default token set
=================  ======================================================================================
``sad``            λ_r · mean_R d_r + λ_a · mean_A d_a (+ mean_O d for supervised prompt/obs); R ∪ A
``only-reason``    the same per-kind terms; R
``only-act``       the same per-kind terms; A
``random-spans``   ``sad`` on random contiguous spans (same number and lengths, random kinds); R ∪ A
``token-kd``       mean over all supervised tokens of d, reverse KL by default; R ∪ A ∪ O (all after the prompt)
``kd``             mean over all supervised tokens of α · ce + (1 − α) · d (forward KL); R ∪ A ∪ O
``flat``           mean over all supervised tokens of d (one term, full vocabulary); R ∪ A
``seqkd``/``sft``  mean over all supervised tokens of ce (no teacher logits); R ∪ A
=================  ======================================================================================
"""

from __future__ import annotations

import hashlib

import torch

from sadcli.labels import ACT, REASON


def _sequence_generator(lab: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Generator:
    keep = lab >= 0
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(seed)).encode())
    h.update(ids[keep].to(torch.int64).numpy().tobytes())
    h.update(lab[keep].to(torch.int64).numpy().tobytes())
    return torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") & ((1 << 63) - 1))


def agent_spans(labels: torch.Tensor) -> list[tuple[int, int, int]]:
    """Maximal runs of one agent kind in one sequence: ``[(start, length, kind)]`` in token order.

    A run ends where the label changes or a non-agent token (prompt, observation) intervenes.
    ``labels``: ``[T]``."""
    out: list[tuple[int, int, int]] = []
    lab = labels.tolist()
    t, T = 0, len(lab)
    while t < T:
        k = lab[t]
        if k in (REASON, ACT):
            s = t
            while t < T and lab[t] == k:
                t += 1
            out.append((s, t - s, k))
        else:
            t += 1
    return out


def draw_random_spans(spans: list[tuple[int, int, int]], generator: torch.Generator) -> list[tuple[int, int]]:
    """The random blocks ``[(length, kind)]`` for one sequence: the real lengths in a random order, each
    with a kind drawn as a random permutation of the real kinds (``spans`` from :func:`agent_spans`)."""
    order_len = torch.randperm(len(spans), generator=generator).tolist()
    order_kind = torch.randperm(len(spans), generator=generator).tolist()
    return [(spans[i][1], spans[j][2]) for i, j in zip(order_len, order_kind, strict=True)]


def random_span_labels(token_labels: torch.Tensor, input_ids: torch.Tensor, seed: int) -> torch.Tensor:
    """Random span masking (paper Table 5, ``random-spans``): contiguous random spans, relabelled.

    Per sequence, the real reason/act spans (maximal runs, :func:`agent_spans`) give a list of lengths
    and a list of kinds. Both lists are randomly permuted and the permuted lengths are laid, in order,
    over the sequence's agent tokens (reason ∪ act, in token order); block ``j`` gets the ``j``-th
    permuted kind. So the supervised tokens are the same, there are as many spans as before with the
    same length distribution and the same number of reason and act spans, but the boundaries and kinds
    are random (a block may run across an observation: it is contiguous in the agent-token stream). It
    is *not* a per-token shuffle. Deterministic in ``seed`` and the sequence's own labelled tokens (ids
    and labels, padding ignored): a trajectory gets the same spans in every epoch and batch.

    Args:
        token_labels: ``[B, T]`` span labels (label of token t).
        input_ids: ``[B, T]`` token ids.
        seed: the run's seed.
    Returns:
        ``[B, T]`` new labels (a copy).
    """
    out = token_labels.clone()
    labels_cpu = token_labels.detach().cpu()
    ids_cpu = input_ids.detach().cpu()
    for b in range(labels_cpu.shape[0]):
        lab = labels_cpu[b]
        spans = agent_spans(lab)
        if len(spans) < 2:
            continue
        blocks = draw_random_spans(spans, _sequence_generator(lab, ids_cpu[b], seed))
        agent = ((lab == REASON) | (lab == ACT)).nonzero(as_tuple=True)[0]
        new = torch.repeat_interleave(torch.tensor([k for _, k in blocks]), torch.tensor([n for n, _ in blocks]))
        out[b, agent.to(out.device)] = new.to(out.device, out.dtype)
    return out


def shuffle_span_labels(token_labels: torch.Tensor, input_ids: torch.Tensor, seed: int) -> torch.Tensor:
    """Per-token shuffle of REASON/ACT labels among each sequence's agent tokens (counts kept).

    Not the paper's random span masking (it destroys contiguity: 10 runs become ~100); kept for
    comparison. ``random-spans`` uses :func:`random_span_labels`. Shapes as there."""
    out = token_labels.clone()
    labels_cpu = token_labels.detach().cpu()
    ids_cpu = input_ids.detach().cpu()
    for b in range(labels_cpu.shape[0]):
        lab = labels_cpu[b]
        agent = ((lab == REASON) | (lab == ACT)).nonzero(as_tuple=True)[0]
        if agent.numel() < 2:
            continue
        g = _sequence_generator(lab, ids_cpu[b], seed)
        perm = torch.randperm(agent.numel(), generator=g)
        out[b, agent.to(out.device)] = lab[agent][perm].to(out.device)
    return out


def _safe_inv(count: torch.Tensor) -> torch.Tensor:
    return 1.0 / count.clamp(min=1.0)


SPAN_AWARE = ("sad", "only-reason", "only-act", "random-spans")
STRUCTURE_BLIND = ("token-kd", "kd", "flat", "seqkd", "sft")


def row_coefficients(name: str, kinds: torch.Tensor, *, lambda_reason: float, lambda_act: float, alpha: float,
                     denom_reason: torch.Tensor, denom_act: torch.Tensor, denom_other: torch.Tensor,
                     per_span: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-row coefficients of the divergence and of the cross-entropy.

    Span-aware losses (``sad``, ``only-reason``, ``only-act``, ``random-spans``) have one term per kind,
    each normalized by its own count: λ_r/N_R on reasoning rows, λ_a/N_A on action rows, 1/N_O on
    supervised prompt/observation rows. Structure-blind losses (``token-kd``, ``kd``, ``flat``,
    ``seqkd``, ``sft``) have one term over every supervised row, normalized by N_R + N_A + N_O.

    Args:
        name: loss name.
        kinds: ``[N]`` kind of each supervised row.
        denom_reason / denom_act / denom_other: 0-dim fp32 global counts of supervised rows per kind.
        per_span: divide by those counts (``per-span``); False = plain sums (``sum``).
    Returns:
        ``(coef_div [N] or None, coef_ce [N] or None)`` fp32.
    """
    is_r = (kinds == REASON).float()
    is_a = (kinds == ACT).float()
    is_o = 1.0 - is_r - is_a
    one = torch.ones((), dtype=torch.float32, device=kinds.device)
    if per_span:
        inv_r, inv_a, inv_o = _safe_inv(denom_reason), _safe_inv(denom_act), _safe_inv(denom_other)
        inv_all = _safe_inv(denom_reason + denom_act + denom_other)
    else:
        inv_r = inv_a = inv_o = inv_all = one
    if name in SPAN_AWARE:
        return is_r * (lambda_reason * inv_r) + is_a * (lambda_act * inv_a) + is_o * inv_o, None
    w = torch.ones_like(is_r) * inv_all
    if name in ("token-kd", "flat"):
        return w, None
    if name == "kd":
        return w * (1.0 - alpha), w * alpha
    if name in ("seqkd", "sft"):
        return None, w
    raise ValueError(f"unknown loss {name!r}")
