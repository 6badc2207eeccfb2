"""Expert reasoning for ALFWorld, in the style of ReAct's ALFWorld prompts, true of what the agent saw.

The environment's search expert (:mod:`sadcli.envs.alfworld_expert`) reports the sub-goal its next
action serves; this module says it in ReAct's words from the task, the room's receptacle list and
earlier observations:

- at the start, the plan and where to search first (``A mug is more likely to appear in cabinet (1-6),
  countertop (1-3). I can check one by one, starting with cabinet 1.`` — commonsense, said as such),
- when something is found (``Now I find a mug (3). Next, I need to take it.``),
- before each sub-goal (``Now I take a mug (3). Next, I need to go to microwave 1 and heat it.``),
- when the plan changes (the likely places were all empty; a remembered object to go back to).

Routine steps — walking on during a search, opening a closed receptacle, the action a thought just
announced — have no thought, as in ReAct. "Now I <verb>" always repeats the action just taken.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from sadcli.agent.loop import EpisodeState

_VERB = {"pick_clean_then_place_in_recep": ("clean", "sinkbasin"),
         "pick_heat_then_place_in_recep": ("heat", "microwave"),
         "pick_cool_then_place_in_recep": ("cool", "fridge")}


def a(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def split_obj(name: str) -> tuple[str, str]:
    """``"mug 1"`` -> ("mug", "1")."""
    m = re.match(r"^(.*?)\s+(\d+)$", name.strip())
    return (m.group(1), m.group(2)) if m else (name.strip(), "")


def group_receptacles(names: list[str]) -> str:
    """``["cabinet 1", "cabinet 2", "countertop 1"]`` -> ``"cabinet (1-2), countertop (1)"`` (order kept)."""
    groups: OrderedDict[str, list[int]] = OrderedDict()
    for n in names:
        t, i = split_obj(n)
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


def _inst(name: str) -> str:
    """``"mug 3"`` -> ``"mug (3)"`` (ReAct's way of naming the instance found)."""
    t, n = split_obj(name)
    return f"{t} ({n})" if n else t


def plan_sentence(s: dict) -> str:
    t, o, r, tog = s.get("task_type"), s.get("object", ""), s.get("receptacle", ""), s.get("toggle", "")
    if t in _VERB:
        verb, tool = _VERB[t]
        return f"To solve the task, I need to find and take {a(o)}, then {verb} it with {tool}, then put it in/on {r}."
    if t == "pick_two_obj_and_place":
        return (f"To solve the task, I need to find and take the first {o}, then put it in/on {r}, "
                f"then find and take the second {o}, then put it in/on {r}.")
    if t == "look_at_obj_in_light":
        return f"To solve the task, I need to find and take {a(o)}, then find and use {a(tog)}."
    return f"To solve the task, I need to find and take {a(o)}, then put it in/on {r}."


def _done(last: str, s: dict, role: str | None) -> str:
    """"Now I take a mug (3)." — what the last action did, in the task's words."""
    m = re.match(r"^take (.+?) from (.+)$", last)
    if m:
        o, n = split_obj(m.group(1))
        if role in ("first", "second"):
            return f"Now I take the {role} {o} ({n})."
        return f"Now I take {a(o)} ({n})."
    m = re.match(r"^(heat|cool|clean) (.+?) with (.+)$", last)
    if m:
        o, n = split_obj(m.group(2))
        return f"Now I {m.group(1)} the {o} ({n})."
    m = re.match(r"^put (.+?) in/on (.+)$", last)
    if m:
        o, n = split_obj(m.group(1))
        return f"Now I put the {o} ({n}) in/on {m.group(2)}."
    return ""


def _search_sentence(what: str, order: list[str], first: bool) -> str:
    likely = group_receptacles(order)
    lead = f"{a(what).capitalize()} is more likely to appear in {likely}."
    verb = "I can check one by one, starting with" if first else "I will check the ones I have not checked yet, starting with"
    return f"{lead} {verb} {order[0]}."


def reason_alfworld(st: EpisodeState) -> str | None:
    s = st.state or {}
    it = s.get("intent")
    if not it:
        return None  # the handcoded expert: no intent to explain
    kind = it["kind"]
    last = st.steps[-1]["action"] if st.steps else ""
    obj = s.get("object", "")
    announced: dict = st.scratch.setdefault("announced", {})
    two = s.get("task_type") == "pick_two_obj_and_place"

    if not st.steps:
        plan = plan_sentence(s)
        if kind == "search":
            announced[it["what"]] = list(it["order"])
            what = f"the first {obj}" if two else a(obj)
            return f"{plan} First I need to find {what}. {_search_sentence(it['what'], it['order'], True)}"
        return plan
    if kind == "search":
        what = it["what"]
        role = it.get("role")
        if what not in announced:
            announced[what] = list(it["order"])
            head = _done(last, s, "first" if two else None)
            if role == "lamp":
                need = f"Next, I need to find {a(what)}."
            elif role == "second":
                need = f"Next, I need to find the second {what}. I have not seen another {what} yet."
            else:
                need = f"Next, I need to find {a(what)}."
            return " ".join(x for x in (head, need, _search_sentence(what, it["order"], True)) if x)
        if it["receptacle"] not in announced[what]:
            announced[what] = list(it["order"])
            return (f"The places I checked had no {what}. "
                    f"I will check the other receptacles, starting with {it['receptacle']}.")
        if role == "second" and last.startswith("put "):
            head = _done(last, s, None)
            return (f"{head} Next, I need to find the second {what}. I have not seen another {what} yet. "
                    f"{_search_sentence(what, it['order'], False)}")
        return None  # walking on along the announced search
    if kind == "take":
        inst = it["object"]
        o, n = split_obj(inst)
        role = it.get("role")
        if role == "first":
            out = f"Now I find the first {o} ({n}). Next, I need to take it."
            obs = st.steps[-1].get("observation") or ""
            others = [f"{o} {k}" for k in re.findall(rf"\b{re.escape(o)} (\d+)", obs) if k != n]
            if others:
                out += f" I can find the second {o} ({split_obj(others[0])[1]}) later in {it['receptacle']}."
            return out
        if role == "second":
            return f"Now I find the second {o} ({n}). Next, I need to take it."
        return f"Now I find {a(o)} ({n}). Next, I need to take it."
    if kind == "return":
        inst, rec, role = it["object"], it["receptacle"], it.get("role")
        o, _n = split_obj(inst)
        head = _done(last, s, "first" if two and role == "second" else None)
        if role == "lamp":
            need = f"Next, I need to find {a(o)}."
        elif role == "second":
            need = f"Next, I need to find the second {o}."
        else:
            need = f"Next, I need to find {a(o)}."
        return f"{head} {need} I saw {a(o)} ({_n}) in/on {rec} before, so I go to {rec}.".strip()
    if kind == "tool":
        head = _done(last, s, None)
        return f"{head} Next, I need to go to {it['receptacle']} and {it['verb']} it.".strip()
    if kind == "place":
        role = None
        if two and last.startswith("take "):
            role = "second" if any(x["action"].startswith("put ") for x in st.steps) else "first"
        head = _done(last, s, role)
        return f"{head} Next, I need to put it in/on {it['receptacle']}.".strip()
    if kind == "use":
        o, n = split_obj(it["object"])
        if last.startswith("take "):
            return f"{_done(last, s, None)} The {o} ({n}) is here. Next, I need to use it."
        return f"Now I find {a(o)} ({n}). Next, I need to use it."
    if kind == "put" and not last.startswith(("go to", "open", "examine")):
        return f"{_done(last, s, None)} Next, I need to put it in/on {it['receptacle']}.".strip()
    return None  # open, apply, put right after arriving: routine


__all__ = ["reason_alfworld", "group_receptacles", "plan_sentence", "a", "split_obj"]
