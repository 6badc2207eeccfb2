"""``expert``: the environment's expert / gold actions, with reasoning written by per-environment templates.

The templates explain a step from what the agent can see — the task, the room, earlier observations,
the game's type rules — and name what the next action depends on ("Now I find a mug (1). Next, I need
to take it."). Routine steps (walking on during a search, opening a closed receptacle) get no reasoning,
as in ReAct. They never use hidden state (where an object really is).

A plugin environment can give its own reasoning through ``state_info()["expert_reason"]``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable

from sadcli.agent.loop import Decision, EpisodeState


def _a(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _split_obj(name: str) -> tuple[str, str]:
    """``"mug 1"`` -> ("mug", "1")."""
    m = re.match(r"^(.*?)\s+(\d+)$", name.strip())
    return (m.group(1), m.group(2)) if m else (name.strip(), "")


def group_receptacles(names: list[str]) -> str:
    """``["cabinet 1", "cabinet 2", "countertop 1"]`` -> ``"cabinet (1-2), countertop (1)"`` (order kept)."""
    groups: OrderedDict[str, list[int]] = OrderedDict()
    for n in names:
        t, i = _split_obj(n)
        groups.setdefault(t, []).append(int(i) if i.isdigit() else 0)
    parts = []
    for t, ids in groups.items():
        ids = sorted(ids)
        if len(ids) == 1:
            parts.append(f"{t} ({ids[0]})")
        elif ids == list(range(ids[0], ids[-1] + 1)):
            parts.append(f"{t} ({ids[0]}-{ids[-1]})")
        else:
            parts.append(f"{t} ({', '.join(map(str, ids))})")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------- ALFWorld
_RECEPTACLES = re.compile(r"\ban? ([a-z]+ \d+)")
_VERB = {"pick_clean_then_place_in_recep": ("clean", "sinkbasin"),
         "pick_heat_then_place_in_recep": ("heat", "microwave"),
         "pick_cool_then_place_in_recep": ("cool", "fridge")}


def _room(task_text: str) -> list[str]:
    first = task_text.split("Your task is to", 1)[0]
    return _RECEPTACLES.findall(first)


def _alf_plan(s: dict) -> str:
    t, o, r, tog = s.get("task_type"), s.get("object", ""), s.get("receptacle", ""), s.get("toggle", "")
    if t in _VERB:
        verb, tool = _VERB[t]
        return f"To solve the task, I need to find and take {_a(o)}, then {verb} it with {tool}, then put it in/on {r}."
    if t == "pick_two_obj_and_place":
        return (f"To solve the task, I need to find and take the first {o}, then put it in/on {r}, "
                f"then find and take the second {o}, then put it in/on {r}.")
    if t == "look_at_obj_in_light":
        return f"To solve the task, I need to find and take {_a(o)}, then find and use {_a(tog)}."
    return f"To solve the task, I need to find and take {_a(o)}, then put it in/on {r}."


def _alf_search(st: EpisodeState, what: str, places: list[str], target: str, seen: str | None) -> str:
    if seen:
        return f"I saw {_a(what)} in/on {seen} before, so I go back there."
    room = _room(st.task_text)
    likely = [x for x in room if _split_obj(x)[0] in set(places)] or room
    where = group_receptacles(likely)
    return (f"First I need to find {_a(what)}. {_a(what).capitalize()} is more likely to appear in {where}. "
            f"I can check one by one, starting with {target}.")


_WHERE = re.compile(r"(?:\bOn the|\bIn the|You open the|You arrive at) ([a-z]+ \d+)")


def _seen_before(st: EpisodeState, what: str, exclude: set[str]) -> str | None:
    """The last receptacle whose observation listed a ``what`` that we have not used yet."""
    found = None
    for step in st.steps:
        obs = step.get("observation") or ""
        where = _WHERE.search(obs)
        if not where:
            continue
        for n in re.findall(rf"\b{re.escape(what)} (\d+)", obs):
            if f"{what} {n}" not in exclude:
                found = where.group(1)
    return found


def reason_alfworld(st: EpisodeState) -> str | None:
    s, nxt = st.state, st.expert or ""
    obj, rec, tog = s.get("object", ""), s.get("receptacle", ""), s.get("toggle", "")
    ttype = s.get("task_type")
    last = st.steps[-1]["action"] if st.steps else ""
    taken = [a["action"] for a in st.steps if a["action"].startswith("take ")]
    put = [a["action"] for a in st.steps if a["action"].startswith("put ")]
    used = {re.sub(r"^take (.*?) from .*$", r"\1", a) for a in taken}

    if not st.steps:
        plan = _alf_plan(s)
        if nxt.startswith("go to"):
            return plan + " " + _alf_search(st, obj, s.get("object_places", []), nxt[6:], None)
        return plan
    m = re.match(r"^take (.+?) from (.+)$", nxt)
    if m:
        o, n = _split_obj(m.group(1))
        if ttype == "pick_two_obj_and_place" and put:
            return f"Now I find the second {o} ({n}). Next, I need to take it."
        return f"Now I find {_a(o)} ({n}). Next, I need to take it."
    m = re.match(r"^use (.+)$", nxt)
    if m:
        o, n = _split_obj(m.group(1))
        return f"Now I find {_a(o)} ({n}). Next, I need to use it."
    if re.match(r"^(clean|heat|cool) (.+?) with (.+)$", nxt):
        return None  # arrived at the tool: the plan already said what to do here
    lm = re.match(r"^take (.+?) from (.+)$", last)
    if lm:
        o, n = _split_obj(lm.group(1))
        if ttype in _VERB:
            verb, tool = _VERB[ttype]
            return f"Now I take {_a(o)} ({n}). Next, I need to go to {tool} and {verb} it."
        if ttype == "look_at_obj_in_light":
            head = f"Now I take {_a(o)} ({n}). Next, I need to find {_a(tog)}."
            seen = _seen_before(st, tog, set())
            if seen:
                return f"{head} I saw {_a(tog)} in/on {seen} before, so I go there."
            if not nxt.startswith("go to"):
                return head
            room = _room(st.task_text)
            likely = [x for x in room if _split_obj(x)[0] in set(s.get("toggle_places", []))] or room
            return (f"{head} {_a(tog).capitalize()} is more likely to appear in {group_receptacles(likely)}. "
                    f"I can check one by one, starting with {nxt[6:]}.")
        dest = nxt[6:] if nxt.startswith("go to") else rec
        return f"Now I take {_a(o)} ({n}). Next, I need to put it in/on {dest}."
    lm = re.match(r"^(clean|heat|cool) (.+?) with (.+)$", last)
    if lm:
        o, n = _split_obj(lm.group(2))
        dest = nxt[6:] if nxt.startswith("go to") else rec
        return f"Now I {lm.group(1)} {_a(o)} ({n}). Next, I need to put it in/on {dest}."
    lm = re.match(r"^put (.+?) in/on (.+)$", last)
    if lm and ttype == "pick_two_obj_and_place" and len(put) == 1 and nxt.startswith("go to"):
        o, n = _split_obj(lm.group(1))
        seen = _seen_before(st, o, used)
        if seen:
            return f"Now I put the first {o} in/on {lm.group(2)}. Next, I need to find the second {o}. " \
                   f"I saw another {o} in/on {seen}, so I go there."
        return (f"Now I put the first {o} in/on {lm.group(2)}. Next, I need to find the second {o}. "
                f"I have not seen another one yet; I can check one by one, starting with {nxt[6:]}.")
    if st.steps and len(st.steps) == 1 and last == "look" and nxt.startswith("go to"):
        return _alf_search(st, obj, s.get("object_places", []), nxt[6:], None)
    return None


# ---------------------------------------------------------------------------------------------- TextWorldExpress
def reason_twx(st: EpisodeState) -> str | None:
    nxt = st.expert or ""
    plan = st.expert_plan or []
    m = re.match(r"^take (.+)$", nxt)
    if m:
        obj = m.group(1)
        dest = next((re.match(rf"^put {re.escape(obj)} (?:in|on) (.+)$", a).group(1)  # type: ignore[union-attr]
                     for a in plan if re.match(rf"^put {re.escape(obj)} (?:in|on) (.+)$", a)), None)
        if dest:
            return f"The usual place of the {obj} is the {dest}, not here. I need to pick up the {obj}."
        return f"I need the {obj} for the task, so I take it."
    m = re.match(r"^open (.+)$", nxt)
    if m and len(plan) > 1:
        m2 = re.match(r"^put (.+?) (?:in|on) (.+)$", plan[1])
        if m2 and m2.group(2) == m.group(1):
            return f"The {m.group(1)} is closed, so I open it before putting the {m2.group(1)} in it."
    m = re.match(r"^put (.+?) (?:in|on) (.+)$", nxt)
    if m and st.steps and st.steps[-1]["action"].startswith("move "):
        return f"I am now where the {m.group(2)} is, so I put the {m.group(1)} in it."
    m = re.match(r"^move (\w+)$", nxt)
    if m and st.steps and not st.steps[-1]["action"].startswith("move "):
        inventory = (st.state or {}).get("inventory", "")
        for a in plan:
            g = re.match(r"^put (.+?) (?:in|on) (.+)$", a)
            if g and g.group(1) in inventory:
                return (f"I carry the {g.group(1)}, whose usual place is the {g.group(2)}. The {g.group(2)} is "
                        f"not here, so I move {m.group(1)}.")
    return None


# ---------------------------------------------------------------------------------------------- ScienceWorld
def reason_scienceworld(st: EpisodeState) -> str | None:
    nxt = st.expert or ""
    if not st.steps:
        goal = st.task_text.rsplit("\n\n", 1)[-1].strip()
        goal = re.sub(r"^Your task is to ", "", goal).split(". ")[0].rstrip(".")
        return f"The task is to {goal}. I start with: {nxt}."
    m = re.match(r"^focus on (.+)$", nxt)
    if m:
        return f"The {m.group(1)} is what the task is about, so I focus on it."
    m = re.match(r"^(?:open door to|go to) (.+)$", nxt)
    if m and nxt.startswith("open door"):
        return f"I need to go to the {m.group(1)}, so I open the door to it."
    m = re.match(r"^pick up (.+)$", nxt)
    if m:
        return f"I will need the {m.group(1)} for the task, so I pick it up."
    m = re.match(r"^move (.+?) to (.+)$", nxt)
    if m:
        return f"The {m.group(1)} has to be in the {m.group(2)} for the next part of the task."
    m = re.match(r"^(activate|deactivate) (.+)$", nxt)
    if m:
        return f"Now I {m.group(1)} the {m.group(2)}."
    m = re.match(r"^use (.+?) (?:in inventory )?on (.+)$", nxt)
    if m:
        return f"I measure the {m.group(2)} with the {m.group(1)}."
    return None


REASONERS: dict[str, Callable[[EpisodeState], str | None]] = {
    "alfworld": reason_alfworld,
    "twx": reason_twx,
    "scienceworld": reason_scienceworld,
}


class ExpertTeacher:
    """The expert's action, with the environment's reasoning template (or none)."""

    name = "expert"

    def __init__(self, reasoning: bool = True):
        self.reasoning = reasoning

    def reason(self, st: EpisodeState) -> str | None:
        if not self.reasoning:
            return None
        given = (st.state or {}).get("expert_reason")
        if given:
            return str(given)
        fn = REASONERS.get(st.env)
        return fn(st) if fn else None

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        out = []
        for st in states:
            if not st.expert:
                out.append(Decision("", error=f"the {st.env} environment gave no expert action "
                                               "(it has no expert, or the episode left the gold path)"))
                continue
            try:
                reason = self.reason(st)
            except Exception as e:  # noqa: BLE001 - a template bug must not lose the episode
                reason = None
                st.scratch.setdefault("reason_errors", []).append(f"{type(e).__name__}: {e}")
            out.append(Decision(st.expert, reason=reason))
        return out
