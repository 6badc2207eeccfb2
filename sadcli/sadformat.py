"""The prompt format a distilled student was trained on, for rollouts and teacher-forced generation.

Used by ``sad eval`` (:mod:`sadcli.eval`) and by ``sad collect --teacher hf:DIR`` when ``DIR`` is a
``sad distill`` output (:class:`sadcli.teachers.hf.FormatTeacher`); it lives low in the package so that
both import it.

``sad distill`` trains on segmented text (``sad segment``): ``<system>\\n\\n<task>\\n`` then, per step,
``[REASON] ...\\n[ACT] ...\\n[OBS] ...\\n`` (``paper`` markers) or ``Thought:/Action:/Observation:``
(``native``), tokenized as that text (``render=text``) or as chat turns (``render=chat``: system, user
task, one assistant turn per step holding its reason and action lines with their markers, one user turn
per observation; see :mod:`sadcli.masks.render`). :class:`SadFormat` rebuilds exactly that context from
an episode's history and parses the model's continuation back into (reason, action).

In a rollout the prompt ends where the next step begins (after the last observation's line break, or
at the start of the assistant turn), so the model chooses to reason (``[REASON]``) or to act
(``[ACT]``) as it learned; generation stops at the end of the action line or at end-of-turn.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from sadcli.segment.linearize import MARKERS, Markers, linearize


@dataclass(frozen=True)
class SadFormat:
    render: str = "text"         # text | chat
    markers: Markers = MARKERS["paper"]

    @property
    def name(self) -> str:
        return f"sad-{self.render}-{self.markers.name}"

    # --- prompts ------------------------------------------------------------------------------
    def messages(self, system: str | None, task: str | None, steps: list[dict]) -> list[dict]:
        """The chat turns of :mod:`sadcli.masks.render` for a history (whitespace trimmed at turn edges)."""
        mk = self.markers
        msgs = []
        if system and system.strip():
            msgs.append({"role": "system", "content": system.strip()})
        msgs.append({"role": "user", "content": (task or "").strip()})
        for s in steps:
            body = ""
            if s.get("context"):
                msgs.append({"role": "user", "content": s["context"].strip()})
            if s.get("reason") is not None:
                body += f"{mk.reason}{s['reason']}\n"
            if s.get("action") is not None:
                body += f"{mk.act}{s['action']}"
            if body.strip():
                msgs.append({"role": "assistant", "content": body.strip()})
            if s.get("observation") is not None:
                msgs.append({"role": "user", "content": f"{mk.obs}{s['observation']}".strip()})
        return msgs

    def prompt(self, tokenizer, system: str | None, task: str | None, steps: list[dict]) -> str:
        """The context before the next step, as the model saw such contexts in training."""
        if self.render == "chat":
            return tokenizer.apply_chat_template(self.messages(system, task, steps), tokenize=False,
                                                 add_generation_prompt=True)
        text, _ = linearize(task, steps, system, self.markers)
        return text

    @property
    def reason_marker(self) -> str:
        return self.markers.reason.rstrip(" ")

    @property
    def act_marker(self) -> str:
        return self.markers.act.rstrip(" ")

    @property
    def stops(self) -> list[str]:
        """Stop strings: the next observation marker (the model started to imagine the environment)."""
        return ["\n" + self.markers.obs.rstrip(" ")]

    # --- outputs ------------------------------------------------------------------------------
    def parse(self, text: str) -> tuple[str | None, str | None]:
        """``(reason, action)`` of a continuation; action None when there is no action marker."""
        return parse_output(text, self.markers)


def parse_output(text: str, markers: Markers) -> tuple[str | None, str | None]:
    text = text.replace("\r\n", "\n")
    act = markers.act.rstrip(" ")
    k = text.find(act)
    if k == -1:
        reason, action = text, None
    else:
        reason = text[:k]
        rest = text[k + len(act):].lstrip(" ")
        action = rest.split("\n", 1)[0].strip() or None
    reason = reason.strip()
    rm = markers.reason.rstrip(" ")
    if reason.startswith(rm):
        reason = reason[len(rm):].strip()
    return (reason or None), action


def detect_markers(text: str) -> Markers:
    """``paper`` when the text holds ``[ACT]``, else ``native``."""
    return MARKERS["paper"] if "[ACT]" in text or "[REASON]" in text else MARKERS["native"]


def format_from_record(rec: dict, render: str = "text") -> SadFormat:
    name = rec.get("markers")
    mk = MARKERS.get(name) if isinstance(name, str) else None
    return SadFormat(render, mk or detect_markers(rec.get("text") or ""))


def read_sad_config(path: str) -> dict | None:
    """``path/sad_config.json`` of a ``sad distill`` output, or None."""
    f = os.path.join(path, "sad_config.json")
    if not os.path.isfile(f):
        return None
    with open(f, encoding="utf-8") as fh:
        return json.load(fh)


def format_from_config(cfg: dict) -> SadFormat:
    """The render (``data.render``) and markers (``data.markers``, else the first training record's
    ``markers`` field or text, else ``paper``) a student was distilled with."""
    data = cfg.get("data") or {}
    render = data.get("render") or "text"
    name = data.get("markers")
    if isinstance(name, str) and name in MARKERS:
        return SadFormat(render, MARKERS[name])
    src = data.get("input")
    if isinstance(src, str) and os.path.isfile(src):
        from sadcli.jsonl import loads

        with open(src, "rb") as fh:
            for raw in fh:
                if raw.strip():
                    try:
                        rec = loads(raw)
                    except ValueError:
                        break
                    if isinstance(rec, dict):
                        return format_from_record(rec, render)
                    break
    return SadFormat(render, MARKERS["paper"])
