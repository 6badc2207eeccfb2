"""Teacher-forced fidelity of students on held-out segmented trajectories (no environment).

For every model, on the same tokens (the mask library's examples, in the model's render):

- per span kind (``reason``, ``act``), at the positions that predict a token of that kind: forward
  KL(p_T || p_S) in nats, the student's NLL of the data token, top-1 agreement (student argmax = teacher
  argmax) and top-1 accuracy (student argmax = data token); means over tokens;
- **action match**: share of steps whose greedy action, given the history *including the step's reasoning*
  (the prompt ends with the action marker), equals the reference action after whitespace/case
  normalization (:func:`sadcli.eval.text.action_match`);
- **CoT match** (our definition; see :mod:`sadcli.eval.text`): share of reasoning steps where the greedy
  reasoning from the history (the prompt ends with the reasoning marker; generation up to the action
  marker) has ROUGE-L F1 >= threshold against the reference reasoning; and the mean ROUGE-L F1;
- **free-action match**: the action the model wrote after its own reasoning (the same generation,
  continued to the end of its action line), compared with the reference action.

References are the data's reasoning and actions (``reference="data"``: the held-out trajectories are the
teacher's), or the teacher model's own greedy outputs from the same prompts (``reference="teacher"``).
A teacher evaluated against itself gives KL 0 and, with ``reference="teacher"``, 100% matches.

Generation is batched over trajectories, one step index per round, with a KV cache kept per trajectory
and prompt kind (each round feeds only the tokens the prompt gained), on
:class:`sadcli.teachers.hf.HFGenerator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sadcli.errors import InputError
from sadcli.eval.prompting import SadFormat, format_from_record
from sadcli.eval.text import DEFAULT_COT_THRESHOLD, action_match, rouge_l_f1
from sadcli.labels import ACT, REASON

KINDS = {"reason": REASON, "act": ACT}


@dataclass
class SpanStats:
    kl: float = 0.0
    nll: float = 0.0
    agree: int = 0
    correct: int = 0
    tokens: int = 0

    def to_dict(self) -> dict:
        n = self.tokens
        return {"kl": self.kl / n if n else math.nan, "nll": self.nll / n if n else math.nan,
                "top1_agreement": self.agree / n if n else math.nan,
                "top1_accuracy": self.correct / n if n else math.nan, "tokens": n}


def span_stats(t_logits, s_logits, targets, kinds, out: dict[str, SpanStats]) -> None:
    """Accumulate per-kind token metrics.

    Args:
        t_logits: ``[N, V]`` teacher logits at N predicting positions.
        s_logits: ``[N, V]`` student logits at the same positions.
        targets: ``[N]`` the data token each position predicts.
        kinds: ``[N]`` label (``REASON`` / ``ACT``) of that token.
    """
    import torch

    lt = torch.log_softmax(t_logits.float(), -1)
    ls = torch.log_softmax(s_logits.float(), -1)
    kl = (lt.exp() * (lt - ls)).sum(-1).clamp(min=0.0)       # [N]
    nll = -ls.gather(-1, targets[:, None]).squeeze(-1)         # [N]
    s_top = ls.argmax(-1)
    agree = s_top == lt.argmax(-1)
    correct = s_top == targets
    for name, lab in KINDS.items():
        m = kinds == lab
        n = int(m.sum())
        if not n:
            continue
        st = out.setdefault(name, SpanStats())
        st.kl += float(kl[m].sum())
        st.nll += float(nll[m].sum())
        st.agree += int(agree[m].sum())
        st.correct += int(correct[m].sum())
        st.tokens += n


def _logits_at(model, ids, positions):
    """``[N, V]`` logits at ``positions`` (1-D) of a one-row ``ids`` ``[1, T]``."""
    import torch

    with torch.inference_mode():
        try:
            out = model(input_ids=ids, logits_to_keep=positions)
            logits = out.logits[0]
            if logits.shape[0] == positions.numel():
                return logits
        except TypeError:
            pass
        return model(input_ids=ids).logits[0, positions]


@dataclass
class StepPrompts:
    """Prompt prefixes of one step of one trajectory."""

    rec: int
    step: int
    cot: str          # history up to the step, ending with the reasoning marker
    act: str | None   # history including the step's reasoning, ending with the action marker
    reason: str | None
    action: str | None


def step_prompts(rec_index: int, rec: dict, rendered, fmt: SadFormat) -> list[StepPrompts]:
    """The prompts of every step with an action in a rendered record (text or chat)."""
    first: dict[int, int] = {}
    act_start: dict[int, int] = {}
    for s, lab, st in zip(rendered.starts, rendered.labels, rendered.steps, strict=True):
        if st < 0:
            continue
        if lab in (REASON, ACT) and st not in first:
            first[st] = s
        if lab == ACT and st not in act_start:
            act_start[st] = s
    steps = rec.get("steps") or []
    out = []
    for i in sorted(act_start):
        ref = steps[i] if i < len(steps) else {}
        text = rendered.text
        out.append(StepPrompts(rec_index, i, text[:first[i]] + fmt.reason_marker,
                               text[:act_start[i]] + fmt.act_marker, ref.get("reason"), ref.get("action")))
    return out


@dataclass
class Outputs:
    cot_reason: list[str | None] = field(default_factory=list)
    free_action: list[str | None] = field(default_factory=list)
    action: list[str | None] = field(default_factory=list)


def generate_outputs(gen, prompts: list[StepPrompts], fmt: SadFormat) -> Outputs:
    """Greedy reasoning + free action and teacher-forced action for every step prompt, batched by step."""
    from sadcli.eval.prompting import parse_output

    holders: dict[tuple[int, str], dict] = {}
    res: dict[int, tuple] = {}
    rounds: dict[int, list[int]] = {}
    for j, p in enumerate(prompts):
        rounds.setdefault(p.step, []).append(j)
    for step in sorted(rounds):
        idx = rounds[step]
        free = gen.generate([prompts[j].cot for j in idx], fmt.stops,
                            [holders.setdefault((prompts[j].rec, "cot"), {}) for j in idx], after=fmt.act_marker)
        act_idx = [j for j in idx if prompts[j].act is not None]
        acts = gen.generate([prompts[j].act for j in act_idx], ["\n"],
                            [holders.setdefault((prompts[j].rec, "act"), {}) for j in act_idx]) if act_idx else []
        act_of = dict(zip(act_idx, acts, strict=True))
        for j, t in zip(idx, free, strict=True):
            reason, action = parse_output(fmt.reason_marker + t, fmt.markers)
            a = act_of.get(j)
            res[j] = (reason, action, a.strip().split("\n", 1)[0].strip() if a is not None else None)
    out = Outputs()
    for j in range(len(prompts)):
        r, fa, a = res[j]
        out.cot_reason.append(r)
        out.free_action.append(fa)
        out.action.append(a)
    return out


def match_metrics(prompts: list[StepPrompts], outs: Outputs, refs: Outputs | None,
                  threshold: float = DEFAULT_COT_THRESHOLD) -> dict:
    """Action / CoT / free-action match of ``outs`` against the data (``refs`` None) or a teacher's outputs."""
    from sadcli.eval.summary import rate

    n_act = k_act = n_free = k_free = n_cot = k_cot = 0
    rouge: list[float] = []
    for j, p in enumerate(prompts):
        ref_reason = p.reason if refs is None else refs.cot_reason[j]
        ref_action = p.action if refs is None else refs.action[j]
        ref_free = p.action if refs is None else refs.free_action[j]
        if ref_action:
            n_act += 1
            k_act += action_match(outs.action[j], ref_action)
        if ref_free:
            n_free += 1
            k_free += action_match(outs.free_action[j], ref_free)
        if p.reason and ref_reason:  # a reasoning step of the data
            f = rouge_l_f1(outs.cot_reason[j], ref_reason)
            rouge.append(f)
            n_cot += 1
            k_cot += f >= threshold
    return {"action_match": rate(k_act, n_act), "cot_match": rate(k_cot, n_cot),
            "cot_rouge_l": sum(rouge) / len(rouge) if rouge else math.nan,
            "free_action_match": rate(k_free, n_free), "cot_threshold": threshold}


