"""The environment protocol every adapter implements, and the ReAct prompt pieces they share.

An environment is a small object (see :class:`Env`)::

    env.tasks(split)          -> list[Task]        the episodes it can play, in a stable order
    env.reset(task)           -> str               first observation (what the agent is told)
    env.step(action)          -> Transition        observation, reward, done, info
    env.admissible_actions()  -> list[str] | None  when the environment knows them
    env.expert_action()       -> str | None        the expert's next action, when it has one
    env.success()             -> bool              whether the episode is won so far
    env.close()
    env.prompt                -> PromptTemplate    ReAct instruction + few-shot examples
    env.parse_action(text)    -> str | None        the action in a model's output, or None

Adapters live one per module (``sadcli.envs.alfworld``...). A user brings their own with
``--env module:factory`` (see :mod:`sadcli.envs.registry`); duck typing is enough, subclassing
:class:`BaseEnv` only saves writing the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Task:
    """One playable episode. ``id`` is stable across runs: ``env/split/game/seed``."""

    env: str
    split: str
    game: str
    seed: int = 0
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        return f"{self.env}/{self.split}/{self.game}/{self.seed}"

    def to_dict(self) -> dict:
        return {"env": self.env, "split": self.split, "game": self.game, "seed": self.seed, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> Task:
        return cls(d["env"], d["split"], d["game"], int(d.get("seed", 0)), dict(d.get("meta") or {}))


@dataclass
class Transition:
    """What one ``step`` returns. ``info`` may carry ``won``, ``score``, ``invalid`` (bool)."""

    observation: str
    reward: float = 0.0
    done: bool = False
    info: dict = field(default_factory=dict)


@dataclass
class PromptTemplate:
    """A ReAct prompt: an instruction, few-shot example trajectories, and the turn markers.

    ``render(task, steps)`` gives the text a completion model continues; ``messages(task, steps)``
    gives the same as chat messages. Both end where the model should write ``Thought: ... Action: ...``.
    Each example is ``{"task": str, "steps": [{"reason", "action", "observation"}]}``.
    """

    instruction: str
    examples: list[dict] = field(default_factory=list)
    thought: str = "Thought: "
    action: str = "Action: "
    observation: str = "Observation: "
    stop: tuple[str, ...] = ("\nObservation:", "\nObservation ", "\n\n")

    def _steps_text(self, steps: list[dict]) -> str:
        out = []
        for s in steps:
            if s.get("reason"):
                out.append(f"{self.thought}{s['reason']}\n")
            out.append(f"{self.action}{s['action']}\n")
            if s.get("observation") is not None:
                out.append(f"{self.observation}{s['observation']}\n")
        return "".join(out)

    def render_episode(self, task: str, steps: list[dict]) -> str:
        return f"{task.rstrip()}\n{self._steps_text(steps)}"

    def render(self, task: str, steps: list[dict], *, examples: bool = True) -> str:
        parts = [self.instruction.rstrip(), ""]
        if examples and self.examples:
            for i, ex in enumerate(self.examples, 1):
                parts.append(f"Example {i}:\n{self.render_episode(ex['task'], ex['steps'])}")
            parts.append("Now it is your turn.")
        parts.append(self.render_episode(task, steps) + self.thought.rstrip(" "))
        return "\n".join(parts)

    def messages(self, task: str, steps: list[dict], *, examples: bool = True) -> list[dict]:
        system = self.instruction.rstrip()
        if examples and self.examples:
            system += "\n\n" + "\n".join(f"Example {i}:\n{self.render_episode(ex['task'], ex['steps'])}"
                                         for i, ex in enumerate(self.examples, 1))
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        for s in steps:
            content = (f"{self.thought}{s['reason']}\n" if s.get("reason") else "") + f"{self.action}{s['action']}"
            msgs.append({"role": "assistant", "content": content})
            if s.get("observation") is not None:
                msgs.append({"role": "user", "content": f"{self.observation}{s['observation']}"})
        return msgs


def split_react(text: str) -> tuple[str | None, str | None]:
    """Split a model's ``Thought: ...\\nAction: ...`` output into (reason, raw action text).

    The model's continuation starts right after the ``Thought:`` marker the prompt ends with, so a
    leading thought without its marker is accepted. Either part may be missing (None).
    """
    text = text.replace("\r\n", "\n")
    m = re.search(r"^\s*Action\s*\d*\s*:\s*(.*)$", text, re.M)
    if m:
        reason = text[: m.start()]
        action = m.group(1).strip()
    else:
        reason, action = text, None
    reason = re.sub(r"^\s*(?:Thought|think)\s*\d*\s*:\s*", "", reason.strip(), flags=re.I).strip()
    return (reason or None), (action or None)


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip() if text else ""


@runtime_checkable
class Env(Protocol):
    name: str
    prompt: PromptTemplate
    max_steps: int

    def tasks(self, split: str) -> list[Task]: ...
    def reset(self, task: Task) -> str: ...
    def step(self, action: str) -> Transition: ...
    def admissible_actions(self) -> list[str] | None: ...
    def expert_action(self) -> str | None: ...
    def success(self) -> bool: ...
    def parse_action(self, text: str) -> str | None: ...
    def close(self) -> None: ...


class GoldPath:
    """A fixed expert action sequence (the environment's gold path), followed while the agent stays on it.

    Once the agent takes any other action the path no longer applies and :meth:`plan` returns None.
    """

    def __init__(self, actions: list[str] | None = None, start: int = 0):
        self.actions = list(actions or [])
        self.k = start
        self.off_path = False

    def advance(self, action: str) -> None:
        if not self.off_path and self.k < len(self.actions) and action == self.actions[self.k]:
            self.k += 1
        else:
            self.off_path = True

    def plan(self) -> list[str] | None:
        if self.off_path or self.k >= len(self.actions):
            return None
        return self.actions[self.k:]

    def next_action(self) -> str | None:
        plan = self.plan()
        return plan[0] if plan else None


class BaseEnv:
    """Defaults for the optional parts of the protocol; subclasses fill in the rest."""

    name = "env"
    splits: tuple[str, ...] = ("train", "dev", "test")
    default_split = "train"
    max_steps = 50
    prompt = PromptTemplate("Solve the task by interleaving Thought and Action lines.")

    def tasks(self, split: str) -> list[Task]:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self, task: Task) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, action: str) -> Transition:  # pragma: no cover - abstract
        raise NotImplementedError

    def admissible_actions(self) -> list[str] | None:
        return None

    def expert_action(self) -> str | None:
        return None

    def expert_plan(self) -> list[str] | None:
        """The expert's remaining actions when it knows more than the next one (gold paths)."""
        a = self.expert_action()
        return [a] if a else None

    def success(self) -> bool:
        return False

    def parse_action(self, text: str) -> str | None:
        """Default parser: the first line of the action text, or None when it is empty."""
        line = first_line(text or "")
        return line or None

    def state_info(self) -> dict[str, Any]:
        """Extra facts an expert's reasoning templates may use (plain JSON-able values)."""
        return {}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
