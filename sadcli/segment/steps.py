"""Turning a parsed sequence of parts into schema-v1 steps.

Every format parser (ReAct text, messages, ALFWorld transcripts, tags, user templates) produces a list
of :class:`Part` — ``(kind, text)`` with kind in ``task``, ``reason``, ``act``, ``obs``, ``text`` (outside
any marker), ``context`` (given to the agent but not produced by it, e.g. an unsupervised assistant turn)
— and :class:`StepBuilder` folds them into steps with one set of rules, so all formats agree:

- a reasoning part opens a step; consecutive reasoning parts are joined with a newline;
- an action closes the reasoning of its step; a second action (or an action after an observation)
  opens a new step, with a ``no-reason`` warning when it has no reasoning;
- observations attach to the current step (consecutive ones joined);
- ``think[...]`` actions (WebShop) and ``> think:`` lines (ALFWorld) are reasoning, and the
  environment's bare ``OK.`` acknowledgement of them is not an observation (it is dropped);
- text outside any marker before the first step is the task; after it, it is an observation of the
  current step when that step acted, else context of the next step — with a ``outside-marker`` warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Part:
    kind: str   # task | reason | act | obs | text | context
    text: str
    where: Any = ""  # "turn 3", or ("messages", 3) formatted lazily by where_str, for warnings


_THINK_ACTION = re.compile(r"\s*think\s*\[(.*)\]\s*", re.I | re.S)
_OK = {"ok.", "ok", "ok!"}


@dataclass
class Parsed:
    task: str | None
    steps: list[dict]
    warnings: list[dict] = field(default_factory=list)
    system: str | None = None
    think_actions: int = 0  # how many think[...] actions were turned into reasoning


class StepBuilder:
    def __init__(self) -> None:
        self.task_parts: list[str] = []
        self.steps: list[dict] = []
        self.warnings: list[dict] = []
        self.cur: dict | None = None
        self.pending_context: list[str] = []
        self.think_actions = 0
        self._last_was_think = False

    # -- helpers ----------------------------------------------------------------------------
    def warn(self, code: str, message: str, step: int | None = None) -> None:
        w = {"code": code, "message": message}
        if step is not None:
            w["step"] = step
        self.warnings.append(w)

    def _index(self) -> int:
        return len(self.steps)

    def _new(self) -> dict:
        step: dict = {"reason": None, "action": None, "observation": None}
        if self.pending_context:
            step["context"] = "\n".join(self.pending_context)
            self.pending_context = []
        self.cur = step
        return step

    def flush(self) -> None:
        cur = self.cur
        if cur is None:
            return
        i = self._index()
        if cur["action"] is None:
            if cur["reason"] is not None:
                self.warn("no-action", f"step {i}: reasoning with no action", i)
        elif cur["reason"] is None:
            self.warn("no-reason", f"step {i}: action with no reasoning", i)
        self.steps.append(cur)
        self.cur = None

    # -- the rules --------------------------------------------------------------------------
    def add(self, part: Part) -> None:
        kind, text = part.kind, part.text
        if kind == "act" and text[:8].lstrip()[:5].lower() == "think":
            m = _THINK_ACTION.fullmatch(text)
            if m:
                self.think_actions += 1
                kind, text = "reason", m.group(1).strip()
        if kind == "reason":
            self._last_was_think = True
            cur = self.cur
            if cur is not None and (cur["action"] is not None or cur["observation"] is not None):
                self.flush()
                cur = None
            if cur is None:
                cur = self._new()
            if not text.strip():
                self.warn("empty-span", f"step {self._index()}: empty reasoning{_at(part)}", self._index())
                return
            cur["reason"] = text if cur["reason"] is None else cur["reason"] + "\n" + text
            return
        if kind == "act":
            self._last_was_think = False
            cur = self.cur
            if cur is not None and (cur["action"] is not None or cur["observation"] is not None):
                self.flush()
                cur = None
            if cur is None:
                cur = self._new()
            if not text.strip():
                self.warn("empty-span", f"step {self._index()}: empty action{_at(part)}", self._index())
            cur["action"] = text
            return
        if kind == "obs":
            cur = self.cur
            if cur is None and not self.steps:
                # an observation before the agent did anything is part of the task
                self.task_parts.append(text)
                return
            if cur is not None and cur["action"] is None and text.strip().lower() in _OK:
                return  # acknowledgement of a think action, not an observation
            if cur is None:
                cur = self.steps.pop()  # reopen the last step
                self.cur = cur
            if cur["action"] is None:
                self.warn("obs-without-action",
                          f"step {self._index()}: observation with no action{_at(part)}", self._index())
            cur["observation"] = text if cur["observation"] is None else cur["observation"] + "\n" + text
            return
        if kind == "task":
            if self.cur is None and not self.steps and not self.pending_context:
                self.task_parts.append(text)
            else:
                self.flush()
                self.pending_context.append(text)
            return
        if kind == "context":
            if self.cur is None and not self.steps:
                self.task_parts.append(text)
            else:
                self.flush()
                self.pending_context.append(text)
            return
        if kind == "text":
            if not text.strip():
                return
            if self.cur is None and not self.steps and not self.pending_context:
                self.task_parts.append(text)
                return
            cur = self.cur
            self.warn("outside-marker", f"step {self._index()}: text outside any marker{_at(part)}: "
                      f"{_preview(text)}", self._index())
            if cur is not None and cur["action"] is not None:
                cur["observation"] = text if cur["observation"] is None else cur["observation"] + "\n" + text
            else:
                self.flush()
                self.pending_context.append(text)
            return
        raise ValueError(f"unknown part kind {kind!r}")

    def extend(self, parts: Iterable[Part]) -> StepBuilder:
        for p in parts:
            self.add(p)
        return self

    def finish(self, task: str | None = None, system: str | None = None) -> Parsed:
        self.flush()
        if self.pending_context:
            # trailing context (e.g. a final question with no answer): keep it as a step with no action
            self.steps.append({"reason": None, "action": None, "observation": None,
                               "context": "\n".join(self.pending_context)})
            self.warn("trailing-context", f"step {len(self.steps) - 1}: context after the last action",
                      len(self.steps) - 1)
            self.pending_context = []
        if task is None:
            task = "\n".join(self.task_parts) if self.task_parts else None
        elif self.task_parts:
            task = task + "\n" + "\n".join(self.task_parts)
        return Parsed(task=task, steps=self.steps, warnings=self.warnings, system=system,
                      think_actions=self.think_actions)


def where_str(where: Any) -> str:
    if isinstance(where, tuple):
        return f"{where[0]}[{where[1]}]"
    return str(where)


def _at(part: Part) -> str:
    return f" ({where_str(part.where)})" if part.where else ""


def _preview(text: str, n: int = 40) -> str:
    t = " ".join(text.split())
    return repr(t if len(t) <= n else t[: n - 1] + "…")
