"""A systematic ALFWorld expert that acts only on what it has observed, plus commonsense priors.

Like ALFWorld's own experts it knows the goal (task type, object class, target receptacle class,
lamp class: the task sentence says as much). Unlike the handcoded expert it never reads where things
are: it searches the receptacles the room description lists, most likely first, and remembers what
every observation showed, so

- each receptacle is visited at most once while searching (a later search first uses what it saw),
- a closed receptacle is opened once, when it is searched or when something must go in it,
- no action is repeated without a reason (no ``examine desk 1`` loops), and
- it gives up (``next_action() is None``) when every receptacle was searched in vain.

The commonsense prior — which receptacle types usually hold an object type — is counted from the
initial states of the ``train`` games in the data folder (leaving the current game out), restricted
to the types the game's rules allow (``canContain``): knowledge about kinds of things, not about
where the things of this game are.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter

_INSTANCE = re.compile(r"\b(?:a|an) ([a-z]+) (\d+)\b")
_IN_RECEPTACLE = re.compile(r"\(inReceptacle ([A-Za-z]+)_bar_\S+ ([A-Za-z]+)_bar_\S+\)")
TOOLS = {"pick_heat_then_place_in_recep": ("heat", ("microwave",)),
         "pick_cool_then_place_in_recep": ("cool", ("fridge",)),
         "pick_clean_then_place_in_recep": ("clean", ("sinkbasin", "bathtubbasin"))}

_PRIOR_CACHE: dict[str, tuple[Counter, dict[str, set]]] = {}


def _game_pairs(path: str) -> set[tuple[str, str]]:
    with open(path, encoding="utf-8") as fh:
        problem = json.load(fh).get("pddl_problem", "")
    return {(o.lower(), r.lower()) for o, r in _IN_RECEPTACLE.findall(problem)}


def train_prior(root: str) -> tuple[Counter, dict[str, set]]:
    """(games in which object type o starts in receptacle type r, per-game pairs) over ``train``."""
    if root not in _PRIOR_CACHE:
        total: Counter = Counter()
        per_game: dict[str, set] = {}
        for game in sorted(glob.glob(os.path.join(root, "json_2.1.1", "train", "*", "*", "game.tw-pddl"))):
            pairs = _game_pairs(game)
            per_game[os.path.abspath(game)] = pairs
            total.update(pairs)
        _PRIOR_CACHE[root] = (total, per_game)
    return _PRIOR_CACHE[root]


def search_order(room: list[str], otype: str, allowed: list[str] | None, prior: Counter) -> list[str]:
    """The room's receptacles an ``otype`` may be in, most likely type first (then room order)."""
    types = [r.rsplit(" ", 1)[0] for r in room]
    ok = set(allowed) if allowed else set(types)
    pos = {t: i for i, t in reversed(list(enumerate(types)))}
    score = {t: prior.get((otype, t), 0) for t in set(types)}
    cands = [r for r, t in zip(room, types, strict=True) if t in ok]
    return sorted(cands, key=lambda r: (-score[r.rsplit(" ", 1)[0]], pos[r.rsplit(" ", 1)[0]],
                                        int(r.rsplit(" ", 1)[1]) if r.rsplit(" ", 1)[1].isdigit() else 0))


def _rtype(name: str) -> str:
    return name.rsplit(" ", 1)[0]


