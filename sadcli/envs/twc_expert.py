"""A deterministic expert for TextWorld Commonsense (``twx --game twc``) that acts only on what it has seen.

It knows the goal — which objects are out of place and the receptacle each one belongs in — as
ALFWorld's expert knows its PDDL goal; TextWorldExpress states it only as "put objects in their usual
locations", so the goal comes from one gold path (``put X in D`` actions; the same on every reset).
Everything else comes from observations: the room descriptions it was shown, the exits they name, and
the admissible commands. It

1. takes every goal object it sees in the room (``take X``),
2. puts what it carries into a receptacle of this room where it belongs (``open D`` first when the room
   said D is closed),
3. walks to the nearest room where it has *seen* the receptacle a carried object belongs in, else
4. explores: the nearest room it has heard of (an exit) but not visited, directions in a fixed order.

The same game always gives the same actions (no random gold-path sampling), and :meth:`intent`
says why the next action is taken, in terms of what was observed, for the reasoning templates.
"""

from __future__ import annotations

import re
from collections import deque

_ROOM = re.compile(r"^You are in the ([a-z][a-z ]*?)\.", re.M)
_EXIT = re.compile(r"To the (North|South|East|West) you see the ([a-z][a-z ]*?)\.")
_PUT = re.compile(r"^put (.+?) (in|on) (.+)$")
DIRECTIONS = ("north", "south", "east", "west")


def goal_from_gold(gold: list[str]) -> dict[str, tuple[str, str]]:
    """``{object: (preposition, receptacle)}`` from the ``put`` actions of a gold path (first one wins)."""
    out: dict[str, tuple[str, str]] = {}
    for a in gold:
        m = _PUT.match(a)
        if m and m.group(1) not in out:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def mentions(text: str, name: str) -> bool:
    """Whether a room description names ``name`` as a thing of its own (``a side table`` is not ``a table``)."""
    return re.search(rf"(?:^|\b(?:a|an|the|open)\s){re.escape(name)}\b", text, re.I) is not None


def closed_in(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)} that is closed\b", text, re.I) is not None


class TWCExpert:
    """Plays one twc game from its observations; ``observe`` every observation, ask ``next_action``."""

    def __init__(self, goal: dict[str, tuple[str, str]]):
        self.goal = dict(goal)
        self.rooms: dict[str, dict] = {}   # name -> {"desc": text, "exits": {direction: room}}
        self.room: str | None = None
        self.carrying: list[str] = []
        self.placed: set[str] = set()
        self.opened: set[tuple[str, str]] = set()  # (room, receptacle)
        self.admissible: list[str] = []

    # ------------------------------------------------------------------ observations
    def observe(self, action: str | None, observation: str, admissible: list[str] | None) -> None:
        self.admissible = list(admissible or [])
        m = _ROOM.search(observation)
        if m:  # a room description (the first observation, a move, look around)
            self.room = m.group(1)
            exits = {d.lower(): r for d, r in _EXIT.findall(observation)}
            self.rooms[self.room] = {"desc": observation, "exits": exits}
        if not action:
            return
        ok = not observation.startswith(("Unknown action", "That is not", "You can't", "I don't"))
        if action.startswith("take ") and ok and observation.startswith("You take"):
            obj = action[5:]
            if obj not in self.carrying:
                self.carrying.append(obj)
        elif action.startswith("open ") and observation.startswith("You open"):
            self.opened.add((self.room or "", action[5:]))
        elif (m := _PUT.match(action)) and observation.startswith("You put"):
            obj = m.group(1)
            if obj in self.carrying:
                self.carrying.remove(obj)
            if self.goal.get(obj, (None, None))[1] == m.group(3):
                self.placed.add(obj)

    # ------------------------------------------------------------------ queries
    def here(self) -> dict:
        return self.rooms.get(self.room or "", {"desc": "", "exits": {}})

    def visible_goal_objects(self) -> list[str]:
        """Goal objects this room offers to take (admissible ``take X``), not carried or already placed."""
        out = []
        for a in self.admissible:
            if a.startswith("take "):
                obj = a[5:]
                if obj in self.goal and obj not in self.placed and obj not in self.carrying:
                    out.append(obj)
        # stable order: as the room description lists them
        desc = self.here()["desc"]
        return sorted(out, key=lambda o: (desc.find(o) if o in desc else 10**6, o))

    def rooms_with(self, receptacle: str) -> list[str]:
        return [r for r, info in self.rooms.items() if mentions(info["desc"], receptacle)]

    def _path(self, targets: set[str]) -> list[tuple[str, str]] | None:
        """Shortest known path (list of (direction, room)) from here to any room in ``targets``."""
        if self.room is None:
            return None
        prev: dict[str, tuple[str, str] | None] = {self.room: None}
        q = deque([self.room])
        while q:
            r = q.popleft()
            if r in targets and r != self.room:
                path = []
                while prev[r] is not None:
                    d, p = prev[r]  # type: ignore[misc]
                    path.append((d, r))
                    r = p
                return path[::-1]
            if r not in self.rooms:  # heard of, not visited: no known exits
                continue
            exits = self.rooms[r]["exits"]
            for d in DIRECTIONS:
                nxt = exits.get(d)
                if nxt and nxt not in prev:
                    prev[nxt] = (d, r)
                    q.append(nxt)
        return None

    def intent(self) -> dict | None:
        """The next action and why, in observed terms; None when nothing is left to do."""
        if self.room is None:
            return None
        left = [o for o in self.goal if o not in self.placed]
        if not left:
            return None
        here = self.here()
        for obj in self.visible_goal_objects():
            return {"kind": "take", "action": f"take {obj}", "object": obj, "receptacle": self.goal[obj][1]}
        for obj in self.carrying:
            if obj not in self.goal or obj in self.placed:
                continue
            prep, rec = self.goal[obj]
            if mentions(here["desc"], rec):
                if closed_in(here["desc"], rec) and (self.room, rec) not in self.opened:
                    return {"kind": "open", "action": f"open {rec}", "object": obj, "receptacle": rec}
                return {"kind": "put", "action": f"put {obj} {prep} {rec}", "object": obj, "receptacle": rec}
        # deliver: a carried object whose receptacle was seen in another room
        targets: dict[str, list[str]] = {}
        for obj in self.carrying:
            if obj in self.goal and obj not in self.placed:
                for r in self.rooms_with(self.goal[obj][1]):
                    targets.setdefault(r, []).append(obj)
        path = self._path(set(targets))
        if path:
            dest = path[-1][1]
            objs = targets[dest]
            return {"kind": "deliver", "action": f"move {path[0][0]}", "direction": path[0][0],
                    "next_room": path[0][1], "room": dest, "objects": objs,
                    "receptacles": [self.goal[o][1] for o in objs]}
        # explore: the nearest room heard of but not visited
        unvisited = {r for info in self.rooms.values() for r in info["exits"].values() if r not in self.rooms}
        path = self._path(unvisited)
        if path:
            missing = [o for o in self.carrying if o in self.goal and o not in self.placed]
            return {"kind": "explore", "action": f"move {path[0][0]}", "direction": path[0][0],
                    "next_room": path[0][1], "room": path[-1][1], "carrying": missing}
        return None

    def next_action(self) -> str | None:
        it = self.intent()
        return it["action"] if it else None
