"""ReAct text: ``Thought:`` / ``Action:`` / ``Observation:`` markers at line starts.

Accepted: any capitalization, numbered markers (``Thought 3:``), ``Think:``/``Act:`` (AgentInstruct),
``Reasoning:``, ``Obs:``, LangChain's ``Action Input:`` (folded into the action) and ``Final Answer:``
(an action), and ``Question:`` (a task; a later one starts a new episode as prompt context).
"""

from __future__ import annotations

import re

from sadcli.segment.steps import Part

_KEYWORDS = {
    "thought": "reason", "thoughts": "reason", "think": "reason", "reasoning": "reason",
    "action": "act", "act": "act",
    "action input": "input", "final answer": "final",
    "observation": "obs", "obs": "obs",
    "question": "task",
}
MARKER_RE = re.compile(
    r"^[ \t]*(?P<kw>thoughts?|think|reasoning|action[ \t]+input|action|act|observation|obs|final[ \t]+answer|question)"
    r"[ \t]*(?:\d+)?[ \t]*:[ \t]?",
    re.I | re.M,
)


def has_markers(text: str) -> bool:
    """True when ``text`` holds at least one reasoning or action marker."""
    for m in MARKER_RE.finditer(text):
        if _kind(m.group("kw")) in ("reason", "act", "final"):
            return True
    return False


_KIND_CACHE: dict[str, str] = {}


def _kind(kw: str) -> str:
    kind = _KIND_CACHE.get(kw)
    if kind is None:
        kind = _KEYWORDS[" ".join(kw.lower().split())]
        if len(_KIND_CACHE) < 4096:
            _KIND_CACHE[kw] = kind
    return kind


def react_parts(text: str, where: str = "") -> list[Part]:
    """Split ``text`` into parts at the markers; text before the first marker is kind ``text``."""
    parts: list[Part] = []
    matches = list(MARKER_RE.finditer(text))
    head = text[: matches[0].start()] if matches else text
    if head.strip():
        parts.append(Part("text", head.strip(), where))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        content = text[m.end(): end].strip()
        kind = _kind(m.group("kw"))
        if kind == "input":
            if parts and parts[-1].kind == "act":
                parts[-1] = Part("act", f"{parts[-1].text}\nAction Input: {content}", parts[-1].where)
                continue
            kind, content = "act", f"Action Input: {content}"
        elif kind == "final":
            kind, content = "act", f"Final Answer: {content}"
        elif kind == "task":  # keep "Question: ..." as written: it is prompt text
            content = text[m.start(): end].strip()
        parts.append(Part(kind, content, where))
    return parts


_OBS_PREFIX = re.compile(r"^\s*(?:observation|obs)[ \t]*(?:\d+)?[ \t]*:[ \t]?", re.I)


def strip_observation_marker(text: str) -> str:
    """``Observation 2: foo`` -> ``foo`` (for observation turns of chat formats)."""
    return _OBS_PREFIX.sub("", text, count=1).strip()
