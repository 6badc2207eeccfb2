"""The trainer's view of the loss library: one object per run wrapping a :class:`LossConfig`.

It knows which positions the loss supervises (so the teacher cache stores exactly those rows), the
global-count bookkeeping, the models' final-logit transforms, and the action vocabulary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any


def cache_target(rows: Any, divergence: str = "forward") -> tuple[Any, Any, Any, Any]:
    """The teacher target a loss compares the student with, from cached rows (what ``sad distill
    --teacher-cache`` trains on and ``sad eval --teacher-cache`` measures): for the forward KL of rows with
    tail samples, the unbiased sampled target (``CachedRows.sampled``, with its per-row ``offset``);
    otherwise the exact bucketed one (top ids + one tail bucket; offset None: reverse KL and JSD are not
    linear in the teacher).

    Args:
        rows: :class:`~sadcli.distill.teacher_cache.CachedRows` with N rows.
    Returns:
        ids ``[N, k']``, logprobs ``[N, k']``, tail_logprob ``[N]``, offset ``[N]`` or None.
    """
    if rows.samples is not None and divergence == "forward":
        return rows.sampled()
    ids, lp, tail = rows.bucketed()
    return ids, lp, tail, None


class Objective:
    """A configured loss. ``loss(...)`` is called once per micro-batch by the trainer."""

    def __init__(self, config: Any, data_settings: dict[str, Any] | None = None):
        self.config = config.validate()
        self.data_settings = dict(data_settings or {})
        self.teacher_transform = None
        self.student_transform = None

    @classmethod
    def from_options(cls, options: dict[str, Any], *, seed: int = 0, examples: Sequence[Any] = (),
                     eos_id: int | None = None, data_settings: dict[str, Any] | None = None,
                     tokenizer: Any = None) -> Objective:
        """Build from ``sad distill`` loss options; V_a comes from the examples' action tokens + EOS;
        the bucketed domains V_r, V_a from the examples' spans + the tokenizer's marker tokens + EOS."""
        from sadcli.errors import InputError
        from sadcli.losses.sad_loss import LossConfig

        opts = dict(options)
        opts.setdefault("seed", seed)
        if opts.get("span_vocab") == "bucketed":
            from sadcli.losses.vocab import build_span_vocab, marker_token_ids

            extra = set() if eos_id is None else {eos_id}
            if tokenizer is not None:
                extra.update(marker_token_ids(tokenizer))
            opts["span_vocab_ids"] = build_span_vocab(((ex.input_ids, ex.token_labels) for ex in examples),
                                                      extra_ids=sorted(extra))
        if opts.get("action_vocab") == "restricted":
            from sadcli.losses.vocab import build_action_vocab

            opts["action_vocab_ids"] = build_action_vocab(
                ((ex.input_ids, ex.token_labels) for ex in examples), extra_ids=() if eos_id is None else (eos_id,))
        try:
            return cls(LossConfig(**opts), data_settings)
        except TypeError as e:
            raise InputError(f"bad loss option: {e}") from None

    # --- what the loss needs ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def needs_teacher(self) -> bool:
        return self.config.needs_teacher

    @property
    def temperature(self) -> float:
        return float(self.config.temperature)

    @property
    def positions(self) -> str:
        """Which rows the loss supervises: ``agent`` (reason + act rows) or the kinds, e.g. ``reason,act,obs``."""
        names = self.config.supervise_names
        return "agent" if names == ("reason", "act") else ",".join(names)

    @property
    def bucketed(self) -> bool:
        from sadcli.losses.baselines import SPAN_AWARE

        return self.config.span_vocab == "bucketed" and self.config.name in SPAN_AWARE

    @property
    def restricted(self) -> bool:
        return self.config.action_vocab == "restricted" and self.config.name in ("sad", "only-act", "random-spans")

    @property
    def action_vocab_fingerprint(self) -> str:
        """'full', or a hash of V_a (and of the shuffle seed for random-spans): cached action rows
        renormalized over V_a are only valid for the same V_a and the same shuffled kinds."""
        if not self.restricted:
            return "full"
        ids = self.config.action_vocab_ids
        h = hashlib.sha256(bytes(str([int(i) for i in ids]), "ascii"))
        if self.config.name == "random-spans":
            h.update(f"random-spans:{self.config.seed}".encode())
        return "restricted:" + h.hexdigest()[:16]

    def bind_teacher(self, teacher: Any) -> None:
        """Read (and verify once) the teacher's final-logit transform (soft-capping, scaling)."""
        from sadcli.losses.transforms import check_logit_transform, logit_transform_for

        self.teacher_transform = logit_transform_for(teacher)
        check_logit_transform(teacher, self.teacher_transform)

    def bind_student(self, student: Any) -> None:
        from sadcli.losses.transforms import check_logit_transform, logit_transform_for

        self.student_transform = logit_transform_for(student)
        check_logit_transform(student, self.student_transform)

    # --- per step --------------------------------------------------------------------------
    def counts(self, token_labels: Any, input_ids: Any = None) -> tuple[float, float, float]:
        """Supervised (reason, act, other) positions of a micro-batch ``[B, T]`` (next-token aligned), as
        this loss supervises them (its token set; random-spans' relabelled kinds, which need ``input_ids``)."""
        from sadcli.losses.alignment import positions_counts
        from sadcli.losses.sad_loss import loss_positions

        if input_ids is None:
            import torch

            if self.config.name == "random-spans":
                raise ValueError("random-spans counts need input_ids")
            input_ids = torch.zeros_like(token_labels)
        c = positions_counts(loss_positions(self.config, token_labels, input_ids))
        return float(c.reason), float(c.act), float(c.other)

    def loss(self, student_hidden: Any, lm_head: Any, input_ids: Any, token_labels: Any, teacher: Any,
             num: tuple[float, float, float], *, step: int = 0, micro: int = 0) -> Any:
        """One micro-batch.

        Args:
            student_hidden: ``[B, T, H]`` student final hidden states (with grad).
            lm_head: the student's output embedding module.
            input_ids, token_labels: ``[B, T]``.
            teacher: None (seqkd), ``("hidden", [B, T, H_t], teacher_lm_head)`` (online), or
                ``("cache", CachedRows)`` with N rows in loss-position order (offline).
            num: global (reason, act, other) counts of the optimizer step.
        Returns:
            the library's LossOutput (``total`` carries the gradient; ``cot``/``act`` for logging).
        """
        from sadcli.losses.sad_loss import compute_loss
        from sadcli.losses.sparse import SparseTeacher
        from sadcli.losses.teachers import HiddenTeacher

        t, offset = None, None
        if teacher is not None:
            if teacher[0] == "hidden":
                t = HiddenTeacher(teacher[1], teacher[2], self.teacher_transform)
            else:
                ids, lp, tail, offset = cache_target(teacher[1], self.config.divergence)
                dev = student_hidden.device
                t = SparseTeacher(ids=ids.to(dev), logprobs=lp.to(dev), tail_logprob=tail.to(dev),
                                  temperature=self.temperature)
        out = compute_loss(self.config, input_ids=input_ids, token_labels=token_labels,
                           student_hidden=student_hidden, lm_head=lm_head, teacher=t,
                           num_reason=num[0], num_act=num[1], num_other=num[2],
                           student_transform=self.student_transform)
        if offset is not None:
            self._add_offset(out, offset.to(out.total.device), num)
        return out

    def _add_offset(self, out: Any, offset: Any, num: tuple[float, float, float]) -> None:
        """Add the per-row constants of the sampled-tail estimate (no gradient) to the reported
        values, with exactly the row weights of the loss: total, L_CoT, L_Act (and the flat term)."""
        import torch

        from sadcli.labels import ACT, REASON
        from sadcli.losses.baselines import row_coefficients

        c = self.config
        kinds = out.positions.kinds.to(offset.device)
        d = [torch.tensor(float(x), device=offset.device) for x in num]
        per_span = c.normalization == "per-span"
        coef_div, _ = row_coefficients(c.name, kinds, lambda_reason=c.lambda_reason, lambda_act=c.lambda_act,
                                       alpha=c.alpha, denom_reason=d[0], denom_act=d[1], denom_other=d[2],
                                       per_span=per_span)
        if coef_div is None:
            return
        tau2 = float(c.temperature) ** 2
        out.total = out.total + tau2 * (coef_div * offset).sum()
        m = (1.0 - c.alpha) if c.name == "kd" else 1.0
        is_r, is_a = kinds == REASON, kinds == ACT
        active = is_r if c.name == "only-reason" else is_a if c.name == "only-act" else torch.ones_like(is_r)

        def term(mask: Any, denom: Any) -> Any:
            s = (offset * (mask & active).float()).sum()
            return m * tau2 * (s / denom.clamp(min=1.0) if per_span else s)

        out.cot = out.cot + term(is_r, d[0])
        out.act = out.act + term(is_a, d[1])
        out.other = out.other + term(~(is_r | is_a), d[2])

    def teacher_rows(self, hidden: Any, teacher: Any, token_labels: Any, input_ids: Any, k: int, samples: int,
                     generator: Any = None) -> tuple[Any, list[int]]:
        """Teacher rows of a batch for the offline cache (top ids + tail draws).

        Args:
            hidden: ``[B, T, H]`` teacher final hidden states.
        Returns:
            (CachedRows with N rows in loss-position order, rows per sequence [B]).
        """
        import torch

        from sadcli.distill.teacher_cache import concat_rows, teacher_rows
        from sadcli.losses.divergences import log_softmax_fp32
        from sadcli.losses.sad_loss import loss_positions
        from sadcli.losses.teachers import as_head

        if self.restricted or self.bucketed:
            from sadcli.errors import InputError

            opt = "--action-vocab restricted" if self.restricted else "--span-vocab bucketed"
            raise InputError(f"{opt} is not supported with a teacher cache: a top-k cache does not hold the "
                             "teacher's mass on every id of the span vocabulary",
                             hint="train with the online teacher (drop --cache-teacher/--teacher-cache)")
        pos = loss_positions(self.config, token_labels, input_ids)
        h = pos.gather(hidden)
        head = as_head(teacher.get_output_embeddings())
        chunk = self._chunk(teacher, hidden)
        parts = []
        with torch.no_grad():
            for start in range(0, h.shape[0], chunk):
                z = head(h[start:start + chunk])
                if self.teacher_transform is not None:
                    z = self.teacher_transform(z)
                lp = log_softmax_fp32(z, self.temperature).cpu()
                parts.append(teacher_rows(lp, k, samples, generator))
        if not parts:
            parts.append(teacher_rows(torch.zeros(0, head.vocab_size), k, samples, generator))
        per_row = torch.bincount(pos.batch, minlength=pos.batch_size).tolist()
        return concat_rows(parts), per_row

    def _chunk(self, model: Any, like: Any) -> int:
        from sadcli.losses.sad_loss import auto_chunk_size

        V = int(model.get_output_embeddings().weight.shape[0])
        return int(self.config.chunk_size) or auto_chunk_size(V, like.device)

    def describe(self) -> dict[str, Any]:
        d = asdict(self.config)
        ids = d.pop("action_vocab_ids", None)
        if ids is not None:
            d["action_vocab_size"] = int(len(ids))
        span = d.pop("span_vocab_ids", None)
        if span is not None:
            from sadcli.labels import ACT, REASON

            d["span_vocab_sizes"] = {"reason": int(len(span[REASON])), "act": int(len(span[ACT]))}
        d["supervise"] = ",".join(self.config.supervise_names)
        return d


