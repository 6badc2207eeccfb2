"""ScienceWorld (Wang et al. 2022): 30 science tasks x variations in a JVM (PyPI ``scienceworld``).

Splits ``train`` / ``dev`` / ``test`` are the benchmark's own variation splits. The expert follows the
gold path (``generateGoldPath=True``). The score is 0–100; the episode reward is score / 100 and
success means a score of 100. The JVM heap is capped (``-Xmx1g`` by default, through
``JAVA_TOOL_OPTIONS``) because it otherwise grows to gigabytes.

Tasks are listed round-robin over task names (variation 0 of every task, then variation 1...) so that
the first N episodes cover many tasks; ``task`` (a name, a comma list, or task numbers) restricts them.
"""

from __future__ import annotations

import re

from sadcli.envs.base import BaseEnv, GoldPath, PromptTemplate, Task, Transition, first_line
from sadcli.envs.twx import _cap_jvm_heap
from sadcli.errors import InputError

SPLITS = ("train", "dev", "test")

INSTRUCTION = (
    "Interact with a simulated science world to solve a task. Each turn, write a Thought line (optional "
    "on routine steps) with your reasoning, then an Action line with one command, e.g. look around, "
    "open door to kitchen, go to kitchen, pick up <object>, move <object> to <container>, "
    "activate <device>, focus on <object>, use <tool> on <object>, wait1."
)

# A worked example written for this project.
EXAMPLE = {
    "task": "This room is called the kitchen. In it, you see: \n\tthe agent\n\ta substance called air\n\ta sink, "
            "which is turned off. In the sink is: nothing.\n\ta cupboard. The cupboard door is closed.\n"
            "You also see:\n\tA door to the hallway (that is open)\n\n"
            "Your task is to measure the temperature of water. First, focus on the substance.",
    "steps": [
        {"reason": "I need water. The sink can give water, and a container from the cupboard can hold it.",
         "action": "open cupboard", "observation": "The cupboard is now open."},
        {"reason": None, "action": "look around",
         "observation": "This room is called the kitchen. In it, you see: \n\ta cupboard. In the cupboard is: "
                        "a glass cup (containing nothing).\n\ta sink, which is turned off."},
        {"reason": "There is an empty glass cup in the cupboard. I will move it to the sink to fill it.",
         "action": "move glass cup to sink", "observation": "You move the glass cup to the sink."},
        {"reason": None, "action": "activate sink", "observation": "The sink is now activated."},
        {"reason": "The glass cup now holds water, the substance the task is about, so I focus on it.",
         "action": "focus on water", "observation": "You focus on the water."},
    ],
}


class ScienceWorldEnv(BaseEnv):
    name = "scienceworld"
    splits = SPLITS
    default_split = "train"
    max_steps = 100
    prompt = PromptTemplate(INSTRUCTION, [EXAMPLE])

    def __init__(self, task: str | None = None, simplifications: str = "", max_steps: int | None = None,
                 jvm_heap: str | None = "1g"):
        _cap_jvm_heap(jvm_heap)
        try:
            from scienceworld import ScienceWorldEnv as _SW
        except ImportError as e:
            raise InputError(f"ScienceWorld is not installed ({e})",
                             hint="pip install 'scienceworld==1.2.3' (needs Java 17)") from None
        if max_steps is not None:
            self.max_steps = int(max_steps)
        self._env = _SW("", envStepLimit=100_000)
        self.simplifications = simplifications or ""
        names = list(self._env.get_task_names())
        self.task_names = self._select(names, task)
        self._gold = GoldPath()
        self._info: dict = {}
        self._score = 0.0

    @staticmethod
    def _select(names: list[str], task) -> list[str]:
        if task in (None, ""):
            return names
        wanted = [t for t in re.split(r"[,\s]+", str(task)) if t]
        out = []
        for t in wanted:
            if t.isdigit() and int(t) < len(names):
                out.append(names[int(t)])
            elif t in names:
                out.append(t)
            else:
                raise InputError(f"unknown ScienceWorld task {t!r}", hint=f"use a task number or one of {', '.join(names)}")
        return out

    def tasks(self, split: str) -> list[Task]:
        if split not in SPLITS:
            raise InputError(f"unknown ScienceWorld split {split!r}", hint=f"use one of {', '.join(SPLITS)}")
        per_task = {}
        for name in self.task_names:
            self._env.load(name, 0, self.simplifications, generateGoldPath=False)
            get = {"train": self._env.get_variations_train, "dev": self._env.get_variations_dev,
                   "test": self._env.get_variations_test}[split]
            per_task[name] = sorted(int(v) for v in get())
        out = []
        for r in range(max((len(v) for v in per_task.values()), default=0)):
            for name in self.task_names:
                if r < len(per_task[name]):
                    out.append(Task(self.name, split, name, per_task[name][r], {}))
        return out

    def reset(self, task: Task) -> str:
        self._env.load(task.game, task.seed, self.simplifications, generateGoldPath=True)
        obs, info = self._env.reset()
        self._gold = GoldPath(self._env.get_gold_action_sequence())
        self._info, self._score = info, 0.0
        desc = self._env.get_task_description().strip()
        return f"{obs.strip()}\n\n{desc}"

    def step(self, action: str) -> Transition:
        obs, _reward, done, info = self._env.step(action)
        self._gold.advance(action)
        self._info = info
        score = float(info.get("score", 0) or 0)
        delta = (score - self._score) / 100.0
        self._score = score
        won = score >= 100
        return Transition(obs.strip(), delta, bool(done) or won,
                          {"won": won, "score": score,
                           "invalid": obs.startswith("No known action matches")})

    def admissible_actions(self) -> list[str] | None:
        return None  # ScienceWorld's valid action list is combinatorially large

    def expert_plan(self) -> list[str] | None:
        return self._gold.plan()

    def expert_action(self) -> str | None:
        return self._gold.next_action()

    def success(self) -> bool:
        return self._score >= 100

    def parse_action(self, text: str) -> str | None:
        line = first_line(text or "").strip().rstrip(".")
        return " ".join(line.split()) or None

    def state_info(self) -> dict:
        return {"task_name": self._info.get("taskName"), "score": self._score,
                "inventory": self._info.get("inv", "")}

    def close(self) -> None:
        try:
            self._env.close()
        except Exception:  # noqa: BLE001
            pass


def make(**options) -> ScienceWorldEnv:
    return ScienceWorldEnv(**options)
