"""ALFWorld (Shridhar et al. 2021): the real text games, played offline with PyPI ``alfworld`` + ``textworld``.

The data folder holds ``json_2.1.1/{train,valid_seen,valid_unseen}/<task>/<trial>/game.tw-pddl`` and
``traj_data.json`` (plus ``logic/``), as ``alfworld-download`` lays it out. It is the ``data_dir``
option, else ``$ALFWORLD_DATA``. Like ALFWorld itself, only playable games are listed: not
``movable``/``Sliced`` and ``solvable`` (134 of the 195 ``valid_unseen`` trials, the standard
out-of-distribution test set).

Each reset registers the game with ``textworld.gym`` behind ALFWorld's wrappers (``AlfredDemangler``,
``AlfredInfos``); success is ``won``. Observations are cleaned as in ReAct: no welcome banner, no
``You arrive at loc N.``

The expert (``expert`` option): ``search`` (default), a systematic searcher that acts only on what it
has observed plus commonsense priors (:mod:`sadcli.envs.alfworld_expert`); or ``handcoded``, ALFWorld's
own ``AlfredExpert(HANDCODED)`` (its ``extra.expert_plan``), which reads the game state and may loop.
The step budget is 50, as in ReAct's ALFWorld runs.

Resets reuse the game's PDDL translations (``cache`` option: ``disk``, the default, keeps them under
``$SAD_HOME/alfworld-cache``; ``memory``; ``off``): :mod:`sadcli.envs.alfworld_cache`.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import re
from collections import Counter

from sadcli.envs.alfworld_cache import MODES as CACHE_MODES
from sadcli.envs.alfworld_cache import make_cache
from sadcli.envs.alfworld_expert import SearchExpert, search_order, train_prior
from sadcli.envs.base import BaseEnv, PromptTemplate, Task, Transition, first_line
from sadcli.errors import InputError

SPLITS = ("train", "valid_seen", "valid_unseen")

TASK_TYPES = {
    "put": "pick_and_place_simple",
    "clean": "pick_clean_then_place_in_recep",
    "heat": "pick_heat_then_place_in_recep",
    "cool": "pick_cool_then_place_in_recep",
    "examine": "look_at_obj_in_light",
    "puttwo": "pick_two_obj_and_place",
}

INSTRUCTION = (
    "Interact with a household to solve a task. Each turn, write a Thought line (optional on routine "
    "steps) with your reasoning, then an Action line with one command. Commands: go to <receptacle>, "
    "open <receptacle>, close <receptacle>, take <object> from <receptacle>, put <object> in/on "
    "<receptacle>, clean <object> with <receptacle>, heat <object> with <receptacle>, cool <object> with "
    "<receptacle>, use <object>, examine <object>, look, inventory."
)

# A worked example written for this project, in the style of the ReAct ALFWorld prompts.
EXAMPLE = {
    "task": "You are in the middle of a room. Looking quickly around you, you see a cabinet 3, a cabinet 2, "
            "a cabinet 1, a countertop 1, a fridge 1, a sinkbasin 1, and a stoveburner 1.\n\n"
            "Your task is to: put a clean apple in fridge.",
    "steps": [
        {"reason": "To solve the task, I need to find and take an apple, then clean it with sinkbasin, then put "
                   "it in/on fridge. First I need to find an apple. An apple is more likely to appear in "
                   "countertop (1), fridge (1), cabinet (1-3). I can check one by one, starting with countertop 1.",
         "action": "go to countertop 1",
         "observation": "On the countertop 1, you see a knife 1, and a apple 2."},
        {"reason": "Now I find an apple (2). Next, I need to take it.",
         "action": "take apple 2 from countertop 1",
         "observation": "You pick up the apple 2 from the countertop 1."},
        {"reason": "Now I take an apple (2). Next, I need to go to sinkbasin (1) and clean it.",
         "action": "go to sinkbasin 1",
         "observation": "On the sinkbasin 1, you see nothing."},
        {"reason": None, "action": "clean apple 2 with sinkbasin 1",
         "observation": "You clean the apple 2 using the sinkbasin 1."},
        {"reason": "Now I clean an apple (2). Next, I need to put it in/on fridge 1.",
         "action": "go to fridge 1",
         "observation": "The fridge 1 is closed."},
        {"reason": None, "action": "open fridge 1",
         "observation": "You open the fridge 1. The fridge 1 is open. In it, you see a egg 1."},
        {"reason": None, "action": "put apple 2 in/on fridge 1",
         "observation": "You put the apple 2 in/on the fridge 1."},
    ],
}

_ROOM_LIST = re.compile(r"\ban? ([a-z]+ \d+)")


def receptacles_in(first_observation: str) -> list[str]:
    """The receptacles the room description lists (``you see a cabinet 2, a cabinet 1, ...``), in order."""
    head = first_observation.split("Your task is to", 1)[0]
    return _ROOM_LIST.findall(head)


_BANNER = re.compile(r"^-= Welcome to TextWorld, ALFRED! =-\s*", re.S)
_ARRIVE = re.compile(r"You arrive at loc \d+\.\s*")


def clean_observation(obs: str) -> str:
    return _ARRIVE.sub("", _BANNER.sub("", obs)).strip()


def find_data_dir(path: str | None = None) -> str:
    d = path or os.environ.get("ALFWORLD_DATA")
    if not d:
        raise InputError("no ALFWorld data folder",
                         hint="set ALFWORLD_DATA or pass --env-opt data_dir=DIR (the folder with json_2.1.1/)")
    if not os.path.isdir(os.path.join(d, "json_2.1.1")):
        raise InputError(f"{d} has no json_2.1.1/ folder",
                         hint="point ALFWORLD_DATA at the folder alfworld-download fills (json_2.1.1/, logic/)")
    return d


def _task_type_filter(task_types) -> set[str] | None:
    if not task_types:
        return None
    if isinstance(task_types, str):
        task_types = [t for t in re.split(r"[,\s]+", task_types) if t]
    out = set()
    for t in task_types:
        full = TASK_TYPES.get(t, t)
        if full not in TASK_TYPES.values():
            raise InputError(f"unknown ALFWorld task type {t!r}",
                             hint=f"use {', '.join(TASK_TYPES)} or the full names ({', '.join(TASK_TYPES.values())})")
        out.add(full)
    return out


def list_games(root: str, split: str, task_types=None) -> list[Task]:
    """Playable games of ``split``, sorted by path (stable ids)."""
    if split not in SPLITS:
        raise InputError(f"unknown ALFWorld split {split!r}", hint=f"use one of {', '.join(SPLITS)}")
    wanted = _task_type_filter(task_types)
    base = os.path.join(root, "json_2.1.1", split)
    tasks = []
    for game in sorted(glob.glob(os.path.join(base, "*", "*", "game.tw-pddl"))):
        rel = os.path.relpath(os.path.dirname(game), base)
        if "movable" in rel or "Sliced" in rel:
            continue
        traj = os.path.join(os.path.dirname(game), "traj_data.json")
        if not os.path.exists(traj):
            continue
        with open(game, encoding="utf-8") as fh:
            if not json.load(fh).get("solvable", False):
                continue
        with open(traj, encoding="utf-8") as fh:
            td = json.load(fh)
        ttype = td.get("task_type", rel.split("-", 1)[0])
        if wanted and ttype not in wanted:
            continue
        p = td.get("pddl_params", {})
        meta = {"task_type": ttype, "object": p.get("object_target", "").lower(),
                "receptacle": p.get("parent_target", "").lower(), "toggle": p.get("toggle_target", "").lower(),
                "mrecep": p.get("mrecep_target", "").lower()}
        tasks.append(Task("alfworld", split, rel.replace(os.sep, "/"), 0, meta))
    return tasks


_CAN_CONTAIN = re.compile(r"\(canContain (\w+)Type (\w+)Type\)")


def can_contain(game_file: str) -> dict[str, list[str]]:
    """Object type -> receptacle types the game's rules let hold it (type knowledge, not where things are)."""
    with open(game_file, encoding="utf-8") as fh:
        problem = json.load(fh).get("pddl_problem", "")
    out: dict[str, set[str]] = {}
    for rtype, otype in _CAN_CONTAIN.findall(problem):
        out.setdefault(otype.lower(), set()).add(rtype.lower())
    return {k: sorted(v) for k, v in out.items()}


