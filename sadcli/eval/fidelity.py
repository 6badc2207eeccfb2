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
    accumulate(kl, ls, lt.argmax(-1), targets, kinds, out)


def accumulate(kl, s_logprobs, t_top, targets, kinds, out: dict[str, SpanStats]) -> None:
    """Add N positions to the per-kind sums.

    Args:
        kl: ``[N]`` forward KL(p_T || p_S) per position (nats).
        s_logprobs: ``[N, V]`` student log-probabilities (normalized: the target's entry is its NLL).
        t_top: ``[N]`` the teacher's argmax token.
        targets: ``[N]`` the data token each position predicts.
        kinds: ``[N]`` its label; positions of other kinds than ``REASON`` / ``ACT`` are ignored.
    """
    nll = -s_logprobs.gather(-1, targets[:, None]).squeeze(-1)  # [N]
    s_top = s_logprobs.argmax(-1)
    agree = s_top == t_top
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
    """Greedy reasoning + free action and teacher-forced action for every step prompt, batched by step.

    One KV cache per trajectory: a step's action prompt extends its reasoning prompt, and the next step's
    reasoning prompt extends both, so each call prefills only the text added since the previous one.
    """
    from sadcli.eval.prompting import parse_output

    holders: dict[int, dict] = {}  # one KV cache per trajectory
    res: dict[int, tuple] = {}
    rounds: dict[int, list[int]] = {}
    for j, p in enumerate(prompts):
        rounds.setdefault(p.step, []).append(j)
    for step in sorted(rounds):
        idx = rounds[step]
        free = gen.generate([prompts[j].cot for j in idx], fmt.stops,
                            [holders.setdefault(prompts[j].rec, {}) for j in idx], after=fmt.act_marker)
        act_idx = [j for j in idx if prompts[j].act is not None]
        acts = gen.generate([prompts[j].act for j in act_idx], ["\n"],
                            [holders.setdefault(prompts[j].rec, {}) for j in act_idx]) if act_idx else []
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
    act_steps: list[int] = []
    for j, p in enumerate(prompts):
        ref_reason = p.reason if refs is None else refs.cot_reason[j]
        ref_action = p.action if refs is None else refs.action[j]
        ref_free = p.action if refs is None else refs.free_action[j]
        if ref_action:
            n_act += 1
            act_steps.append(int(action_match(outs.action[j], ref_action)))
            k_act += act_steps[-1]
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
            "free_action_match": rate(k_free, n_free), "cot_threshold": threshold,
            "action_match_steps": act_steps}


def paired_action_tests(models: dict[str, dict]) -> list[dict]:
    """Exact McNemar test of action match for every pair of models (the same held-out steps, in order).

    ``models`` is :func:`evaluate_fidelity`'s result; models without per-step outcomes (no generation)
    are left out. Each entry: ``{"a", "b", "n", "a_only", "b_only", "p_value"}`` (``a_only``: steps only
    ``a`` matched).
    """
    from sadcli.eval.stats import pairwise_mcnemar

    steps = {m: f["action_match_steps"] for m, f in models.items() if f.get("action_match_steps")}
    n = {len(v) for v in steps.values()}
    if len(n) > 1:
        raise ValueError("action match outcomes of different held-out steps cannot be paired")
    return pairwise_mcnemar({m: {i: bool(x) for i, x in enumerate(v)} for m, v in steps.items()})


@dataclass
class FidelityModel:
    label: str
    model: Any
    tokenizer: Any


