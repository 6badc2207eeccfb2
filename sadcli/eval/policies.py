"""``--model [label=]SPEC`` to a policy for rollouts (and to a model for teacher-forced fidelity).

Specs:

- ``DIR`` holding ``sad_config.json`` (a ``sad distill`` output): the student, prompted in the format it
  was distilled with (render text/chat and markers; :mod:`sadcli.eval.prompting`);
- ``init:DIR``: the same layer-cut student *before* distillation (the teacher layers listed in
  ``DIR/sad_config.json``, copied again from the teacher), in the same format;
- ``teacher:DIR``: the teacher named in ``DIR/sad_config.json``, in the same format;
- any other model spec (local Hugging Face dir, hub id, ``smollm2-135m``): the ReAct prompt of the
  environment (instruction, few-shot examples, ``Thought:/Action:``), as ``collect --teacher hf:``;
- ``expert``: the environment's expert (an upper bound and a check of the harness);
- ``openai:<base-url>#<model>``: an OpenAI-compatible endpoint.

Model policies decode all active episodes in one batch with per-episode KV caches, continuously: a row
that wrote its action leaves the batch and its episode's next prompt joins it while the others decode
(:mod:`sadcli.agent.scheduler`, :mod:`sadcli.teachers.continuous`; the implementation ``collect --teacher
hf:`` uses).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from sadcli.agent.loop import Decision, EpisodeState
from sadcli.errors import InputError
from sadcli.sadformat import SadFormat, format_from_config, read_sad_config

_LABEL = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass
class ModelRef:
    """A parsed ``--model`` argument."""

    label: str
    spec: str
    kind: str                     # student | init | teacher | hf | expert | openai
    path: str | None = None       # what to load (model spec)
    fmt: SadFormat | None = None  # None: the environment's ReAct prompt
    config: dict | None = field(default=None, repr=False)

    @property
    def is_model(self) -> bool:
        return self.kind in ("student", "init", "teacher", "hf")


def parse_model(arg: str) -> ModelRef:
    """``[label=]SPEC`` -> :class:`ModelRef` (files are checked, models not loaded yet)."""
    arg = arg.strip()
    label = None
    head, eq, rest = arg.partition("=")
    if eq and _LABEL.match(head) and rest:
        label, arg = head, rest.strip()
    if arg == "expert":
        return ModelRef(label or "expert", arg, "expert")
    if arg.startswith("openai:"):
        return ModelRef(label or arg.rpartition("#")[2] or "openai", arg, "openai")
    for prefix in ("init:", "teacher:"):
        if arg.startswith(prefix):
            d = arg[len(prefix):]
            cfg = _config_or_fail(d, arg)
            kind = prefix[:-1]
            teacher = (cfg.get("teacher") or {}).get("spec")
            if not teacher:
                raise InputError(f"{d}/sad_config.json names no teacher", hint="give the teacher's spec instead")
            if kind == "init" and (cfg.get("student") or {}).get("kind") != "layers":
                raise InputError(f"{arg}: the student in {d} was not cut from teacher layers "
                                 f"(student kind {(cfg.get('student') or {}).get('kind')!r})",
                                 hint="init: needs a student made with --student-layers")
            return ModelRef(label or f"{kind}:{os.path.basename(os.path.normpath(d))}", arg, kind,
                            teacher, format_from_config(cfg), cfg)
    cfg = read_sad_config(arg) if os.path.isdir(arg) else None
    name = label or os.path.basename(os.path.normpath(arg)) or arg
    if cfg is not None:
        return ModelRef(name, arg, "student", arg, format_from_config(cfg), cfg)
    return ModelRef(name, arg, "hf", arg)


def _config_or_fail(d: str, arg: str) -> dict:
    if not os.path.isdir(d):
        raise InputError(f"{arg}: no such folder {d!r}", hint="give a `sad distill` output folder")
    cfg = read_sad_config(d)
    if cfg is None:
        raise InputError(f"{arg}: {d} has no sad_config.json", hint="give a `sad distill` output folder")
    return cfg


def load_lm(ref: ModelRef, *, device: str | None = None, dtype: str | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a model ref (``init:`` rebuilds the layer-cut student)."""
    from sadcli.models.spec import load_model, load_tokenizer

    if ref.kind == "init":
        from sadcli.distill.students import student_from_teacher

        teacher = load_model(ref.path, dtype=dtype or "float32", device="cpu")
        layers = list((ref.config or {}).get("student", {}).get("teacher_layers") or [])
        model, _ = student_from_teacher(teacher, layers)
        del teacher
        if device:
            model = model.to(device)
        return model.eval(), load_tokenizer(ref.path)
    return load_model(ref.path, dtype=dtype, device=device), load_tokenizer(ref.path)


