"""Schema v1 of the trajectory JSONL contract, and its validation at every stage's input.

Structured form (``sad collect`` writes it)::

    {"schema": 1, "id": str, "task": str,
     "steps": [{"reason": str|null, "action": str|null, "observation": str|null, "context"?: str}, ...],
     "system"?: str, "env"?: str, "success"?: bool, "reward"?: number, "teacher"?: str, "meta"?: object}

Segmented form (``sad segment`` adds)::

    "text": str, "spans": [{"kind": "prompt"|"reason"|"act"|"obs", "start": int, "end": int, "step": int}],
    "format": str, "segment_warnings"?: [{"code", "message", "step"?}]

Spans are character offsets that partition ``text`` exactly: sorted, contiguous, non-empty, from 0 to
``len(text)`` — every character in exactly one span (the paper's m_r + m_a + m_o = 1).
"""

from __future__ import annotations

from sadcli.errors import InputError

SPAN_KINDS = ("prompt", "reason", "act", "obs")


def _type_name(v: object) -> str:
    return "null" if v is None else type(v).__name__


def validate_structured(rec: dict) -> None:
    """Check the structured fields (``task``, ``steps``); raise :class:`InputError` naming the field."""
    task = rec.get("task")
    if task is not None and not isinstance(task, str):
        raise InputError(f"field 'task' must be a string, got {_type_name(task)}")
    system = rec.get("system")
    if system is not None and not isinstance(system, str):
        raise InputError(f"field 'system' must be a string, got {_type_name(system)}")
    steps = rec.get("steps")
    if not isinstance(steps, list):
        raise InputError(f"field 'steps' must be a list, got {_type_name(steps)}")
    for i, st in enumerate(steps):
        if not isinstance(st, dict):
            raise InputError(f"field 'steps[{i}]' must be an object, got {_type_name(st)}")
        for key in ("reason", "action", "observation", "context"):
            v = st.get(key)
            if v is not None and not isinstance(v, str):
                raise InputError(f"field 'steps[{i}].{key}' must be a string or null, got {_type_name(v)}")


def validate_segmented(rec: dict) -> None:
    """Check ``text`` + ``spans`` partition the text exactly; raise :class:`InputError` otherwise."""
    if "spans" not in rec or "text" not in rec:
        missing = "spans" if "spans" not in rec else "text"
        raise InputError(f"record has no '{missing}': it is not segmented",
                         hint="run `sad segment` first, e.g. `sad segment in.jsonl | sad mask-check -`")
    text, spans = rec["text"], rec["spans"]
    if not isinstance(text, str):
        raise InputError(f"field 'text' must be a string, got {_type_name(text)}")
    if not isinstance(spans, list):
        raise InputError(f"field 'spans' must be a list, got {_type_name(spans)}")
    pos = 0
    for i, sp in enumerate(spans):
        if not isinstance(sp, dict):
            raise InputError(f"field 'spans[{i}]' must be an object, got {_type_name(sp)}")
        kind, start, end = sp.get("kind"), sp.get("start"), sp.get("end")
        if kind not in SPAN_KINDS:
            raise InputError(f"field 'spans[{i}].kind' is {kind!r}; expected one of {', '.join(SPAN_KINDS)}")
        if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool):
            raise InputError(f"field 'spans[{i}]' needs integer start and end")
        if start != pos:
            what = "overlaps the previous span" if start < pos else f"leaves characters {pos}..{start} uncovered"
            raise InputError(f"spans do not partition the text: spans[{i}] starts at {start} and {what}",
                             hint="re-run `sad segment` instead of editing spans by hand")
        if end <= start:
            raise InputError(f"spans do not partition the text: spans[{i}] is empty or reversed ({start}..{end})",
                             hint="re-run `sad segment` instead of editing spans by hand")
        pos = end
    if pos != len(text):
        raise InputError(f"spans do not partition the text: they end at {pos} but the text has {len(text)} characters",
                         hint="re-run `sad segment` instead of editing spans by hand")
