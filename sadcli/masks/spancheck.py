"""Do the spans hold what they claim? Each span's text against the ``steps`` it was built from.

``sad segment`` writes ``text`` by linearizing ``steps`` (:mod:`sadcli.segment.linearize`): a reason
span is exactly ``marker + steps[i].reason + "\\n"``, an act span ``marker + steps[i].action + "\\n"``,
an obs span ``marker + steps[i].observation + "\\n"``, a mid-trajectory prompt span
``steps[i].context + "\\n"``. Spans that partition ``text`` but carry the wrong kind (reason/act
swapped), the wrong step, or a shifted boundary pass every token-level check and would train L_CoT on
action tokens; this check catches them with plain string comparisons (no tokenizer, linear time).

Two checks, reported by ``sad mask-check`` and enforced by ``sad distill`` at load time:

- ``span-step``: the span's ``step`` is not an index of ``steps``;
- ``span-text``: the span's text is not the marker plus the step field it claims to hold.

The leading prompt span (``step`` -1: system text and task) is not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sadcli.segment.linearize import MARKERS

SPAN_CHECKS: dict[str, str] = {
    "span-step": "span's step is not an existing step",
    "span-text": "span text is not its marker + the step field it claims",
}
# span kind -> the step field it holds, and the Markers attribute that opens it
FIELDS = {"reason": ("reason", "reason"), "act": ("action", "act"), "obs": ("observation", "obs")}


@dataclass
class SpanProblem:
    span: int            # index in ``spans``
    kind: str
    step: Any
    check: str           # a key of SPAN_CHECKS
    detail: str

    def message(self) -> str:
        return f"span {self.span} ({self.kind}, step {self.step}) {self.detail}"


def has_steps(rec: dict) -> bool:
    return isinstance(rec.get("steps"), list)


def check_spans(rec: dict, *, limit: int | None = None) -> list[SpanProblem]:
    """Every span whose text is not what its kind and step say (see the module docstring).

    ``rec`` must be segmented (``text`` + ``spans``, already validated as a partition) and carry
    ``steps``; ``limit`` stops after that many problems (``1`` for a fail-fast load).
    """
    text, spans, steps = rec["text"], rec["spans"], rec.get("steps")
    if not isinstance(steps, list):
        return []
    style = rec.get("markers")
    candidates = [MARKERS[style]] if style in MARKERS else list(MARKERS.values())
    out: list[SpanProblem] = []
    for i, sp in enumerate(spans):
        if limit is not None and len(out) >= limit:
            break
        kind, step = sp.get("kind"), sp.get("step", -1)
        if kind == "prompt" and step == -1:
            continue
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < len(steps):
            out.append(SpanProblem(i, kind, step, "span-step",
                                   f"claims a step that does not exist (the record has {len(steps)} steps)"))
            continue
        st = steps[step] if isinstance(steps[step], dict) else {}
        got = text[sp["start"]:sp["end"]]
        if kind == "prompt":
            ctx = st.get("context")
            if not isinstance(ctx, str) or got != ctx + "\n":
                out.append(SpanProblem(i, kind, step, "span-text", f"does not hold steps[{step}].context"))
            continue
        field, attr = FIELDS[kind]
        value = st.get(field)
        if not isinstance(value, str) or not any(got == getattr(m, attr) + value + "\n" for m in candidates):
            out.append(SpanProblem(i, kind, step, "span-text", f"does not hold steps[{step}].{field}"))
    return out


HINT = "re-run sad segment instead of editing spans by hand"
NO_STEPS_HINT = ("re-run sad segment (it writes steps), or pass --trust-spans to train on spans that cannot "
                 "be checked")