def evaluate_fidelity(records: list[dict], models: list[FidelityModel], teacher: FidelityModel | None, *,
                      render: str = "text", max_length: int | None = None, reference: str = "data",
                      threshold: float = DEFAULT_COT_THRESHOLD, max_new_tokens: int = 96,
                      generate: bool = True, device: str | None = None, teacher_cache: Any = None,
                      source: str | None = None, on_progress: Callable[[str], None] | None = None) -> dict:
    """Fidelity of every model in ``models`` to ``teacher`` on ``records`` (segmented); ``{label: metrics}``.

    With ``teacher_cache`` (a ``sad distill --cache-teacher`` directory built from these records, or its
    :class:`CacheSource` from :func:`open_teacher_cache`) the
    token metrics come from the cache instead of a live teacher (:func:`cache_token_stats`; ``render``
    and ``max_length`` are the cache's, ``teacher`` may be None); ``reference="teacher"`` needs the
    teacher's own generations and is refused. ``source`` names the records' file in errors.
    """
    import torch

    from sadcli.masks.build import build_examples
    from sadcli.masks.render import ChatRenderer, render_text
    from sadcli.teachers.hf import GenOptions, HFGenerator

    if reference not in ("data", "teacher"):
        raise InputError(f"unknown reference {reference!r}", hint="use data or teacher")
    if teacher is None and teacher_cache is None:
        raise InputError("fidelity needs a teacher", hint="give --teacher SPEC or --teacher-cache DIR")
    if teacher_cache is not None and reference == "teacher":
        raise InputError(CACHE_NO_GENERATIONS, hint="use --reference data, or a live teacher (--teacher SPEC)")
    tok = (teacher or models[0]).tokenizer
    src = None
    if isinstance(teacher_cache, CacheSource):
        src = teacher_cache
    elif teacher_cache is not None:
        src = open_teacher_cache(teacher_cache, records, tok, source=source, render=render,
                                 max_length=max_length)
    if src is not None:
        render, examples = src.render, src.examples
    else:
        examples = list(build_examples(records, tok, render=render, max_length=max_length))
    fmt = format_from_record(records[0], render)
    renderer = ChatRenderer(tok) if render == "chat" else None
    prompts: list[StepPrompts] = []
    for i, rec in enumerate(records):
        rendered = renderer(rec) if renderer is not None else render_text(rec)
        prompts.extend(step_prompts(i, rec, rendered, fmt))

    # 1. token metrics: one forward per example and model, logits only where a reason/act token is predicted
    stats: dict[str, dict[str, SpanStats]] = {m.label: {} for m in models}
    if src is not None:
        stats = cache_token_stats(src, models)
    for ex in examples if src is None else ():
        labels = torch.tensor(ex.token_labels)
        ids = torch.tensor([ex.input_ids])
        pos = ((labels[1:] == REASON) | (labels[1:] == ACT)).nonzero().squeeze(-1)
        if pos.numel() == 0:
            continue
        targets, kinds = ids[0, pos + 1], labels[pos + 1]
        t_logits = _logits_at(teacher.model, ids.to(_dev(teacher.model)), pos.to(_dev(teacher.model))).cpu()
        for m in models:  # the teacher as one of the models: its logits are the teacher's (one forward)
            s_logits = t_logits if m.model is teacher.model else \
                _logits_at(m.model, ids.to(_dev(m.model)), pos.to(_dev(m.model))).cpu()
            span_stats(t_logits, s_logits, targets, kinds, stats[m.label])
    if on_progress:
        what = f"{len(examples)} {'cached examples' if src else 'trajectories'}"
        on_progress(f"token metrics: {what} x {len(models)} model(s) done")
    result = {m.label: {k: v.to_dict() for k, v in stats[m.label].items()} for m in models}
    for m in models:
        result[m.label]["examples"] = len(examples)
        result[m.label]["steps"] = len(prompts)
        if src is not None:
            result[m.label]["kl_estimate"] = src.kl_estimate
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


# --- fidelity from a teacher cache -----------------------------------------------------------------

CACHE_NO_GENERATIONS = ("--reference teacher compares with the teacher's own greedy generations, which a teacher "
                        "cache does not hold (it keeps top-k log-probs at the data's tokens only)")