@dataclass
class EvalGen:
    """Generation settings of ``sad eval`` (greedy by default)."""

    max_new_tokens: int = 96
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 0
    device: str | None = None
    dtype: str | None = None
    examples: bool = True         # the environment's few-shot examples (ReAct prompt only)
    continuous: bool = True       # continuous batching (sadcli.agent.scheduler); False: rounds


class SadPolicy:
    """A model prompted in its distillation format (:class:`SadFormat`), batched over episodes: the
    :class:`sadcli.teachers.hf.FormatTeacher` that ``collect --teacher hf:DIR`` uses, on a model loaded
    here (``init:`` rebuilds the layer-cut student)."""

    def __init__(self, ref: ModelRef, gen: EvalGen, seed: int = 0):
        from sadcli.teachers.hf import FormatTeacher, GenOptions, HFGenerator

        assert ref.fmt is not None
        self.ref, self.fmt, self.name = ref, ref.fmt, ref.label
        model, tok = load_lm(ref, device=gen.device, dtype=gen.dtype)
        ctx = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
        opts = GenOptions(max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                          chat="yes" if self.fmt.render == "chat" else "no", max_prompt_tokens=ctx,
                          batch_size=gen.batch_size, device=gen.device, dtype=gen.dtype, seed=seed,
                          continuous=gen.continuous)
        self.gen = HFGenerator(ref.path or ref.spec, opts, model=model, tokenizer=tok)
        self.teacher = FormatTeacher(ref.path or ref.spec, self.fmt, opts, gen=self.gen, name=ref.label)

    def reseed(self, seed: int) -> None:
        self.gen._gen.manual_seed(seed)

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        return self.teacher.act(states)

    def stream(self):
        return self.teacher.stream()


class ReactPolicy:
    """A model without a distillation format: the environment's ReAct prompt (``collect --teacher hf:``)."""

    def __init__(self, ref: ModelRef, gen: EvalGen, seed: int = 0):
        from sadcli.teachers.hf import GenOptions, HFTeacher

        opts = GenOptions(max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                          examples=gen.examples, batch_size=gen.batch_size, device=gen.device,
                          dtype=gen.dtype, seed=seed, continuous=gen.continuous)
        self.teacher = HFTeacher(ref.path or ref.spec, opts)
        self.gen = self.teacher.gen
        self.name = ref.label

    def reseed(self, seed: int) -> None:
        self.gen._gen.manual_seed(seed)

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        return self.teacher.act(states)

    def stream(self):
        return self.teacher.stream()


class _Named:
    """A teacher policy under the ``--model`` label."""

    def __init__(self, policy: Any, name: str):
        self.policy, self.name = policy, name

    def reseed(self, seed: int) -> None:
        pass

    def act(self, states):
        return self.policy.act(states)


def make_policy(ref: ModelRef, gen: EvalGen, seed: int = 0):
    """The rollout policy of a ``--model``."""
    from sadcli.teachers import make_teacher

    if ref.kind == "expert":
        return _Named(make_teacher("expert"), ref.label)
    if ref.kind == "openai":
        return _Named(make_teacher(ref.spec, temperature=gen.temperature, max_tokens=gen.max_new_tokens), ref.label)
    if ref.fmt is not None:
        return SadPolicy(ref, gen, seed)
    return ReactPolicy(ref, gen, seed)
