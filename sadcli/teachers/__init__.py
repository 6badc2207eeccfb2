"""Teacher policies for ``sad collect`` (and, later, students for ``sad eval``).

``make_teacher(spec, **options)`` turns a ``--teacher`` spec into a policy:

- ``expert`` — the environment's expert/gold actions with per-environment reasoning templates
  (:mod:`sadcli.teachers.expert`);
- ``hf:<model spec>`` — a local transformers causal LM, batched over episodes (:mod:`sadcli.teachers.hf`);
  a ``sad distill`` output folder (with ``sad_config.json``) is prompted in the format it was trained on;
- ``openai:<base-url>#<model>`` — any OpenAI-compatible endpoint (:mod:`sadcli.teachers.openai`);
- ``expert+rationalize:<model spec>`` — expert actions, model-written reasoning.

A policy is any object with ``name`` and ``act(states) -> list[Decision]`` (see :mod:`sadcli.agent.loop`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from sadcli.errors import InputError

FORMS = "expert, hf:<model spec>, openai:<base-url>#<model>, expert+rationalize:<model spec>"


def _known(cls, options: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(options) - names)
    if bad:
        raise InputError(f"unknown teacher option(s) {', '.join(bad)}",
                         hint=f"{cls.__name__} accepts {', '.join(sorted(names))}")
    return options


def make_teacher(spec: str, **options: Any):
    """Build the policy named by ``spec``; ``options`` are the teacher's own settings (``--teacher-opt``)."""
    spec = spec.strip()
    if spec == "expert":
        return _expert(options)
    if spec.startswith("hf:"):
        from sadcli.sadformat import format_from_config, read_sad_config
        from sadcli.teachers.hf import FormatTeacher, GenOptions, HFTeacher, _opts

        path = spec[3:]
        opts = _opts(_known(GenOptions, options))
        cfg = read_sad_config(path) if os.path.isdir(path) else None
        if cfg is not None:  # a `sad distill` output: its own training format, as `sad eval` prompts it
            return FormatTeacher(path, format_from_config(cfg), opts)
        return HFTeacher(path, opts)
    if spec.startswith("expert+rationalize:"):
        from sadcli.teachers.hf import GenOptions, RationalizeTeacher, _opts

        return RationalizeTeacher(spec[len("expert+rationalize:"):], _opts(_known(GenOptions, options)))
    if spec.startswith("openai:"):
        from sadcli.teachers.openai import OpenAIOptions, OpenAITeacher

        return OpenAITeacher(spec, OpenAIOptions(**_known(OpenAIOptions, options)))
    raise InputError(f"unknown teacher {spec!r}", hint=f"use {FORMS}")


def _expert(options: dict):
    from sadcli.teachers.expert import ExpertTeacher

    bad = sorted(set(options) - {"reasoning"})
    if bad:
        raise InputError(f"unknown teacher option(s) {', '.join(bad)}", hint="the expert accepts reasoning=false")
    return ExpertTeacher(**options)