@dataclass
class FidelityModel:
    label: str
    model: Any
    tokenizer: Any


def evaluate_fidelity(records: list[dict], models: list[FidelityModel], teacher: FidelityModel, *,
                      render: str = "text", max_length: int | None = None, reference: str = "data",
                      threshold: float = DEFAULT_COT_THRESHOLD, max_new_tokens: int = 96,
                      generate: bool = True, device: str | None = None,
                      on_progress: Callable[[str], None] | None = None) -> dict:
    """Fidelity of every model in ``models`` to ``teacher`` on ``records`` (segmented); ``{label: metrics}``."""
    import torch

    from sadcli.masks.build import build_examples
    from sadcli.masks.render import ChatRenderer, render_text
    from sadcli.teachers.hf import GenOptions, HFGenerator

    if reference not in ("data", "teacher"):
        raise InputError(f"unknown reference {reference!r}", hint="use data or teacher")
    tok = teacher.tokenizer
    examples = list(build_examples(records, tok, render=render, max_length=max_length))
    fmt = format_from_record(records[0], render)
    renderer = ChatRenderer(tok) if render == "chat" else None
    prompts: list[StepPrompts] = []
    for i, rec in enumerate(records):
        rendered = renderer(rec) if renderer is not None else render_text(rec)
        prompts.extend(step_prompts(i, rec, rendered, fmt))

    # 1. token metrics: one forward per example and model, logits only where a reason/act token is predicted
    stats: dict[str, dict[str, SpanStats]] = {m.label: {} for m in models}
    for ex in examples:
        labels = torch.tensor(ex.token_labels)
        ids = torch.tensor([ex.input_ids])
        pos = ((labels[1:] == REASON) | (labels[1:] == ACT)).nonzero().squeeze(-1)
        if pos.numel() == 0:
            continue
        targets, kinds = ids[0, pos + 1], labels[pos + 1]
        t_logits = _logits_at(teacher.model, ids.to(_dev(teacher.model)), pos.to(_dev(teacher.model))).cpu()
        for m in models:
            s_logits = _logits_at(m.model, ids.to(_dev(m.model)), pos.to(_dev(m.model))).cpu()
            span_stats(t_logits, s_logits, targets, kinds, stats[m.label])
    if on_progress:
        on_progress(f"token metrics: {len(examples)} trajectories x {len(models)} model(s) done")
    result = {m.label: {k: v.to_dict() for k, v in stats[m.label].items()} for m in models}
    for m in models:
        result[m.label]["examples"] = len(examples)
        result[m.label]["steps"] = len(prompts)
    if not generate or not prompts:
        return result

    # 2. generation metrics
    def gen_of(m: FidelityModel):
        opts = GenOptions(max_new_tokens=max_new_tokens, chat="yes" if render == "chat" else "no",
                          max_prompt_tokens=int(getattr(m.model.config, "max_position_embeddings", 0) or 4096)
                          - max_new_tokens, device=device)
        return HFGenerator(m.label, opts, model=m.model, tokenizer=m.tokenizer)

    refs = generate_outputs(gen_of(teacher), prompts, fmt) if reference == "teacher" else None
    if refs is not None and on_progress:
        on_progress(f"generation: teacher references for {len(prompts)} steps done")
    for m in models:
        outs = generate_outputs(gen_of(m), prompts, fmt)
        result[m.label].update(match_metrics(prompts, outs, refs, threshold))
        result[m.label]["reference"] = reference
        if on_progress:
            on_progress(f"generation: {m.label} on {len(prompts)} steps done")
    return result


def _dev(model):
    return next(model.parameters()).device
