"""Reasoning for the HotPotQA expert, quoting only what the question and the retrieved pages said.

The expert's actions come from the supporting facts (which pages to search, what to look up, the gold
answer); its thoughts only name what the agent has read: an entity is named when the question or an
earlier observation names it, a fact is quoted from a retrieved sentence, and the answer is given with the
sentence that contains it. When the retrieved text does not name the next page, the thought says so in
general words instead of naming it.
"""

from __future__ import annotations

import re

from sadcli.agent.loop import EpisodeState
from sadcli.envs.wikiqa import sentences

_RESULT = re.compile(r"^\(Result \d+ / \d+\)\s*")


def _core(title: str) -> str:
    return re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()


def _arg(action: str) -> str:
    return action[action.index("[") + 1: -1] if "[" in action else ""


def _seen(st: EpisodeState) -> list[str]:
    """The sentences retrieved so far, oldest first (search and lookup observations)."""
    out: list[str] = []
    for s in st.steps:
        obs = s.get("observation") or ""
        if s["action"].startswith(("search[", "lookup[")) and not obs.startswith(("Could not find", "No more",
                                                                                 "No page")):
            out += sentences(_RESULT.sub("", obs))
    return out


def _page_sentences(st: EpisodeState, title: str) -> list[str]:
    """The sentences retrieved from page ``title`` (its search and the lookups after it)."""
    out: list[str] = []
    on = False
    for s in st.steps:
        a, obs = s["action"], s.get("observation") or ""
        if a.startswith("search["):
            on = _arg(a) == title and not obs.startswith("Could not find")
            if on:
                out += sentences(obs)
        elif a.startswith("lookup[") and on and obs.startswith("(Result"):
            out += sentences(_RESULT.sub("", obs))
    return out


def _stop(sentence: str) -> str:
    """The sentence with a full stop, so that what follows it reads as a new sentence."""
    return sentence if sentence.rstrip('"\')').endswith((".", "!", "?")) else sentence + "."


def _contains(text: str, name: str) -> bool:
    return bool(name) and name.lower() in text.lower()


def _first_with(sents: list[str], needle: str) -> str | None:
    for s in reversed(sents):
        if _contains(s, needle):
            return s
    return None


def reason_hotpotqa(st: EpisodeState) -> str | None:
    nxt = st.expert or ""
    plan = st.expert_plan or []
    question = st.task_text
    qtype = (st.state or {}).get("type")
    seen = _seen(st)
    context = question + " " + " ".join(seen)
    searches = [_arg(a) for a in plan if a.startswith("search[")]
    done_searches = [_arg(s["action"]) for s in st.steps if s["action"].startswith("search[")]

    if nxt.startswith("search["):
        title = _arg(nxt)
        name = _core(title)
        if not st.steps:
            if qtype == "comparison" and len(searches) >= 2 and all(_contains(question, _core(t)) for t in searches):
                a, b = (_core(t) for t in searches[:2])
                return f"I need to search {a} and {b}, find what is asked about each, then compare them."
            if _contains(question, name):
                return f"I need to search {name} first, then follow what it says to answer it."
            return "I need to find where this question starts, so I first search what it describes."
        prev = done_searches[-1] if done_searches else ""
        prev_sents = _page_sentences(st, prev)
        if qtype == "comparison":
            fact = prev_sents[0] if prev_sents else None
            head = f"{_stop(fact)} " if fact else ""
            if _contains(context, name):
                return f"{head}Now I need to search {name}."
            return f"{head}Now I need to search what else the question names."
        link = _first_with(prev_sents, name)
        if link:
            return f"It says: {_stop(link)} So next I need to search {name}."
        if _contains(context, name):
            return f"Now I need to search {name} to find the answer."
        return "It does not say outright what to search next; I search what it points to."

    if nxt.startswith("lookup["):
        kw = _arg(nxt)
        if st.steps and st.steps[-1]["action"] == nxt:
            return None  # the next result of the same lookup: routine
        page = _core(done_searches[-1]) if done_searches else "it"
        if _contains(context, kw):
            return f"So far {page} says nothing of what I need. I will look up {kw}."
        return f"So far {page} says nothing of what I need, so I look further into it."

    if nxt.startswith("finish["):
        answer = _arg(nxt)
        if answer.lower() in ("yes", "no"):
            facts = [(_page_sentences(st, t) or [""])[0] for t in dict.fromkeys(done_searches)]
            facts = [_stop(f) for f in facts if f]
            return (" ".join(facts[-2:]) + f" Comparing them, the answer is {answer}.").strip()
        where = _first_with(seen, answer)
        if where:
            return f"{_stop(where)} So the answer is {answer}."
        return f"From what I found, the answer is {answer}."
    return None
