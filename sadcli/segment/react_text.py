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


# the same marker, matched at the start of one line (lines are few; scanning them is much faster than a
# MULTILINE search over every character)
_LINE_RE = re.compile(MARKER_RE.pattern.lstrip("^"), re.I)
_FIRST_CHARS = frozenset("tTaAoOfFqQrR \t")


def _line_markers(text: str):
    """Yield ``(line_index, match)`` for each line that starts with a marker, and the lines."""
    lines = text.split("\n")
    found = []
    for i, line in enumerate(lines):
        if line[:1] in _FIRST_CHARS:
            m = _LINE_RE.match(line)
            if m is not None:
                found.append((i, m))
    return lines, found


def has_markers(text: str) -> bool:
    """True when ``text`` holds at least one reasoning or action marker."""
    _lines, found = _line_markers(text)
    return any(_kind(m.group("kw")) in ("reason", "act", "final") for _i, m in found)


_KIND_CACHE: dict[str, str] = {}


def _kind(kw: str) -> str:
    kind = _KIND_CACHE.get(kw)
    if kind is None:
        kind = _KEYWORDS[" ".join(kw.lower().split())]
        if len(_KIND_CACHE) < 4096:
            _KIND_CACHE[kw] = kind
    return kind


def react_parts(text: str, where: object = "") -> list[Part]:
    """Split ``text`` into parts at the markers; text before the first marker is kind ``text``."""
    parts: list[Part] = []
    lines, found = _line_markers(text)
    first = found[0][0] if found else len(lines)
    if first:
        head = "\n".join(lines[:first]).strip()
        if head:
            parts.append(Part("text", head, where))
    for j, (i, m) in enumerate(found):
        stop = found[j + 1][0] if j + 1 < len(found) else len(lines)
        kind = _kind(m.group("kw"))
        if kind == "task":  # keep "Question: ..." as written: it is prompt text
            content = "\n".join(lines[i:stop]).strip()
        elif stop == i + 1:
            content = lines[i][m.end():].strip()
        else:
            content = "\n".join([lines[i][m.end():], *lines[i + 1:stop]]).strip()
        if kind == "input":
            if parts and parts[-1].kind == "act":
                parts[-1] = Part("act", f"{parts[-1].text}\nAction Input: {content}", parts[-1].where)
                continue
            kind, content = "act", f"Action Input: {content}"
        elif kind == "final":
            kind, content = "act", f"Final Answer: {content}"
        parts.append(Part(kind, content, where))
    return parts


_OBS_PREFIX = re.compile(r"^\s*(?:observation|obs)[ \t]*(?:\d+)?[ \t]*:[ \t]?", re.I)


def strip_observation_marker(text: str) -> str:
    """``Observation 2: foo`` -> ``foo`` (for observation turns of chat formats)."""
    head = text[:16].lstrip()[:3].lower()
    if head == "obs":
        return _OBS_PREFIX.sub("", text, count=1).strip()
    return text.strip()