TEACHER_LOSSES = ("seqkd", "kd", "token-kd", "sad", "flat", "only-reason", "only-act", "random-spans")


def _same_teacher(recorded: str, spec: str) -> bool:
    r, s = recorded.strip(), spec.strip()
    if r == s:
        return True
    kind, _, rest = r.partition(":")
    return kind == "hf" and rest == s


def provenance(examples: Sequence[Any], teacher_spec: str | None, loss_name: str, *, warn: Any = None
               ) -> dict[str, Any]:
    """Who wrote the training text, compared with the teacher being distilled.

    ``collect`` writes ``teacher`` on every record (``expert``, ``hf:<spec>``...). For the distillation
    losses (seqkd is defined on text the teacher generated; kd, token-kd and the span losses compare the
    student with the teacher on that text), a record whose ``teacher`` differs from ``--teacher`` means
    "distilling a teacher on text it did not write": ``warn(message)`` is called once. ``sft`` trains on
    whatever wrote the data (no teacher model), so nothing is compared. Records without ``teacher``
    (hand-made data) are counted as ``<not recorded>`` and do not warn.

    Returns:
        ``{"record_teachers": {name: count}, "teacher": spec or None, "matches": bool | None}`` for
        sad_config.json and the summary.
    """
    from collections import Counter

    seen = Counter(str((getattr(ex, "extra", None) or {}).get("teacher", "<not recorded>")) for ex in examples)
    out: dict[str, Any] = {"record_teachers": dict(seen), "teacher": None, "matches": None}
    if loss_name not in TEACHER_LOSSES:
        return out
    out["teacher"] = teacher_spec
    known = {k: v for k, v in seen.items() if k != "<not recorded>"}
    other = {k: v for k, v in known.items() if teacher_spec is None or not _same_teacher(k, teacher_spec)}
    out["matches"] = (not other) if known else None
    if other and warn is not None:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(other.items(), key=lambda kv: -kv[1]))
        warn(f"distilling a teacher on text it did not write: --teacher {teacher_spec} but the records were "
             f"written by {listed}. For seqkd use `sad collect --teacher hf:{teacher_spec}` output; see docs/losses.md")
    return out
