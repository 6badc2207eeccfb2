"""Expert reasoning for ScienceWorld: a thought only where the agent has seen what it names.

The expert follows the benchmark's gold path, which acts on things the agent may not have seen yet
(``pick up thermometer`` right after entering a room). Such steps get no thought: a thought names a
thing only when the task or an earlier observation named it, and says what the next action does.
"""

from __future__ import annotations

import re

from sadcli.agent.loop import EpisodeState

_ARGS = re.compile(r"\s+(?:to|on|in|into|with|from)\s+")


def _texts(st: EpisodeState) -> list[str]:
    return [st.task_text] + [s.get("observation") or "" for s in st.steps]


def _seen(st: EpisodeState, phrase: str) -> bool:
    return any(re.search(rf"\b{re.escape(phrase)}\b", t) for t in _texts(st))


def _room_now(st: EpisodeState) -> tuple[str | None, str]:
    """(current room, the latest description of it since entering)."""
    room, desc = None, ""
    for t in _texts(st):
        m = re.search(r"This room is called the ([a-z ]+?)\.", t)
        if m:
            room, desc = m.group(1), t
        m = re.match(r"You move to the ([a-z ]+?)\.", t)
        if m:
            room, desc = m.group(1), ""
    return room, desc


def _phrases(args: str) -> list[str]:
    parts = [p for p in _ARGS.split(args) if p]
    return [re.sub(r"^(?:the|a|an)\s+", "", p.replace(" in inventory", "")) for p in parts]


def _with_articles(args: str) -> str:
    """``thermometer in inventory on substance in metal pot`` -> ``the thermometer on the substance in the metal pot``."""
    args = args.replace(" in inventory", "")
    return "the " + _ARGS.sub(lambda m: f"{m.group(0)}the ", args)


def reason_scienceworld(st: EpisodeState) -> str | None:
    nxt = (st.expert or "").strip()
    task = st.task_text.rsplit("\n\n", 1)[-1].strip()
    done = st.scratch.setdefault("sw_said", set())
    room, desc = _room_now(st)
    if not st.steps:
        goal = re.sub(r"^Your task is to ", "", task).split(". ")[0].rstrip(".")
        head = f"The task is to {goal}."
    else:
        head = ""

    def out(*parts: str) -> str | None:
        text = " ".join(p for p in (head, *parts) if p)
        return text or None

    m = re.match(r"^open door to (.+)$", nxt)
    if m:
        r = m.group(1)
        if re.search(rf"door to the {re.escape(r)} \(that is closed\)", desc):
            return out(f"I have not looked in the {r} yet. The door to the {r} is closed, so I open the door to the {r}.")
        return out()  # a door the agent has not been shown (the gold path knows the map)
    if nxt == "look around":
        last = (st.steps[-1].get("observation") or "") if st.steps else ""
        if room and ("look", room) not in done and last.startswith(f"You move to the {room}."):
            done.add(("look", room))
            return out(f"I am in the {room} now. I look around to see what is here.")
        return out()
    m = re.match(r"^(?:focus on) (.+)$", nxt)
    if m:
        names = _phrases(m.group(1))
        if all(_seen(st, n) for n in names):
            why = "The task says to focus on the substance" if "focus on the substance" in task else \
                "The task asks me to focus on what it is about"
            return out(f"{why}, so I focus on {_with_articles(m.group(1))}.")
        return out()
    m = re.match(r"^(pick up|move|activate|deactivate|open|close|read|mix|pour|use|examine|connect|"
                 r"eat|heat|cool|plant|water) (.+)$", nxt)
    if m:
        verb, args = m.group(1), m.group(2)
        names = _phrases(args)
        if not names or not all(_seen(st, n) for n in names):
            return out()
        key = (verb, args)
        if key in done:
            return out()  # a repeated measurement or step: said once
        done.add(key)
        if verb == "pick up":
            here = desc and re.search(rf"\b{re.escape(names[0])}\b", desc)
            lead = f"I see the {names[0]} here. " if here else ""
            return out(f"{lead}I will need the {names[0]}, so I pick up the {names[0]}.")
        return out(f"Next I {verb} {_with_articles(args)}.")
    if nxt.startswith("wait") and "wait" not in done:
        done.add("wait")
        return out("Now I wait for a while and check again.")
    return out()