class SearchExpert:
    """Plays one ALFWorld game; ``observe`` each (action, observation), then ask :meth:`intent`."""

    def __init__(self, goal: dict, room: list[str], orders: dict[str, list[str]]):
        self.ttype = goal.get("task_type") or ""
        self.obj = goal.get("object") or ""
        self.target = goal.get("receptacle") or ""
        self.lamp = goal.get("toggle") or ""
        self.room = list(room)
        self.orders = orders                    # what -> receptacles in search order
        self.at: str | None = None              # receptacle the agent stands at
        self.contents: dict[str, list[str]] = {}  # receptacle -> instances last seen in/on it
        self.closed: set[str] = set()
        self.opened: set[str] = set()
        self.holding: str | None = None
        self.done_tool = False
        self.placed: list[str] = []             # instances put in/on a target receptacle
        self.used_lamp = False
        self.lamp_at: dict[str, str] = {}       # lamp instance -> receptacle where it is usable
        self.admissible: list[str] = []
        self.searching: dict[str, list[str]] = {}  # what -> the order announced when the search started
        self._intent_now: dict | None = None
        self._fresh = False
        self.failed: set[str] = set()           # actions answered "Nothing happens." (never tried twice)

    # ------------------------------------------------------------------ observations
    def observe(self, action: str | None, obs: str, admissible: list[str] | None) -> None:
        self.admissible = list(admissible or [])
        self._fresh = False
        if not action:
            return
        if obs.strip() == "Nothing happens.":
            self.failed.add(action)
            m = re.match(r"^(?:go to|open|examine) (.+)$", action)
            if m and m.group(1) not in self.contents:
                self.contents[m.group(1)] = []  # cannot look there: count it as searched, move on
            return
        m = re.match(r"^(?:go to|examine) (.+)$", action)
        if m and m.group(1) in self.room:
            self.at = m.group(1)
            self._see(self.at, obs)
        elif (m := re.match(r"^open (.+)$", action)):
            self.at = m.group(1)
            self.closed.discard(m.group(1))
            self.opened.add(m.group(1))
            self._see(m.group(1), obs)
        elif (m := re.match(r"^take (.+?) from (.+)$", action)):
            self.holding = m.group(1)
            if m.group(1) in self.contents.get(m.group(2), []):
                self.contents[m.group(2)].remove(m.group(1))
        elif (m := re.match(r"^put (.+?) in/on (.+)$", action)):
            self.contents.setdefault(m.group(2), []).append(m.group(1))
            if _rtype(m.group(2)) == self.target:
                self.placed.append(m.group(1))
            self.holding = None
        elif re.match(r"^(heat|cool|clean) ", action):
            self.done_tool = True
        elif action.startswith("use "):
            self.used_lamp = True
        if self.lamp and self.at:  # the lamp became usable here (admissible after this step)
            for a in self.admissible:
                m2 = re.match(rf"^use ({re.escape(self.lamp)} \d+)$", a)
                if m2:
                    self.lamp_at.setdefault(m2.group(1), self.at)

    def _see(self, rec: str, obs: str) -> None:
        if re.search(rf"\bThe {re.escape(rec)} is closed\.", obs):
            self.closed.add(rec)
            return
        # "On the desk 1, you see ..." / "The fridge 1 is open. In it, you see ..." / "You open the ..."
        m = re.search(r"you see (.*)", obs)
        if m:
            self.contents[rec] = [f"{t} {n}" for t, n in _INSTANCE.findall(m.group(1))]

    # ------------------------------------------------------------------ decisions
    def searched(self) -> set[str]:
        return set(self.contents)

    def known(self, otype: str) -> list[tuple[str, str]]:
        """(instance, receptacle) of ``otype`` seen and still there (not placed by us), in the order seen."""
        out = []
        for rec, items in self.contents.items():
            for it in items:
                if it.rsplit(" ", 1)[0] == otype and it not in self.placed:
                    out.append((it, rec))
        return out

    def _goto_or_open(self, rec: str, kind: str, **extra) -> dict:
        if self.at != rec:
            return {"kind": kind, "action": f"go to {rec}", "receptacle": rec, **extra}
        return {"kind": "open", "action": f"open {rec}", "receptacle": rec, "for": kind, **extra}

    def _find(self, otype: str, role: str) -> dict | None:
        known = self.known(otype)
        for inst, rec in known:
            if rec == self.at:
                return {"kind": "take", "action": f"take {inst} from {rec}", "object": inst,
                        "receptacle": rec, "role": role}
        if known:
            inst, rec = known[0]
            return {"kind": "return", "action": f"go to {rec}", "object": inst, "receptacle": rec, "role": role}
        return self._search(otype, role)

    def _search(self, otype: str, role: str) -> dict | None:
        order = self.orders.get(otype) or self.room
        rest = [r for r in order if r not in self.searched()]
        if not rest:
            first = {}
            for r in self.room:
                first.setdefault(_rtype(r), len(first))
            rest = sorted((r for r in self.room if r not in self.searched()),  # the unlikely places, last
                          key=lambda r: (first[_rtype(r)], int(r.rsplit(" ", 1)[1])))
            if not rest:
                return None
        first_time = otype not in self.searching
        if first_time:
            self.searching[otype] = rest
        nxt = rest[0]
        if self.at == nxt and nxt in self.closed:
            return {"kind": "open", "action": f"open {nxt}", "receptacle": nxt, "for": "search", "what": otype}
        return {"kind": "search", "action": f"go to {nxt}", "receptacle": nxt, "what": otype, "role": role,
                "order": rest, "start": first_time}

    def intent(self) -> dict | None:
        """The next action and the sub-goal it serves; None when the task is done or hopeless.

        Computed once per observation (asking twice gives the same answer)."""
        if not self._fresh:
            i = self._intent()
            if i and self.admissible and i["action"] not in self.admissible:
                if i["action"].startswith("put ") and f"open {self.at}" in self.admissible:
                    self.closed.add(self.at or "")
                    i = {"kind": "open", "action": f"open {self.at}", "receptacle": self.at, "for": "put"}
                elif i["action"].startswith("go to "):
                    # some receptacles share a spot: "go to drawer 3" from drawer 2 does nothing; look at it here
                    rec = i["action"][6:]
                    if f"open {rec}" in self.admissible:
                        i = dict(i, action=f"open {rec}")
                    elif f"examine {rec}" in self.admissible:
                        i = dict(i, action=f"examine {rec}")
            if i and i["action"] in self.failed:
                i = None  # it did nothing before: give up rather than loop
            self._intent_now, self._fresh = i, True
        return self._intent_now

    def _intent(self) -> dict | None:
        two = self.ttype == "pick_two_obj_and_place"
        if self.ttype == "look_at_obj_in_light":
            if self.used_lamp:
                return None
            if self.holding is None:
                return self._find(self.obj, "object")
            for lamp, rec in self.lamp_at.items():
                if rec == self.at and f"use {lamp}" in self.admissible:
                    return {"kind": "use", "action": f"use {lamp}", "object": lamp, "receptacle": rec}
            for lamp, rec in list(self.lamp_at.items()) + [(i, r) for i, r in self.known(self.lamp)]:
                if rec != self.at:
                    return {"kind": "return", "action": f"go to {rec}", "object": lamp, "receptacle": rec,
                            "role": "lamp"}
            return self._search(self.lamp, "lamp")
        need = 2 if two else 1
        if len(self.placed) >= need:
            return None
        if self.holding is None:
            return self._find(self.obj, "second" if two and self.placed else ("first" if two else "object"))
        if self.ttype in TOOLS and not self.done_tool:
            verb, kinds = TOOLS[self.ttype]
            tool = next((r for k in kinds for r in self.room if _rtype(r) == k), None)
            if tool is None:
                return None
            if self.at != tool:
                return {"kind": "tool", "action": f"go to {tool}", "receptacle": tool, "verb": verb}
            return {"kind": "apply", "action": f"{verb} {self.holding} with {tool}", "receptacle": tool,
                    "verb": verb, "object": self.holding}
        dest = self.destination()
        if dest is None:
            return None
        if self.at != dest:
            return {"kind": "place", "action": f"go to {dest}", "receptacle": dest, "object": self.holding}
        if dest in self.closed:
            return {"kind": "open", "action": f"open {dest}", "receptacle": dest, "for": "put"}
        return {"kind": "put", "action": f"put {self.holding} in/on {dest}", "receptacle": dest,
                "object": self.holding}

    def destination(self) -> str | None:
        """A receptacle of the target type: one already used, else open/seen, else the first listed."""
        cands = [r for r in self.room if _rtype(r) == self.target]
        if not cands:
            return None
        for r in cands:
            if any(p in self.contents.get(r, []) for p in self.placed):
                return r
        seen_open = [r for r in cands if r in self.contents]
        return (seen_open or cands)[0]

    def next_action(self) -> str | None:
        it = self.intent()
        return it["action"] if it else None
