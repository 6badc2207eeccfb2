"""TextWorldExpress (Jansen & Côté 2022): fast simulated text games in a JVM (PyPI ``textworld-express``).

Games: ``twc`` (TextWorld Commonsense: put misplaced items where they belong — the closest to
ALFWorld, the default), ``cookingworld``, ``coin``, ``mapreader``, ``sorting``, ``arithmetic``,
``simonsays``, ``peckingorder``. Folds ``train`` / ``dev`` / ``test`` use the game's own disjoint seed
ranges (``getValidSeedsTrain()``...). Success is ``tasksuccess``; the reward is the normalized score (0–1).

The expert: for ``twc`` a deterministic player that acts on what it has observed and knows only the goal
(:mod:`sadcli.envs.twc_expert`); for the other games the game's gold action path
(``generateGoldPath=True``) without its random back-and-forth moves, the shortest of ``gold_samples``.
"""

from __future__ import annotations

import os

from sadcli.envs.base import BaseEnv, GoldPath, PromptTemplate, Task, Transition, first_line
from sadcli.envs.twc_expert import TWCExpert, goal_from_gold
from sadcli.errors import InputError

GAMES = ("twc", "cookingworld", "coin", "mapreader", "sorting", "arithmetic", "simonsays", "peckingorder")
SPLITS = ("train", "dev", "test")

INSTRUCTION = (
    "Interact with a text game to solve a task. Each turn, write a Thought line (optional on routine "
    "steps) with your reasoning, then an Action line with one command, e.g. look around, inventory, "
    "move north, open <container>, take <object>, put <object> in <container>."
)

# A worked example written for this project (TextWorld Commonsense style).
EXAMPLE = {
    "task": "You are in the kitchen. In one part of the room you see a fridge that is closed. There is also a "
            "counter, that has a dirty plate on it. You also see a dishwasher that is closed.\n"
            "To the East you see the living room.\n\n"
            "Your task is to pick up objects, then place them in their usual locations in the environment.",
    "steps": [
        {"reason": "The dirty plate is out of place on the counter; it belongs in the dishwasher. "
                   "I need to take it first.",
         "action": "take dirty plate", "observation": "You take the dirty plate."},
        {"reason": "The dishwasher is closed, so I open it before putting the dirty plate in it.",
         "action": "open dishwasher", "observation": "You open the dishwasher. It's empty inside."},
        {"reason": None, "action": "put dirty plate in dishwasher",
         "observation": "You put the dirty plate in the dishwasher."},
    ],
}


_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}


def drop_back_and_forth(path: list[str]) -> list[str]:
    """Remove moves that are undone right away (``move north``, ``move south``).

    TextWorldExpress's gold agents pad their paths with random back-and-forth walks, so the same seed
    gives a different gold path on every reset; without them the path is the same each time (stable
    episodes for ``--resume``) and shorter.
    """
    out: list[str] = []
    for a in path:
        if a.startswith("move ") and out and out[-1] == f"move {_OPPOSITE.get(a[5:], '?')}":
            out.pop()
        else:
            out.append(a)
    return out


def _cap_jvm_heap(heap: str | None) -> None:
    if heap and "-Xmx" not in os.environ.get("JAVA_TOOL_OPTIONS", ""):
        os.environ["JAVA_TOOL_OPTIONS"] = (os.environ.get("JAVA_TOOL_OPTIONS", "") + f" -Xmx{heap}").strip()


