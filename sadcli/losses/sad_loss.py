"""The SAD loss (Liu et al., AAMAS 2026, §3.3–3.5), its baselines, their configuration and the single entry point.

    L_total = λ_r · L_CoT + λ_a · L_Act
    L_CoT   = Σ_t m_r(t) · τ² · D(p_T^τ(·|x<t) || p_S^τ(·|x<t))     (reasoning tokens)
    L_Act   = Σ_t m_a(t) · τ² · D(p_T^τ(·|x<t) || p_S^τ(·|x<t))     (action tokens)

D is forward KL (the paper), reverse KL or generalized JSD_β. With ``normalization="per-span"``
(default), L_CoT is the mean over all reasoning tokens of the batch and L_Act the mean over all action
tokens, each divided by its own *global* count (pass ``num_reason``/``num_act``/``num_other`` summed over
gradient-accumulation steps and devices, so the loss does not change with accumulation); ``"sum"`` uses
the plain sums of the equations.

Vocabulary domains of the span-aware losses: ``span_vocab="full"`` is Eq. 5 as written;
``"bucketed"`` is Eq. 8's disjoint domains: on reasoning (action) positions teacher and student are
bucketed into V_r (V_a) — ids seen in that kind's spans of the training data + structural markers +
end-of-turn (:func:`sadcli.losses.vocab.build_span_vocab`) — plus one "other" bucket with the rest of the
mass, so mass outside the domain is still penalized. ``action_vocab="restricted"`` (older reading:
renormalize over V_a only, no other bucket) is kept for comparison.

The baselines (``token-kd`` MiniLLM-style, ``kd``, ``seqkd``, ``sft``, ``flat``, ``random-spans``,
``only-*``) differ in token set, divergence, normalization and vocabulary: see
:mod:`sadcli.losses.baselines` and the table in docs/losses.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch

from sadcli.errors import SadError
from sadcli.labels import ACT, OBS, PROMPT, REASON
from sadcli.losses.alignment import SupervisedPositions, continuation_labels, supervised_positions
from sadcli.losses.baselines import SPAN_AWARE, random_span_labels, row_coefficients
from sadcli.losses.chunked import Job, Segment, run_hidden, run_logits
from sadcli.losses.divergences import DIVERGENCES
from sadcli.losses.sparse import SparseTeacher
from sadcli.losses.teachers import TeacherRows, as_head, as_teacher

LOSS_NAMES = ("sad", "token-kd", "kd", "seqkd", "sft", "flat", "only-reason", "only-act", "random-spans")
NORMALIZATIONS = ("per-span", "sum")
ACTION_VOCABS = ("full", "restricted")
SPAN_VOCABS = ("full", "bucketed")
_SPAN_AWARE = ("sad", "only-act", "random-spans")   # losses where a restricted action vocabulary applies
SUPERVISE_KINDS = {"prompt": PROMPT, "reason": REASON, "act": ACT, "obs": OBS}
DEFAULT_SUPERVISE = {"token-kd": "reason,act,obs", "kd": "reason,act,obs", "only-reason": "reason",
                     "only-act": "act"}   # every other loss: reason,act
DEFAULT_DIVERGENCE = {"token-kd": "reverse"}   # MiniLLM; every other loss: forward (the paper)


@dataclass
class LossConfig:
    """Options of the distillation loss (one field per ``sad distill`` option; ``help`` in metadata)."""

    name: str = field(default="sad", metadata={
        "help": "Loss: sad (span-aware, the paper), token-kd (MiniLLM-style: one divergence over every token after "
                "the task prompt), kd (α·CE + (1-α)·τ²·KL), seqkd (CE on teacher-generated tokens), sft (CE, "
                "fine-tune a teacher), flat (no segmentation: one KL over reason+act), only-reason, only-act, "
                "random-spans.", "choices": LOSS_NAMES})
    divergence: str = field(default="auto", metadata={
        "help": "Divergence: forward KL(teacher||student) (the paper), reverse KL(student||teacher), or jsd "
                "(generalized Jensen-Shannon with --beta); auto: reverse for token-kd (MiniLLM), forward otherwise.",
        "choices": ("auto",) + DIVERGENCES})
    beta: float = field(default=0.5, metadata={
        "help": "JSD weight β in (0, 1): β·KL(T||M) + (1-β)·KL(S||M), M = β·T + (1-β)·S. Used with --divergence jsd."})
    temperature: float = field(default=1.0, metadata={
        "help": "Softmax temperature τ applied to teacher and student logits; the divergence is scaled by τ²."})
    lambda_reason: float = field(default=1.0, metadata={"help": "Weight λ_r of the reasoning term L_CoT."})
    lambda_act: float = field(default=1.0, metadata={"help": "Weight λ_a of the action term L_Act."})
    normalization: str = field(default="per-span", metadata={
        "help": "per-span: each term is the mean over its tokens in the global batch; sum: plain sums (the "
                "equations literally).", "choices": NORMALIZATIONS})
    action_vocab: str = field(default="full", metadata={
        "help": "full: action KL over the whole vocabulary (Eq. 5); restricted: teacher and student renormalized "
                "over the action vocabulary V_a (tokens seen in action spans + end-of-turn).",
        "choices": ACTION_VOCABS})
    action_vocab_ids: Any = field(default=None, metadata={
        "help": "Token ids of V_a (1-D LongTensor) for --action-vocab restricted; built from the training data.",
        "cli": False})
    alpha: float = field(default=0.5, metadata={
        "help": "kd only: weight α of the cross-entropy on the trajectory tokens (1-α on the τ²-scaled KL)."})
    span_vocab: str = field(default="full", metadata={
        "help": "full: every divergence over the whole vocabulary; bucketed (paper Eq. 8): on reasoning and action "
                "positions of the span-aware losses, teacher and student distributions over that kind's domain "
                "(ids seen in its spans + structural markers + end-of-turn) plus one 'other' bucket holding the "
                "remaining mass.", "choices": SPAN_VOCABS})
    span_vocab_ids: Any = field(default=None, metadata={
        "help": "{REASON: [V_r], ACT: [V_a]} token ids for --span-vocab bucketed; built from the training data.",
        "cli": False})
    supervise: str = field(default="", metadata={
        "help": "Token kinds the loss is computed on, comma-separated from reason, act, obs (every token after the "
                "task prompt that the agent did not write), prompt (the task prompt); empty: the loss's own set "
                "(token-kd, kd: reason,act,obs; only-reason: reason; only-act: act; others: reason,act)."})
    chunk_size: int = field(default=0, metadata={
        "help": "Supervised positions per chunk: at most [chunk_size, vocab] logits exist at once. 0 = auto "
                "(about 8M logits per chunk on CPU, 32M on GPU; half that for sparse teachers)."})
    seed: int = field(default=0, metadata={"help": "Seed of the random-spans relabelling."})

    def __post_init__(self) -> None:
        if self.divergence == "auto":
            self.divergence = DEFAULT_DIVERGENCE.get(self.name, "forward")
        if isinstance(self.supervise, (list, tuple)):
            self.supervise = ",".join(self.supervise)

    def validate(self) -> LossConfig:
        """Raise :class:`SadError` on an invalid option; return self."""
        def bad(msg: str, hint: str | None = None):
            raise SadError(msg, hint=hint)
        if self.name not in LOSS_NAMES:
            bad(f"unknown loss {self.name!r}", f"choose from {', '.join(LOSS_NAMES)}")
        if self.divergence not in DIVERGENCES:
            bad(f"unknown divergence {self.divergence!r}", f"choose from {', '.join(DIVERGENCES)}")
        if self.divergence == "jsd" and not 0.0 < self.beta < 1.0:
            bad(f"JSD beta must be strictly between 0 and 1, got {self.beta}",
                "use --divergence forward or reverse for the KL limits")
        if not self.temperature > 0.0:
            bad(f"temperature must be positive, got {self.temperature}")
        if self.normalization not in NORMALIZATIONS:
            bad(f"unknown normalization {self.normalization!r}", f"choose from {', '.join(NORMALIZATIONS)}")
        if self.action_vocab not in ACTION_VOCABS:
            bad(f"unknown action vocabulary {self.action_vocab!r}", f"choose from {', '.join(ACTION_VOCABS)}")
        if self.span_vocab not in SPAN_VOCABS:
            bad(f"unknown span vocabulary {self.span_vocab!r}", f"choose from {', '.join(SPAN_VOCABS)}")
        if self.span_vocab == "bucketed":
            if self.name not in SPAN_AWARE:
                bad(f"span_vocab=bucketed applies to span-aware losses ({', '.join(SPAN_AWARE)}), not {self.name}",
                    "structure-blind baselines use the full vocabulary by definition")
            ids = self.span_vocab_ids
            if not isinstance(ids, dict) or any(len(ids.get(k, ())) == 0 for k in (REASON, ACT)):
                bad("span_vocab=bucketed needs the reasoning and action vocabulary ids",
                    "build them with sadcli.losses.build_span_vocab")
            if self.action_vocab == "restricted":
                bad("use either action_vocab=restricted or span_vocab=bucketed, not both")
        unknown = [k for k in self.supervise_names if k not in SUPERVISE_KINDS]
        if unknown:
            bad(f"unknown token kind {unknown[0]!r} in supervise", f"choose from {', '.join(SUPERVISE_KINDS)}")
        if self.supervise and not self.supervise_names:
            bad("supervise names no token kind")
        if self.action_vocab == "restricted":
            if self.name not in _SPAN_AWARE:
                bad(f"action_vocab=restricted applies to span-aware losses ({', '.join(_SPAN_AWARE)}), not {self.name}")
            if self.action_vocab_ids is None or len(self.action_vocab_ids) == 0:
                bad("action_vocab=restricted needs the action vocabulary ids",
                    "build them with sadcli.losses.build_action_vocab")
        if not 0.0 <= self.alpha <= 1.0:
            bad(f"alpha must be in [0, 1], got {self.alpha}")
        if int(self.chunk_size) < 0:
            bad(f"chunk_size must be positive (or 0 for auto), got {self.chunk_size}")
        for lam in ("lambda_reason", "lambda_act"):
            if getattr(self, lam) < 0:
                bad(f"{lam} must be non-negative, got {getattr(self, lam)}")
        return self

    @classmethod
    def options(cls) -> list[dict]:
        """The CLI-exposable fields: ``[{name, type, default, help, choices}]``."""
        out = []
        for f in fields(cls):
            if f.metadata.get("cli", True):
                out.append({"name": f.name, "type": f.type, "default": f.default, "help": f.metadata["help"],
                            "choices": f.metadata.get("choices")})
        return out

    @property
    def needs_teacher(self) -> bool:
        return self.name not in ("seqkd", "sft")

    @property
    def supervise_names(self) -> tuple[str, ...]:
        """The supervised token kinds by name, in canonical order (prompt, reason, act, obs)."""
        raw = self.supervise or DEFAULT_SUPERVISE.get(self.name, "reason,act")
        names = {x.strip() for x in raw.split(",") if x.strip()}
        known = [k for k in SUPERVISE_KINDS if k in names]
        return tuple(known + sorted(names - set(known)))

    @property
    def supervised_kinds(self) -> tuple[int, ...]:
        return tuple(SUPERVISE_KINDS[k] for k in self.supervise_names if k in SUPERVISE_KINDS)


@dataclass
class LossOutput:
    """Result of :func:`compute_loss`.

    Attributes:
        total: 0-dim fp32, the loss to backpropagate (carries the gradient).
        cot: 0-dim, L_CoT as normalized by the config, before λ (detached; for logging). For ``kd`` and
            ``seqkd`` it is the same per-token objective restricted to reasoning tokens.
        act: 0-dim, L_Act likewise (detached).
        other: 0-dim, the prompt/observation term (when ``supervise`` holds obs/prompt, else 0; detached).
        ce: 0-dim mean (or sum) cross-entropy over the supervised tokens for ``kd``/``seqkd``/``sft``, else
            None (detached).
        n_reason / n_act / n_other: this batch's supervised-position counts per kind.
        per_token: ``[N]`` fp32 per-position objective value (τ²·divergence, or the kd/seqkd mix; 0 for
            positions a one-term loss skips), detached.
        per_token_div: ``[N]`` fp32 τ²-scaled divergence per position (0 where not computed), detached.
        per_token_ce: ``[N]`` fp32 cross-entropy per position or None, detached.
        positions: the :class:`SupervisedPositions` (after the random-spans shuffle, if any).
    """

    total: torch.Tensor
    cot: torch.Tensor
    act: torch.Tensor
    other: torch.Tensor
    ce: torch.Tensor | None
    n_reason: int
    n_act: int
    n_other: int
    per_token: torch.Tensor
    per_token_div: torch.Tensor
    per_token_ce: torch.Tensor | None
    positions: SupervisedPositions

    def as_dict(self) -> dict[str, float]:
        """Floats for logging: loss, l_cot, l_act (+ l_other, ce), n_reason, n_act."""
        d = {"loss": float(self.total.detach()), "l_cot": float(self.cot), "l_act": float(self.act),
             "n_reason": self.n_reason, "n_act": self.n_act}
        if self.n_other:
            d["l_other"] = float(self.other)
            d["n_other"] = self.n_other
        if self.ce is not None:
            d["ce"] = float(self.ce)
        return d


def loss_positions(config: LossConfig, token_labels: torch.Tensor, input_ids: torch.Tensor | None = None
                   ) -> SupervisedPositions:
    """The supervised positions :func:`compute_loss` will use for this config, in row order.

    Use it to run the teacher and gather its hidden states (``positions.gather(h)`` -> ``[N, H]``) or to
    build sparse teacher rows for exactly these positions. PROMPT tokens after the task prompt (chat
    glue) count as OBS (:func:`~sadcli.losses.alignment.continuation_labels`). ``random-spans`` needs
    ``input_ids`` (the relabelling is keyed on the sequence); its positions are ``sad``'s, only kinds differ.

    Args:
        token_labels: ``[B, T]`` span labels.
        input_ids: ``[B, T]`` token ids (gives ``targets``).
    """
    labels = continuation_labels(token_labels)
    if config.name == "random-spans":
        if input_ids is None:
            raise SadError("random-spans needs input_ids to draw random spans deterministically")
        labels = random_span_labels(labels, input_ids, config.seed)
    return supervised_positions(labels, input_ids=input_ids, kinds=config.supervised_kinds)


def _count(x: Any, fallback: int, device: Any) -> torch.Tensor:
    v = fallback if x is None else x
    return torch.as_tensor(v, dtype=torch.float32, device=device).detach()


def compute_loss(config: LossConfig, *, input_ids: torch.Tensor, token_labels: torch.Tensor,
                 student_hidden: torch.Tensor | None = None, lm_head: Any = None,
                 student_logits: torch.Tensor | None = None, teacher: Any = None,
                 num_reason: Any = None, num_act: Any = None, num_other: Any = None,
                 student_transform: Any = None) -> LossOutput:
    """Compute any loss of the library (see :mod:`sadcli.losses.baselines` for the list).

    Args:
        config: :class:`LossConfig`.
        input_ids: ``[B, T]`` token ids (targets of cross-entropy losses; key of the random-spans shuffle).
        token_labels: ``[B, T]`` span label of each token (``sadcli.labels``: PROMPT=0, REASON=1, ACT=2,
            OBS=3, PAD=-1). Logits at position t-1 are trained on token t with kind ``token_labels[:, t]``.
        student_hidden: ``[B, T, H]`` final hidden states of the student (after its final norm), with
            ``lm_head``: ``nn.Linear`` / ``[V, H]`` weight (tied embeddings work) / ``(weight, bias)`` / module.
        student_logits: ``[B, T, V]`` student logits instead (already transformed by the model).
        teacher: ``[B, T, V]`` or ``[N, V]`` logits (or :class:`DenseTeacher`), a
            :class:`HiddenTeacher` / ``(hidden [B,T,H_t] or [N,H_t], lm_head)`` pair, or a
            :class:`SparseTeacher` with ``N`` rows; N rows follow :func:`loss_positions` order.
            Not needed by ``seqkd``.
        num_reason / num_act / num_other: global supervised-token counts (int or 0-dim tensor) across
            gradient accumulation and devices, for ``per-span`` normalization (default: this batch's).
        student_transform: the student's final-logit transform (e.g. Gemma-2 soft-capping; see
            :func:`~sadcli.losses.transforms.logit_transform_for`) applied to ``student_hidden @ W.T``.
            Not applied to ``student_logits``.
    Returns:
        :class:`LossOutput`; 0 (not NaN) for terms without tokens.
    """
    config.validate()
    if (student_hidden is None) == (student_logits is None):
        raise SadError("compute_loss needs exactly one of student_hidden (+ lm_head) or student_logits")
    if student_hidden is not None and lm_head is None:
        raise SadError("student_hidden needs lm_head")
    if student_logits is not None and student_transform is not None:
        raise SadError("student_transform applies to student_hidden @ lm_head; student_logits must already be the "
                       "model's final logits", hint="drop student_transform or pass student_hidden")
    src = student_hidden if student_hidden is not None else student_logits
    if src.dim() != 3 or tuple(src.shape[:2]) != tuple(token_labels.shape):
        raise SadError(f"student tensor {list(src.shape)} does not match token_labels {list(token_labels.shape)}")
    device = src.device
    name = config.name
    B, T = token_labels.shape
    pos = loss_positions(config, token_labels.to(device), input_ids.to(device))
    kinds = pos.kinds
    is_r, is_a = kinds == REASON, kinds == ACT
    n_r, n_a = int(is_r.sum()), int(is_a.sum())
    n_o = len(pos) - n_r - n_a
    d_r, d_a, d_o = _count(num_reason, n_r, device), _count(num_act, n_a, device), _count(num_other, n_o, device)
    per_span = config.normalization == "per-span"
    coef_div, coef_ce = row_coefficients(name, kinds, lambda_reason=config.lambda_reason,
                                         lambda_act=config.lambda_act, alpha=config.alpha, denom_reason=d_r,
                                         denom_act=d_a, denom_other=d_o, per_span=per_span)

    head = as_head(lm_head) if student_hidden is not None else None
    V = head.vocab_size if head is not None else int(student_logits.shape[-1])

    # which rows are computed, and with which vocabulary
    active = torch.ones_like(is_r)
    restricted = config.action_vocab == "restricted" and name in _SPAN_AWARE
    bucketed = config.span_vocab == "bucketed" and name in SPAN_AWARE
    segments: list[Segment] = []
    lookup = None
    if restricted:
        if V is None:
            raise SadError("action_vocab=restricted needs to know the vocabulary size",
                           hint="pass the LM head as an nn.Linear or a [V, H] weight")
        va = _action_vocab(config.action_vocab_ids, V, device)
        lookup = torch.full((V,), -1, dtype=torch.long, device=device)
        lookup[va] = torch.arange(va.numel(), device=device)
        segments.append(Segment(rows=(active & ~is_a).nonzero(as_tuple=True)[0]))
        segments.append(Segment(rows=(active & is_a).nonzero(as_tuple=True)[0], vocab_ids=va, vocab_lookup=lookup))
    elif bucketed:
        if V is None:
            raise SadError("span_vocab=bucketed needs to know the vocabulary size",
                           hint="pass the LM head as an nn.Linear or a [V, H] weight")
        segments.append(Segment(rows=(~is_r & ~is_a).nonzero(as_tuple=True)[0]))
        for kind, mask in ((REASON, is_r), (ACT, is_a)):
            dom = _action_vocab(config.span_vocab_ids[kind], V, device)
            segments.append(Segment(rows=mask.nonzero(as_tuple=True)[0], bucket_ids=dom))
    else:
        segments.append(Segment(rows=active.nonzero(as_tuple=True)[0]))

    rows_t = None
    if coef_div is not None:
        if teacher is None:
            raise SadError(f"loss {name} needs a teacher", hint="only seqkd and sft train without teacher logits")
        t = as_teacher(teacher)
        rows_t = TeacherRows(t, pos.index, B, T)
        if rows_t.vocab_size is not None and V is not None and rows_t.vocab_size != V:
            raise SadError(f"teacher vocabulary ({rows_t.vocab_size}) differs from the student's ({V})",
                           hint="logit distillation needs a shared tokenizer")
        if isinstance(t, SparseTeacher):
            if bucketed:
                raise SadError("span_vocab=bucketed cannot be computed from a sparse (top-k) teacher: the teacher's "
                               "mass on domain ids outside its top-k is unknown",
                               hint="use a dense/online teacher, or span_vocab=full")
            _check_sparse(t, config, V, restricted, active, is_a)
            if restricted:
                act_ids = t.ids[(active & is_a).to(t.ids.device)].to(device)
                if act_ids.numel() and bool((lookup[act_ids] < 0).any()):
                    raise SadError("the sparse teacher has action-row ids outside the action vocabulary",
                                   hint="build it with teacher_topk(..., vocab_ids=<the same V_a>)")
    else:
        coef_div = None

    job = Job(segments=segments, coef_div=coef_div, coef_ce=coef_ce, targets=pos.targets, teacher=rows_t,
              divergence=config.divergence, beta=config.beta, temperature=float(config.temperature),
              transform=student_transform, chunk_size=int(config.chunk_size) or auto_chunk_size(V, device),
              general_chunk_size=None if int(config.chunk_size) else max(1, auto_chunk_size(V, device) // 2))
    if student_hidden is not None:
        total = run_hidden(job, pos.gather(student_hidden), head)
    else:
        total = run_logits(job, student_logits.reshape(B * T, V), pos.index)

    div, ce = job.div, job.ce
    if name == "kd":
        per_token = config.alpha * ce + (1.0 - config.alpha) * div
    elif name in ("seqkd", "sft"):
        per_token = ce
    else:
        per_token = div
    with torch.no_grad():
        fr, fa = is_r.float(), is_a.float()
        fo = 1.0 - fr - fa
        def term(mask: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
            s = (per_token * mask).sum()
            return s / denom.clamp(min=1.0) if per_span else s
        cot, act, other = term(fr, d_r), term(fa, d_a), term(fo, d_o)
        ce_out = None
        if ce is not None:
            s = ce.sum()
            ce_out = s / (d_r + d_a + d_o).clamp(min=1.0) if per_span else s
    return LossOutput(total=total, cot=cot, act=act, other=other, ce=ce_out, n_reason=n_r, n_act=n_a, n_other=n_o,
                      per_token=per_token.detach(), per_token_div=div.detach(),
                      per_token_ce=None if ce is None else ce.detach(), positions=pos)


def auto_chunk_size(vocab_size: int | None, device: Any) -> int:
    """Rows per chunk for ``chunk_size=0``: ~2^23 logits on CPU (32 MiB in fp32, under glibc's largest mmap
    threshold, so chunk buffers are reused instead of page-faulted in every time), ~2^25 on GPU. Chunks
    that need the general autograd path (sparse teachers, custom transforms) use half of it."""
    elements = 1 << 25 if torch.device(device).type == "cuda" else 1 << 23
    return max(1, elements // max(1, int(vocab_size or 1)))


def _action_vocab(ids: Any, V: int | None, device: Any) -> torch.Tensor:
    va = torch.as_tensor(ids, dtype=torch.long, device=device).reshape(-1)
    va = torch.unique(va)  # sorted, distinct
    if va.numel() == 0:
        raise SadError("the action vocabulary is empty")
    if int(va.min()) < 0 or (V is not None and int(va.max()) >= V):
        raise SadError(f"action vocabulary ids must lie in [0, {V})")
    return va


def _check_sparse(t: SparseTeacher, config: LossConfig, V: int | None, restricted: bool,
                  active: torch.Tensor, is_a: torch.Tensor) -> None:
    t.validate(int(active.numel()), V)
    if abs(float(t.temperature) - float(config.temperature)) > 1e-9:
        raise SadError(f"the sparse teacher was computed at temperature {t.temperature}, the loss uses "
                       f"{config.temperature}", hint="rebuild the teacher cache at the loss temperature")
    want = (active & is_a) if restricted else torch.zeros_like(active)
    have = (t.restricted_rows.to(active.device).bool() if t.restricted_rows is not None
            else torch.zeros_like(active)) & active
    if not torch.equal(want, have):
        if restricted:
            raise SadError("the sparse teacher's action rows are not renormalized over the action vocabulary",
                           hint="build it with teacher_topk(..., vocab_ids=V_a, restricted_rows=<action rows>)")
        raise SadError("the sparse teacher holds action-vocabulary (restricted) rows but the loss uses the full "
                       "vocabulary", hint="use --action-vocab restricted or rebuild the cache")