@dataclass
class CacheSource:
    """A ``sad distill --cache-teacher`` directory matched with the held-out records it was built from.

    Attributes:
        cache: the opened :class:`~sadcli.distill.teacher_cache.TeacherCache`.
        examples: the cache's examples, rebuilt from the records with its data settings (render, max
            length, truncation, step windows); their fingerprint equals the cache's.
        config: a ``sad`` :class:`~sadcli.losses.LossConfig` whose ``loss_positions`` are the cache's rows
            (its ``supervise`` = the cache's positions).
        render: the cache's render (``text`` or ``chat``).
        kl_estimate: how the KL is estimated (``sampled-tail`` or ``bucketed``) with k and samples.
    """

    cache: Any
    examples: list
    config: Any
    render: str
    kl_estimate: str


def open_teacher_cache(path: str, records: list[dict], tokenizer: Any, *, source: str | None = None,
                       render: str | None = None, max_length: int | None = None) -> CacheSource:
    """Open a teacher cache for fidelity on ``records``; refuse one built from other data or settings.

    ``render`` / ``max_length``, when given, must be the cache's (it fixes the tokenization).
    """
    from sadcli.distill.data import fingerprint_settings
    from sadcli.distill.teacher_cache import TeacherCache, data_fingerprint
    from sadcli.losses.sad_loss import LossConfig
    from sadcli.masks.build import build_examples

    cache = TeacherCache.open(path)
    m = cache.manifest
    data = m.get("data", {})
    if m.get("parts"):
        raise InputError(f"{path} joins {len(m['parts'])} teacher caches (data shards); fidelity reads one cache "
                         "built from the held-out file", hint="sad distill HELDOUT --teacher SPEC --cache-teacher DIR")
    if data.get("emitted") or "render" not in data:
        raise InputError(f"the teacher cache {path} was built from `sad mask-check --emit` lines",
                         hint="build the cache from the segmented held-out JSONL: sad distill HELDOUT --teacher "
                              "SPEC --cache-teacher DIR")
    if abs(float(m.get("temperature", 1.0)) - 1.0) > 1e-9:
        raise InputError(f"the teacher cache {path} holds log-probs at temperature {m.get('temperature')}; "
                         "fidelity compares the distributions at temperature 1",
                         hint="build the cache with --temperature 1 (the default), or use --teacher SPEC")
    if m.get("action_vocab", "full") != "full":
        raise InputError(f"the teacher cache {path} holds action rows renormalized over an action vocabulary",
                         hint="build the cache with --action-vocab full, or use --teacher SPEC")
    c_render, c_len = data.get("render", "text"), data.get("max_length")
    truncate, window = data.get("truncate", "start"), data.get("window", "truncate")
    if render is not None and render != c_render:
        raise InputError(f"--render {render}, but the teacher cache {path} was built with render {c_render}",
                         hint=f"drop --render or give --render {c_render}")
    if max_length is not None and max_length != c_len:
        raise InputError(f"--max-length {max_length}, but the teacher cache {path} was built with max length "
                         f"{c_len}", hint="drop --max-length (the cache fixes the tokenization)")
    examples = list(build_examples(records, tokenizer, render=c_render, max_length=c_len, keep=truncate,
                                   window=window))
    fp = data_fingerprint(examples, **fingerprint_settings(c_render, c_len, truncate, window))
    if fp != data.get("fingerprint"):
        raise InputError(
            f"the teacher cache {path} was built from other data ({data.get('source', '?')}: "
            f"{data.get('examples', '?')} examples at render {c_render}, max length {c_len}, window {window}) "
            f"than these {len(records)} records ({len(examples)} examples with its settings)",
            file=source, hint="give the held-out file the cache was built from, or build a cache from this one: "
                              "sad distill HELDOUT --teacher SPEC --cache-teacher DIR")
    positions = m.get("positions", "agent")
    config = LossConfig(name="sad", supervise="reason,act" if positions == "agent" else positions).validate()
    k, smp = int(m.get("k", 0)), int(m.get("samples", 0))
    how = (f"sampled-tail (top {k - smp} + {smp} tail samples)" if smp else f"bucketed (top {k} + tail)")
    return CacheSource(cache, examples, config, c_render, how)


