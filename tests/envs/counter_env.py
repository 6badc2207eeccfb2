"""A tiny plugin environment for tests (loaded as ``path/to/counter_env.py:make``).

Task: say the numbers 1..n in order with ``say[k]``. The expert says the next number. Options make it
misbehave on purpose: ``crash_on`` kills its worker process at the reset of that game, ``raise_on`` raises
at the second step of that game.
"""

from __future__ import annotations

import os
import re
import time

from sadcli.envs.base import BaseEnv, PromptTemplate, Task, Transition


class CounterEnv(BaseEnv):
    name = "counter"
    default_split = "train"
    max_steps = 20
    prompt = PromptTemplate("Count up. Write Thought: and Action: say[k] lines.",
                            [{"task": "Count to 2.", "steps": [
                                {"reason": "I start at 1.", "action": "say[1]", "observation": "1 said."},
                                {"reason": None, "action": "say[2]", "observation": "Done: you counted to 2."}]}])

    def __init__(self, games: int = 6, crash_on: str | None = None, raise_on: str | None = None,
                 crash_marker: str | None = None, delay: float = 0.0):
        self.delay = float(delay)
        self.games = int(games)
        self.crash_on = None if crash_on is None else str(crash_on)
        self.raise_on = None if raise_on is None else str(raise_on)
        self.crash_marker = crash_marker
        self.n = 0
        self.k = 0
        self.game = ""
        self.won = False

    def tasks(self, split):
        return [Task(self.name, split, str(2 + i % 3), i, {"parity": i % 2}) for i in range(self.games)]

    def reset(self, task):
        self.game = f"{task.game}/{task.seed}"
        if self.crash_on == self.game:
            # crash only once when a marker file is given (so the rerun after a restart can pass)
            if not self.crash_marker or not os.path.exists(self.crash_marker):
                if self.crash_marker:
                    open(self.crash_marker, "w").close()
                os._exit(3)
        self.n, self.k, self.won = int(task.game), 0, False
        return f"Count to {self.n}."

    def step(self, action):
        if self.delay:
            time.sleep(self.delay)
        if self.raise_on == self.game and self.k == 1:
            raise RuntimeError("the counter broke")
        m = re.fullmatch(r"say\[(\d+)\]", action.strip())
        if not m:
            return Transition(f"Invalid action: {action}", 0.0, False, {"invalid": True})
        if int(m.group(1)) != self.k + 1:
            return Transition(f"Wrong: expected {self.k + 1}.", 0.0, True, {"won": False})
        self.k += 1
        if self.k == self.n:
            self.won = True
            return Transition(f"Done: you counted to {self.n}.", 1.0, True, {"won": True})
        return Transition(f"{self.k} said.", 0.0, False)

    def admissible_actions(self):
        return [f"say[{i}]" for i in range(1, self.n + 1)]

    def expert_action(self):
        return f"say[{self.k + 1}]" if self.k < self.n else None

    def success(self):
        return self.won

    def parse_action(self, text):
        m = re.search(r"say\[\s*(\d+)\s*\]", text or "")
        return f"say[{m.group(1)}]" if m else None

    def state_info(self):
        return {"expert_reason": f"I have said {self.k} of {self.n} numbers, so next is {self.k + 1}."
                if self.k < self.n else None}


def make(**options):
    return CounterEnv(**options)
