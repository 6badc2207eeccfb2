"""Row weightings of the baselines and ablations (paper Tables 3, 5, 6), and the random-span shuffle.

Every loss is ``Σ_i coef_div[i] · div_i + coef_ce[i] · ce_i`` over supervised rows (see
:mod:`sadcli.losses.chunked`); a loss is therefore defined by its supervised kinds and its per-row
coefficients. With ``normalization="per-span"`` every denominator is a *global* token count
(``num_reason`` / ``num_act`` / ``num_other`` if the trainer passes them, else this batch's counts);
with ``"sum"`` there are no denominators.

=================  ======================================================================================
name               objective (d = τ²·D(p_T^τ || p_S^τ) per token, ce = −log p_S(token))
=================  ======================================================================================
``sad``            λ_r · mean_R d + λ_a · mean_A d_a   (d_a over V_a when ``action_vocab="restricted"``)
``token-kd``       mean over R ∪ A of d (one normalization, full vocabulary)
``kd``             mean over R ∪ A of α · ce + (1 − α) · d
``seqkd``          mean over R ∪ A of ce (SFT on the teacher-generated tokens; no teacher logits)
``flat``           mean over every token (prompt and observations included) of d
``only-reason``    λ_r · mean_R d
``only-act``       λ_a · mean_A d_a
``random-spans``   ``sad`` after shuffling the R/A labels among each sequence's agent tokens
=================  ======================================================================================
"""

from __future__ import annotations

import hashlib

import torch

from sadcli.labels import ACT, REASON


def shuffle_span_labels(token_labels: torch.Tensor, input_ids: torch.Tensor, seed: int) -> torch.Tensor:
    """Randomly permute the REASON/ACT labels among each sequence's agent tokens (``random-spans``).

    Counts per sequence are kept. The permutation is a pure function of ``seed`` and the sequence's
    labelled tokens (its ids and labels, padding ignored), so a trajectory gets the same random spans
    in every epoch, whatever batch it lands in and however much padding it gets.

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
        agent = ((lab == REASON) | (lab == ACT)).nonzero(as_tuple=True)[0]
        if agent.numel() < 2:
            continue
        keep = lab >= 0
        h = hashlib.blake2b(digest_size=8)
        h.update(str(int(seed)).encode())
        h.update(ids_cpu[b][keep].to(torch.int64).numpy().tobytes())
        h.update(lab[keep].to(torch.int64).numpy().tobytes())
        g = torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") & ((1 << 63) - 1))
        perm = torch.randperm(agent.numel(), generator=g)
        new = lab[agent][perm]
        out[b, agent.to(out.device)] = new.to(out.device)
    return out


def _safe_inv(count: torch.Tensor) -> torch.Tensor:
    return 1.0 / count.clamp(min=1.0)


def row_coefficients(name: str, kinds: torch.Tensor, *, lambda_reason: float, lambda_act: float, alpha: float,
                     denom_reason: torch.Tensor, denom_act: torch.Tensor, denom_other: torch.Tensor,
                     per_span: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-row coefficients of the divergence and of the cross-entropy.

    Args:
        name: loss name.
        kinds: ``[N]`` kind of each supervised row.
        denom_reason / denom_act / denom_other: 0-dim fp32 global token counts per kind.
        per_span: divide by those counts (``per-span``); False = plain sums (``sum``).
    Returns:
        ``(coef_div [N] or None, coef_ce [N] or None)`` fp32.
    """
    is_r = (kinds == REASON).float()
    is_a = (kinds == ACT).float()
    is_o = 1.0 - is_r - is_a
    one = torch.ones((), dtype=torch.float32, device=kinds.device)
    if per_span:
        inv_r, inv_a = _safe_inv(denom_reason), _safe_inv(denom_act)
        inv_agent = _safe_inv(denom_reason + denom_act)
        inv_all = _safe_inv(denom_reason + denom_act + denom_other)
    else:
        inv_r = inv_a = inv_agent = inv_all = one
    if name in ("sad", "random-spans"):
        return is_r * (lambda_reason * inv_r) + is_a * (lambda_act * inv_a), None
    if name == "only-reason":
        return is_r * (lambda_reason * inv_r), None
    if name == "only-act":
        return is_a * (lambda_act * inv_a), None
    if name == "token-kd":
        return (is_r + is_a) * inv_agent, None
    if name == "kd":
        w = (is_r + is_a) * inv_agent
        return w * (1.0 - alpha), w * alpha
    if name == "seqkd":
        return None, (is_r + is_a) * inv_agent
    if name == "flat":
        return (is_r + is_a + is_o) * inv_all, None
    raise ValueError(f"unknown loss {name!r}")