class TWXEnv(BaseEnv):
    name = "twx"
    splits = SPLITS
    default_split = "train"
    max_steps = 100

    def __init__(self, game: str = "twc", game_params: str = "", max_steps: int | None = None,
                 jvm_heap: str | None = "1g", gold_samples: int = 8):
        self.gold_samples = int(gold_samples)
        if game not in GAMES:
            raise InputError(f"unknown TextWorldExpress game {game!r}", hint=f"use one of {', '.join(GAMES)}")
        self.game, self.game_params = game, game_params or ""
        if max_steps is not None:
            self.max_steps = int(max_steps)
        self.prompt = PromptTemplate(INSTRUCTION, [EXAMPLE] if game == "twc" else [])
        _cap_jvm_heap(jvm_heap)
        try:
            from textworld_express import TextWorldExpressEnv
        except ImportError as e:
            raise InputError(f"TextWorldExpress is not installed ({e})",
                             hint="pip install 'textworld-express==1.1.0' (needs Java 17)") from None
        self._env = TextWorldExpressEnv(envStepLimit=100_000)
        self._gold = GoldPath()
        self._twc: TWCExpert | None = None
        self._info: dict = {}
        self._seeds: dict[str, list[int]] = {}

    def tasks(self, split: str) -> list[Task]:
        if split not in SPLITS:
            raise InputError(f"unknown TextWorldExpress fold {split!r}", hint=f"use one of {', '.join(SPLITS)}")
        if split not in self._seeds:
            # the seed ranges are per game: load the game once so they are the game's own
            self._env.reset(seed=0, gameFold="train", gameName=self.game, gameParams=self.game_params,
                            generateGoldPath=False)
            get = {"train": self._env.getValidSeedsTrain, "dev": self._env.getValidSeedsDev,
                   "test": self._env.getValidSeedsTest}[split]
            self._seeds[split] = list(get())
        return [Task(self.name, split, self.game, int(s), {"game_params": self.game_params} if self.game_params else {})
                for s in self._seeds[split]]

    def reset(self, task: Task) -> str:
        if task.game == "twc":
            # the goal (object -> receptacle) is the same in every gold path; the actions are our own
            obs, info = self._env.reset(seed=task.seed, gameFold=task.split, gameName=task.game,
                                        gameParams=task.meta.get("game_params", self.game_params),
                                        generateGoldPath=True)
            self._twc = TWCExpert(goal_from_gold(list(self._env.getGoldActionSequence())))
            self._twc.observe(None, obs, info.get("validActions"))
            self._gold = GoldPath()
            self._info = info
            return f"{obs.strip()}\n\n{info.get('taskDescription', '').strip()}".strip()
        self._twc = None
        # The gold agent explores in a random order, so the same seed gives different gold paths; take
        # the shortest of a few (ties: alphabetical) so that an episode is usually the same from run to run.
        best = None
        for _ in range(max(1, self.gold_samples)):
            obs, info = self._env.reset(seed=task.seed, gameFold=task.split, gameName=task.game,
                                        gameParams=task.meta.get("game_params", self.game_params),
                                        generateGoldPath=True)
            gold = drop_back_and_forth(list(self._env.getGoldActionSequence()))
            if best is None or (len(gold), gold) < (len(best), best):
                best = gold
        # the gold path starts with the "look around" the reset already did
        self._gold = GoldPath(best, start=1 if best and best[0] == "look around" else 0)
        self._info = info
        return f"{obs.strip()}\n\n{info.get('taskDescription', '').strip()}".strip()

    def step(self, action: str) -> Transition:
        obs, reward, done, info = self._env.step(action)
        self._gold.advance(action)
        if self._twc is not None:
            self._twc.observe(action, obs, info.get("validActions"))
        self._info = info
        won = bool(info.get("tasksuccess"))
        return Transition(obs.strip(), float(reward or 0.0), bool(done) or won,
                          {"won": won, "score": float(info.get("score", 0.0)),
                           "invalid": obs.startswith("Unknown action")})

    def admissible_actions(self) -> list[str] | None:
        acts = self._info.get("validActions")
        return list(acts) if acts else None

    def expert_plan(self) -> list[str] | None:
        if self._twc is not None:
            a = self._twc.next_action()
            return [a] if a else None
        return self._gold.plan()

    def expert_action(self) -> str | None:
        if self._twc is not None:
            return self._twc.next_action()
        return self._gold.next_action()

    def success(self) -> bool:
        return bool(self._info.get("tasksuccess"))

    def parse_action(self, text: str) -> str | None:
        line = first_line(text or "").strip().rstrip(".")
        return " ".join(line.split()) or None

    def state_info(self) -> dict:
        out = {"game": self.game, "inventory": self._info.get("inventory", "")}
        if self._twc is not None:
            out["intent"] = self._twc.intent()
            # commonsense the expert acts on, for the objects the agent has seen so far
            out["belongs"] = {o: r for o, (_p, r) in self._twc.goal.items()}
        return out

    def close(self) -> None:
        try:
            self._env.close()
        except Exception:  # noqa: BLE001
            pass


def make(**options) -> TWXEnv:
    return TWXEnv(**options)