class ALFWorldEnv(BaseEnv):
    name = "alfworld"
    splits = SPLITS
    default_split = "valid_unseen"
    max_steps = 50
    prompt = PromptTemplate(INSTRUCTION, [EXAMPLE])

    def __init__(self, data_dir: str | None = None, task_types=None, max_steps: int | None = None,
                 expert: str = "search", cache: str = "disk"):
        if expert not in ("search", "handcoded"):
            raise InputError(f"unknown ALFWorld expert {expert!r}", hint="use expert=search or expert=handcoded")
        if cache not in CACHE_MODES:
            raise InputError(f"unknown ALFWorld cache {cache!r}",
                             hint="use cache=disk ($SAD_HOME/alfworld-cache), cache=memory or cache=off")
        self.expert = expert
        # neither expert asks textworld for a plan (policy_commands, walkthrough): no replanning translation
        self._cache = make_cache(cache, replan=False)
        self._search: SearchExpert | None = None
        self.root = find_data_dir(data_dir)
        os.environ.setdefault("ALFWORLD_DATA", self.root)
        self.task_types = task_types
        if max_steps is not None:
            self.max_steps = int(max_steps)
        try:
            import textworld  # noqa: F401
            import textworld.gym  # noqa: F401
            from alfworld.agents.environment.alfred_tw_env import (  # noqa: F401
                AlfredDemangler,
                AlfredExpert,
                AlfredExpertType,
                AlfredInfos,
            )
        except ImportError as e:
            raise InputError(f"ALFWorld is not installed ({e})",
                             hint="pip install 'alfworld==0.4.2' 'textworld[pddl]==1.7.0' (or the [envs] extra)") from None
        self._env = None
        self._info: dict = {}
        self._task: Task | None = None
        self._state: dict = {}

    def tasks(self, split: str) -> list[Task]:
        return list_games(self.root, split, self.task_types)

    def _close_game(self) -> None:
        if self._env is not None:
            try:
                self._env.close()
            except Exception:  # noqa: BLE001
                pass
            self._env = None

    def reset(self, task: Task) -> str:
        import textworld
        import textworld.gym
        from alfworld.agents.environment.alfred_tw_env import (
            AlfredDemangler,
            AlfredExpert,
            AlfredExpertType,
            AlfredInfos,
        )

        self._close_game()
        # the handcoded expert breaks ties with Python's `random`: seed it per episode (stable episodes)
        random.seed(f"{task.id}")
        game = os.path.join(self.root, "json_2.1.1", task.split, task.game, "game.tw-pddl")
        if not os.path.exists(game):
            raise InputError(f"no ALFWorld game {task.split}/{task.game}", hint=f"looked for {game}")
        handcoded = self.expert == "handcoded"
        infos = textworld.EnvInfos(won=True, admissible_commands=True,
                                   extras=["gamefile", "expert_plan"] if handcoded else ["gamefile"])
        wrappers = [AlfredDemangler(), AlfredInfos]
        if handcoded:
            wrappers.append(AlfredExpert(AlfredExpertType.HANDCODED))
        env_id = textworld.gym.register_games([game], infos, batch_size=1, asynchronous=False,
                                              max_episode_steps=10_000, wrappers=wrappers)
        with self._cache.installed() if self._cache else contextlib.nullcontext():
            self._env = textworld.gym.make(env_id)
            obs, info = self._env.reset()
        self._task = task
        self._info = info
        rules = can_contain(game)
        obj, tog = task.meta.get("object", ""), task.meta.get("toggle", "")
        self._state = {"task_type": task.meta.get("task_type"), "object": obj,
                       "receptacle": task.meta.get("receptacle"), "toggle": tog,
                       "object_places": rules.get(obj, []),
                       "toggle_places": rules.get(tog, []) if tog else []}
        text = clean_observation(obs[0])
        self._search = None
        if not handcoded:
            room = receptacles_in(text)
            total, per_game = train_prior(self.root)
            prior = total - Counter(per_game.get(os.path.abspath(game), set()))  # leave this game out
            orders = {t: search_order(room, t, rules.get(t), prior) for t in (obj, tog) if t}
            self._search = SearchExpert(self._state, room, orders)
            self._search.observe(None, text, self.admissible_actions())
        return text

    def step(self, action: str) -> Transition:
        assert self._env is not None, "reset() first"
        obs, score, done, info = self._env.step([action])
        self._info = info
        text = clean_observation(obs[0])
        if self._search is not None:
            self._search.observe(action, text, self.admissible_actions())
        won = bool(info["won"][0])
        return Transition(text, 1.0 if won else 0.0, bool(done[0]) or won,
                          {"won": won, "invalid": text == "Nothing happens."})

    def admissible_actions(self) -> list[str] | None:
        cmds = self._info.get("admissible_commands")
        return list(cmds[0]) if cmds else None

    def expert_action(self) -> str | None:
        if self._search is not None:
            return self._search.next_action()
        plan = self._info.get("extra.expert_plan")
        try:
            return plan[0][0]
        except (TypeError, IndexError):
            return None

    def success(self) -> bool:
        won = self._info.get("won")
        return bool(won and won[0])

    def parse_action(self, text: str) -> str | None:
        line = first_line(text or "")
        line = re.sub(r"^(?:>\s*|Action\s*\d*\s*:\s*)", "", line).strip().rstrip(".")
        return " ".join(line.split()) or None

    def state_info(self) -> dict:
        out = dict(self._state)
        if self._search is not None:
            out["intent"] = self._search.intent()
        return out

    def close(self) -> None:
        self._close_game()


def make(**options) -> ALFWorldEnv:
    return ALFWorldEnv(**options)
