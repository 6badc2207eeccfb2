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
    head = ""
    if system:
        head += system + "\n\n"
    if task:
        head += task + "\n"
    if head:
        pieces.append(head)
        pos = len(head)
        spans.append({"kind": "prompt", "start": 0, "end": pos, "step": -1})
    m_r, m_a, m_o = mk.reason, mk.act, mk.obs
    for i, st in enumerate(steps):
        ctx = st.get("context")
        if ctx:
            s = ctx + "\n"
            pieces.append(s)
            end = pos + len(s)
            spans.append({"kind": "prompt", "start": pos, "end": end, "step": i})
            pos = end
        value = st.get("reason")
        if value is not None:
            s = m_r + value + "\n"
            pieces.append(s)
            end = pos + len(s)
            spans.append({"kind": "reason", "start": pos, "end": end, "step": i})
            pos = end
        value = st.get("action")
        if value is not None:
            s = m_a + value + "\n"
            pieces.append(s)
            end = pos + len(s)
            spans.append({"kind": "act", "start": pos, "end": end, "step": i})
            pos = end
        value = st.get("observation")
        if value is not None:
            s = m_o + value + "\n"
            pieces.append(s)
            end = pos + len(s)
            spans.append({"kind": "obs", "start": pos, "end": end, "step": i})
            pos = end
    return "".join(pieces), spans
