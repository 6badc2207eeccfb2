"""Linearize schema-v1 steps into ``text`` + ``spans`` that partition it exactly.

Layout (``paper`` markers shown; ``native`` uses ``Thought: `` / ``Action: `` / ``Observation: ``)::

    <system>\\n\\n<task>\\n                prompt   (step -1)
    <context>\\n                         prompt   (step i, only when the step has context)
    [REASON] <reason>\\n                 reason   (step i)
    [ACT] <action>\\n                    act      (step i)
    [OBS] <observation>\\n               obs      (step i)

A marker belongs to the span it opens and the newline to the span it ends, so the student learns to
emit both the marker and the line break; every character is in exactly one span.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Markers:
    name: str
    reason: str
    act: str
    obs: str


MARKERS = {
    "paper": Markers("paper", "[REASON] ", "[ACT] ", "[OBS] "),
    "native": Markers("native", "Thought: ", "Action: ", "Observation: "),
}


def linearize(task: str | None, steps: list[dict], system: str | None = None,
              markers: Markers | str = "paper") -> tuple[str, list[dict]]:
    """Return ``(text, spans)``; spans are ``{"kind", "start", "end", "step"}`` character offsets."""
    mk = MARKERS[markers] if isinstance(markers, str) else markers
    pieces: list[str] = []
    spans: list[dict] = []
    pos = 0

    def emit(kind: str, s: str, step: int) -> None:
        nonlocal pos
        if not s:
            return
        pieces.append(s)
        end = pos + len(s)
        if spans and spans[-1]["kind"] == kind and spans[-1]["step"] == step:
            spans[-1]["end"] = end  # merge adjacent prompt pieces of one step
        else:
            spans.append({"kind": kind, "start": pos, "end": end, "step": step})
        pos = end

    head = ""
    if system:
        head += system + "\n\n"
    if task:
        head += task + "\n"
    emit("prompt", head, -1)
    for i, st in enumerate(steps):
        ctx = st.get("context")
        if ctx:
            emit("prompt", ctx + "\n", i)
        r, a, o = st.get("reason"), st.get("action"), st.get("observation")
        if r is not None:
            emit("reason", mk.reason + r + "\n", i)
        if a is not None:
            emit("act", mk.act + a + "\n", i)
        if o is not None:
            emit("obs", mk.obs + o + "\n", i)
    return "".join(pieces), spans
