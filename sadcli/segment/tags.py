"""Tag style, as in current RL agent stacks: ``<think>...</think>`` is reasoning; ``<action>``,
``<tool_call>``, ``<search>``, ``<answer>`` are actions; ``<observation>``, ``<tool_response>``,
``<information>``, ``<obs>``, ``<result>`` are observations. Text outside tags before the first
tag is the task; later untagged text follows the usual outside-marker rule."""

from __future__ import annotations

import re

from sadcli.segment.steps import Part

_KIND = {
    "think": "reason", "thinking": "reason", "thought": "reason", "reasoning": "reason",
    "action": "act", "tool_call": "act", "search": "act", "answer": "act", "act": "act",
    "observation": "obs", "tool_response": "obs", "information": "obs", "obs": "obs", "result": "obs",
}
_TAG_RE = re.compile(r"<(?P<tag>" + "|".join(sorted(_KIND, key=len, reverse=True)) + r")>(?P<body>.*?)</(?P=tag)>",
                     re.I | re.S)
_OPEN_RE = re.compile(r"<(think|action)>", re.I)


def looks_like_tags(text: str) -> bool:
    return bool(_OPEN_RE.search(text)) and bool(_TAG_RE.search(text))


def tag_parts(text: str, where: str = "") -> list[Part]:
    parts: list[Part] = []
    pos = 0
    for m in _TAG_RE.finditer(text):
        between = text[pos: m.start()]
        if between.strip():
            parts.append(Part("text", between.strip(), where))
        tag = m.group("tag").lower()
        body = m.group("body").strip()
        kind = _KIND[tag]
        if tag == "search":
            body = f"search[{body}]"
        elif tag == "answer":
            body = f"answer[{body}]"
        parts.append(Part(kind, body, where))
        pos = m.end()
    tail = text[pos:]
    if tail.strip():
        parts.append(Part("text", tail.strip(), where))
    return parts