def cache_token_stats(src: CacheSource, models: list[FidelityModel], chunk: int = 256
                      ) -> dict[str, dict[str, SpanStats]]:
    """Per-kind token metrics of every model against the cached teacher.

    The KL per position is the one ``sad distill --teacher-cache`` trains on, from the same code: the
    cached rows' target (:meth:`~sadcli.distill.teacher_cache.CachedRows.target`: with tail samples, top
    ids + tail draws and the per-row constant that makes it an unbiased estimate of the dense forward
    KL; without, the exact KL of the bucketed distributions, a lower bound) and
    :func:`~sadcli.losses.compute_loss`'s per-position divergence. Unlike the live teacher's, a sampled
    estimate is not clamped at 0 (a clamp would bias the mean). The teacher's argmax is the cached top
    id; NLL and top-1 accuracy need the student only.
    """
    import torch

    from sadcli.distill.objective import cache_target
    from sadcli.losses.sad_loss import compute_loss, loss_positions
    from sadcli.losses.sparse import SparseTeacher
    from sadcli.losses.teachers import as_head
    from sadcli.losses.transforms import logit_transform_for

    V = src.cache.manifest.get("vocab_size")
    for m in models:
        mv = int(m.model.get_output_embeddings().weight.shape[0])
        if mv != V:
            raise InputError(f"{m.label}: its vocabulary has {mv} tokens, the teacher cache's {V}",
                             hint="fidelity from a cache needs a student with the teacher's tokenizer")
    stats: dict[str, dict[str, SpanStats]] = {m.label: {} for m in models}
    heads = {m.label: (as_head(m.model.get_output_embeddings()), logit_transform_for(m.model)) for m in models}
    for e, ex in enumerate(src.examples):
        ids = torch.tensor([ex.input_ids])
        labels = torch.tensor([ex.token_labels])
        pos = loss_positions(src.config, labels, ids)
        rows = src.cache.rows_for([e])
        if len(rows) != len(pos):
            raise InputError(f"the teacher cache {src.cache.path} holds {len(rows)} rows for example {e}, the data "
                             f"gives {len(pos)} supervised positions", hint="rebuild the cache from this data")
        keep = ((pos.kinds == REASON) | (pos.kinds == ACT)).nonzero().squeeze(-1)
        if not len(pos) or not keep.numel():
            continue
        t_ids, t_lp, t_tail, offset = cache_target(rows, "forward")
        t_top = rows.ids[:, 0]
        for m in models:
            dev = _dev(m.model)
            head, transform = heads[m.label]
            with torch.no_grad():
                h = m.model.get_decoder()(input_ids=ids.to(dev), use_cache=False).last_hidden_state  # [1, T, H]
                teacher = SparseTeacher(ids=t_ids.to(dev), logprobs=t_lp.to(dev), tail_logprob=t_tail.to(dev))
                out = compute_loss(src.config, input_ids=ids.to(dev), token_labels=labels.to(dev), student_hidden=h,
                                   lm_head=m.model.get_output_embeddings(), teacher=teacher,
                                   student_transform=transform)
                kl = out.per_token_div.float().cpu()
                if offset is not None:
                    kl = kl + offset.float()
                hk = pos.gather(h)[keep.to(dev)]                                                    # [n, H]
                for a in range(0, hk.shape[0], chunk):
                    z = head(hk[a:a + chunk])
                    if transform is not None:
                        z = transform(z)
                    ls = torch.log_softmax(z.float(), -1).cpu()                                    # [c, V]
                    sel = keep[a:a + chunk]
                    accumulate(kl[sel], ls, t_top[sel], pos.targets[sel], pos.kinds[sel], stats[m.label])
    return stats
