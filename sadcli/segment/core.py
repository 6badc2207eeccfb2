"""``segment_record``: detect a record's trajectory format, recover its steps, linearize.

Formats (``--format``): ``structured`` (schema-v1 ``steps``), ``messages`` (OpenAI), ``sharegpt``
(``conversations``), ``react`` (``Thought:``/``Action:``/``Observation:`` text, alpaca records included),
``alfworld`` (``> think:`` transcripts), ``tags`` (``<think>``/``<action>``), ``webshop`` (ReAct text whose
reasoning is written as ``think[...]`` actions), ``template`` (user regexes). ``auto`` picks per record.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from sadcli import SCHEMA_VERSION
from sadcli.errors import SegmentError
from sadcli.schema import validate_structured
from sadcli.segment.alfworld import alfworld_parts, looks_like_alfworld
from sadcli.segment.linearize import MARKERS, Markers, linearize
from sadcli.segment.messages import parse_messages
from sadcli.segment.react_text import MARKER_RE, has_markers, react_parts
from sadcli.segment.steps import Parsed, StepBuilder
from sadcli.segment.tags import looks_like_tags, tag_parts
from sadcli.segment.template import Template

FORMATS = ("auto", "structured", "messages", "sharegpt", "react", "alfworld", "tags", "webshop", "template")
TEXT_FIELDS = ("trajectory", "text", "output", "completion", "response")
TASK_FIELDS = ("task", "question", "instruction", "goal", "prompt")


def _text_field(rec: dict, prefer: str | None = None) -> tuple[str, str] | None:
    fields = (prefer,) if prefer else TEXT_FIELDS
    for f in fields:
        v = rec.get(f)
        if isinstance(v, str) and v.strip():
            return f, v
    for f in fields:  # an empty trajectory is still a trajectory (it gets a warning)
        if isinstance(rec.get(f), str):
            return f, rec[f]
    return None


def _task_of(rec: dict, text_field: str, prefer: str | None = None) -> str | None:
    if prefer:
        v = rec.get(prefer)
        return v if isinstance(v, str) and v.strip() else None
    if text_field == "output" and isinstance(rec.get("instruction"), str):  # alpaca
        task = rec["instruction"]
        inp = rec.get("input")
        if isinstance(inp, str) and inp.strip():
            task = f"{task}\n{inp}"
        return task
    if text_field == "completion" and isinstance(rec.get("prompt"), str):
        return rec["prompt"]
    for f in TASK_FIELDS:
        if f != text_field and isinstance(rec.get(f), str) and rec[f].strip():
            return rec[f]
    return None


def _text_format(text: str) -> str | None:
    if looks_like_alfworld(text):
        return "alfworld"
    if looks_like_tags(text):
        return "tags"
    if has_markers(text):
        return "react"
    return None


def detect_format(rec: dict) -> str | None:
    """The format ``auto`` would pick for ``rec``, or None."""
    if isinstance(rec.get("steps"), list):
        return "structured"
    if isinstance(rec.get("messages"), list):
        return "messages"
    if isinstance(rec.get("conversations"), list):
        return "sharegpt"
    tf = _text_field(rec)
    if tf is not None:
        return _text_format(tf[1]) or "react"
    return None


def _parse_text(text: str, fmt: str, task: str | None) -> Parsed:
    if fmt == "alfworld":
        parts = alfworld_parts(text)
    elif fmt == "tags":
        parts = tag_parts(text)
    else:
        parts = react_parts(text)
    b = StepBuilder().extend(parts)
    parsed = b.finish(task=task)
    if not parsed.steps and not MARKER_RE.search(text):
        parsed.warnings.append({"code": "no-markers",
                                "message": "no reasoning/action/observation markers found: the whole text is prompt",
                                })
    return parsed


def segment_record(rec: dict, *, fmt: str = "auto", markers: str | Markers = "paper",
                   template: Template | None = None, default_id: str | None = None) -> dict:
    """Return a new record: ``rec`` plus ``schema``, ``task``, ``steps``, ``text``, ``spans``, ``format``.

    Raises :class:`SegmentError` (an :class:`~sadcli.errors.InputError`) when the format cannot be
    recognized or a field has the wrong type. Ambiguities go to ``segment_warnings``.
    """
    if fmt == "auto":
        if template is not None:
            fmt = "template"
        else:
            detected = detect_format(rec)
            if detected is None:
                keys = ", ".join(sorted(rec)[:8]) or "none"
                raise SegmentError(
                    f"no recognizable trajectory format (fields: {keys})",
                    hint="expected steps, messages, conversations, instruction+output, or a text field with "
                         "Thought:/Action:/Observation: markers; force one with --format or give --template")
            fmt = detected
    system = rec.get("system") if isinstance(rec.get("system"), str) else None
    if fmt == "structured":
        if not isinstance(rec.get("steps"), list):
            raise SegmentError("format 'structured' needs a 'steps' list", hint="try --format auto")
        validate_structured(rec)
        steps = [{k: v for k, v in st.items()} for st in rec["steps"]]
        warnings = []
        for i, st in enumerate(steps):
            for k in ("reason", "action", "observation"):
                st.setdefault(k, None)
            if st["action"] is None and st["reason"] is not None:
                warnings.append({"code": "no-action", "message": f"step {i}: reasoning with no action", "step": i})
            elif st["reason"] is None and st["action"] is not None:
                warnings.append({"code": "no-reason", "message": f"step {i}: action with no reasoning", "step": i})
        parsed = Parsed(task=rec.get("task"), steps=steps, warnings=warnings, system=system)
    elif fmt in ("messages", "sharegpt"):
        field = "messages" if fmt == "messages" else "conversations"
        if field not in rec:
            raise SegmentError(f"format '{fmt}' needs a '{field}' list", hint="try --format auto")
        parsed = parse_messages(rec[field], field)
        if system is None:
            system = parsed.system
        if isinstance(rec.get("task"), str) and parsed.task is None:
            parsed.task = rec["task"]
    elif fmt == "template":
        if template is None:
            raise SegmentError("format 'template' needs --template FILE")
        tf = _text_field(rec, template.field)
        if tf is None:
            raise SegmentError(f"no text in field '{template.field or '/'.join(TEXT_FIELDS)}' for the template",
                               hint="set 'field' in the template file")
        parsed = StepBuilder().extend(template.parts(tf[1])).finish(task=_task_of(rec, tf[0], template.task_field))
    else:
        tf = _text_field(rec)
        if tf is None:
            raise SegmentError(f"format '{fmt}' needs a text field ({', '.join(TEXT_FIELDS)})",
                               hint="try --format auto")
        text_fmt = "react" if fmt == "webshop" else fmt
        parsed = _parse_text(tf[1], text_fmt, _task_of(rec, tf[0]))
    if fmt == "react" and parsed.think_actions:
        fmt = "webshop"
    text, spans = linearize(parsed.task, parsed.steps, system, markers)
    out = dict(rec)
    out["schema"] = SCHEMA_VERSION
    if "id" not in out and default_id is not None:
        out["id"] = default_id
    if parsed.task is not None:
        out["task"] = parsed.task
    if system is not None and "system" not in out:
        out["system"] = system
    out["steps"] = parsed.steps
    out["text"] = text
    out["spans"] = spans
    out["format"] = fmt
    out["markers"] = MARKERS[markers].name if isinstance(markers, str) else markers.name
    if parsed.warnings:
        out["segment_warnings"] = parsed.warnings
    else:
        out.pop("segment_warnings", None)
    return out


@functools.lru_cache(maxsize=64)
def _stem(file: str) -> str:
    return "stdin" if file == "<stdin>" else os.path.splitext(os.path.basename(file))[0]


def default_id_for(file: str, line: Any) -> str:
    stem = _stem(file)
    if isinstance(line, str) and "(" in line and line.endswith(")"):
        return f"{stem}:{line[line.index('(') + 1:-1]}"
    return f"{stem}:{str(line).replace('item ', '')}"
