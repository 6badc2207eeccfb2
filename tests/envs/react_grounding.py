"""Grounding assertions for expert reasoning: every entity a thought names was shown before it.

An "entity" here is what a reader could check: a quoted string, a capitalized word that does not
start a sentence (names, titles, product ids), a number or a price. Each must occur (case-insensitively)
in the task text or in an observation that came before the thought. Template words are lower case or
start a sentence, so they never count.
"""

from __future__ import annotations

import re

_QUOTED = re.compile(r"(?:^|(?<=\s))(?:\"([^\"]{3,}?)\"|'([^']{3,}?)')(?=[\s.,;:!?)]|$)")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_ID = re.compile(r"\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{6,}\b")  # product ids: counted anywhere
_SENT_START = re.compile(r"(?:^|[.!?:][\"')]*\s+|\"\s*)$")


def entities(reason: str) -> list[str]:
    out = [(m.group(1) or m.group(2)).strip(" .…") for m in _QUOTED.finditer(reason)]
    out += _NUMBER.findall(reason) + _ID.findall(reason)
    for m in re.finditer(r"[A-Za-z0-9][\w'&.\-]*", reason):
        w = m.group(0).rstrip(".'")
        if not w or not w[0].isupper() or w == "I":
            continue
        if _SENT_START.search(reason[: m.start()]):
            continue
        out.append(w)
    return [e for e in out if e]


def ungrounded(record: dict) -> list[tuple[int, str]]:
    """``[(step, entity)]`` for every entity a step's thought names that nothing before it showed."""
    seen = record["task"].lower()
    bad = []
    for k, step in enumerate(record["steps"]):
        reason = step.get("reason") or ""
        for e in entities(reason):
            if e.lower().rstrip(" .") not in seen:
                bad.append((k, e))
        seen += "\n" + (step.get("observation") or "").lower()
    return bad
