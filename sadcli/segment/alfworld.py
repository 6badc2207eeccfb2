"""ALFWorld ReAct transcripts: ``> think: ...`` lines are reasoning (the ``OK.`` reply is dropped),
other ``> ...`` lines are actions, every other line is an observation (the lines before the first
``>`` are the task)."""

from __future__ import annotations

import re

from sadcli.segment.steps import Part

_CMD = re.compile(r"^>[ \t]?(.*)$")
_THINK = re.compile(r"^think\s*:\s?(.*)$", re.I | re.S)


def looks_like_alfworld(text: str) -> bool:
    n = 0
    for line in text.splitlines():
        if line.startswith(">"):
            n += 1
            if n >= 2:
                return True
    return False


def alfworld_parts(text: str) -> list[Part]:
    parts: list[Part] = []
    buf: list[str] = []
    seen_cmd = False

    def flush_buf() -> None:
        if buf:
            chunk = "\n".join(buf).strip()
            if chunk:
                parts.append(Part("obs" if seen_cmd else "text", chunk))
            buf.clear()

    for line in text.splitlines():
        m = _CMD.match(line)
        if m:
            flush_buf()
            seen_cmd = True
            cmd = m.group(1).strip()
            t = _THINK.match(cmd)
            parts.append(Part("reason", t.group(1).strip()) if t else Part("act", cmd))
        else:
            buf.append(line)
    flush_buf()
    return parts
