"""Expert reasoning for TextWorldExpress: what the agent has seen, plus commonsense stated as such.

``twc``: the environment's expert (:mod:`sadcli.envs.twc_expert`) reports its intent — take an object
seen here, open or fill a receptacle of this room, walk to a room where a receptacle was seen, explore a
room heard of through an exit — and the template explains it with the observations that justify it
("I saw the chest of drawers in the bedroom"). Where an object belongs is commonsense and is said so
("the clean socks usually belong in the chest of drawers"); a receptacle not seen yet is something to
look for ("I have not seen a hat rack yet"), never a place. Other games: a short thought when the
action concerns something named in the task and visible now.
"""

from __future__ import annotations

import re

from sadcli.agent.loop import EpisodeState

_ROOM = re.compile(r"^You are in the ([a-z][a-z ]*?)\.", re.M)


def _room_descs(st: EpisodeState) -> list[str]:
    texts = [st.task_text] + [s.get("observation") or "" for s in st.steps]
    return [t for t in texts if _ROOM.search(t)]


def _current_room(st: EpisodeState) -> str | None:
    descs = _room_descs(st)
    m = _ROOM.search(descs[-1]) if descs else None
    return m.group(1) if m else None


def _seen_anywhere(st: EpisodeState, name: str) -> bool:
    texts = [st.task_text] + [s.get("observation") or "" for s in st.steps]
    return any(re.search(rf"\b{re.escape(name)}\b", t) for t in texts)


def _join(names: list[str]) -> str:
    names = [f"the {n}" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def reason_twc(st: EpisodeState) -> str | None:
    info = st.state or {}
    it = info.get("intent")
    if not it:
        return None
    belongs: dict = info.get("belongs") or {}
    first = not st.steps
    head = "My task is to put the objects that are out of place in their usual locations. " if first else ""
    last = st.steps[-1]["action"] if st.steps else ""
    kind = it["kind"]
    if kind == "take":
        obj, rec = it["object"], it["receptacle"]
        if last.startswith("take "):
            return f"I also take the {obj}; it usually belongs in the {rec}."
        return (f"{head}I see the {obj} here, out of place: it usually belongs in the {rec}. "
                f"So I take the {obj}.")
    if kind == "open":
        return (f"{head}I carry the {it['object']}, which usually belongs in the {it['receptacle']}. "
                f"The {it['receptacle']} is here and closed, so I open the {it['receptacle']}.")
    if kind == "put":
        if last == f"open {it['receptacle']}":
            return None  # routine: the thought before the open said what comes next
        return (f"{head}The {it['receptacle']} is here, and the {it['object']} usually belongs in it. "
                f"So I put the {it['object']} in the {it['receptacle']}.")
    if kind in ("deliver", "explore") and last.startswith("move ") and not first:
        return None  # walking on along a route already explained
    d, room, via = it["direction"], it["room"], it["next_room"]
    way = f", so I move {d}" if via == room else f"; the way there is {d}, so I move {d}"
    if kind == "deliver":
        objs, recs = it["objects"], it["receptacles"]
        parts = [f"{head}I carry {_join(objs)}."]
        for o, r in zip(objs, recs, strict=False):
            parts.append(f"The {o} usually belongs in the {r}.")
        uniq = list(dict.fromkeys(recs))
        parts.append(f"I saw {_join(uniq)} in the {room}{way}.")
        return " ".join(parts)
    # explore
    carrying = it.get("carrying") or []
    parts = [head.strip()] if head else []
    if carrying:
        need = list(dict.fromkeys(belongs.get(o, "") for o in carrying if belongs.get(o)))
        unseen = [r for r in need if not _seen_anywhere(st, r)]
        parts.append(f"I carry {_join(carrying)}.")
        if unseen:
            parts.append(f"I have not seen {_join(unseen)} yet, where {'it' if len(carrying) == 1 else 'they'} "
                         "would usually go.")
    elif first:
        parts.append("I see nothing out of place here.")
    else:
        parts.append("Nothing else here needs to be put away.")
    parts.append(f"I have not explored the {room} yet{way} to look there.")
    return " ".join(p for p in parts if p)


def reason_twx_other(st: EpisodeState) -> str | None:
    """Games other than twc: a thought only when the action's object is named in the task and seen now."""
    nxt = st.expert or ""
    task = st.task_text
    last_obs = (st.steps[-1].get("observation") if st.steps else st.task_text) or ""
    m = re.match(r"^(take|open|put|cook|slice|chop|eat|read) (?:the )?(.+?)(?: (?:in|on|with|from) .+)?$", nxt)
    if not m:
        return None
    verb, obj = m.group(1), m.group(2)
    if obj in ("door",) or not re.search(rf"\b{re.escape(obj)}\b", task.split("\n\n")[-1]):
        return None
    if not re.search(rf"\b{re.escape(obj)}\b", last_obs):
        return None
    return f"The task names the {obj}, and I see it here, so I {verb} the {obj}."


def reason_twx(st: EpisodeState) -> str | None:
    if (st.state or {}).get("intent") is not None or (st.state or {}).get("game") == "twc":
        return reason_twc(st)
    return reason_twx_other(st)
