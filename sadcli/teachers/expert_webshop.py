"""Reasoning for the WebShop expert, written only from what the shopper has seen.

The expert's actions know the goal product (like ALFWorld's expert knows the PDDL goal); its thoughts
do not: they quote the instruction (the task text) and the current page — the titles, prices and
option values shown — and say why the next action follows: what to search for, why an item looks
right or why the results do not, which options the instruction asks for. Routine clicks (the second
option, Buy Now after the options) get no thought, as in ReAct.
"""

from __future__ import annotations

import re

from sadcli.agent.loop import EpisodeState

_INSTR = re.compile(r"Instruction:\s*\[SEP\]\s*(.*?)\s*\[SEP\]\s*Search\s*$", re.S)
_FILLER = re.compile(r"^\s*(?:find me|i am looking for|i'm looking for|i need|i want|i would like|"
                     r"looking for|get me|buy me|show me|search for|please find)\s+", re.I)
_WORD = re.compile(r"[a-z0-9][a-z0-9&'\-]*")
_STOP = frozenset("a an and the for with of in on to is that it its this by from or as at be are".split())


def parse_instruction(task_text: str) -> dict:
    """Split a WebShop instruction into its wish, its options ``{name: value}`` and its price bound."""
    m = _INSTR.search(task_text or "")
    text = m.group(1) if m else (task_text or "")
    price = None
    pm = re.search(r",? and price lower than ([\d.]+) dollars", text)
    if pm:
        price, text = pm.group(1), text[: pm.start()]
    options: dict[str, str] = {}
    om = re.search(r" with ((?:(?!with )[a-z ]){1,30}: .*)$", text)  # option names are short: "color", "fit type"
    if om:
        for part in om.group(1).split(", and "):
            name, _, value = part.partition(": ")
            if value:
                options[name.strip()] = value.strip()
        text = text[: om.start()]
    wish = _FILLER.sub("", text.strip()).rstrip(". ")
    return {"wish": wish, "options": options, "price": price}


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _short(title: str, n: int = 10) -> str:
    words = title.split()
    return " ".join(words[:n]) + (" ..." if len(words) > n else "")


def _budget(price: str | None) -> str:
    return f" under ${price}" if price else ""


def _opts_text(options: dict) -> str:
    return " and ".join(f"{k}: {v}" for k, v in options.items())


def reason_webshop(st: EpisodeState) -> str | None:
    nxt = st.expert or ""
    s = st.state or {}
    goal = parse_instruction(st.task_text)
    page = s.get("page")
    wish, options, price = goal["wish"], goal["options"], goal["price"]

    if page == "search" and nxt.startswith("search["):
        n = len(s.get("searches") or [])
        if n == 0:
            want = wish + (f", with {_opts_text(options)}" if options else "") + _budget(price)
            return f"I am looking for {want}. I will search with its key words first."
        if n == 1 and options and all(v.lower() in nxt.lower() for v in options.values()):
            return (f"The first results did not show anything that fits, so I search again and add what the "
                    f"instruction asks for: {', '.join(options.values())}.")
        return "Those results did not show anything that fits either, so I search with more specific words."

    if page == "results":
        results = {r[0].lower(): r for r in s.get("results") or []}
        m = re.match(r"^click\[(.+)\]$", nxt)
        target = results.get(m.group(1).lower()) if m else None
        if target is not None:
            asin, title, cost = target
            shared = [w for w in dict.fromkeys(_words(wish)) if w in set(_words(title))]
            why = f"its title mentions {', '.join(shared[:5])}" if shared else "it is what I need"
            money = f" and it costs {cost}" + (f", below ${price}" if price else "")
            tried = len(s.get("searches") or []) >= 3 and s.get("page_no", 1) > 1
            if tried and not shared:
                return f"I could not find a closer match, so I will try {asin}."
            return f"{asin} '{_short(title)}' looks right: {why}{money}. I will open it."
        if nxt == "click[Back to Search]":
            return (f"None of the items on page {s.get('page_no', 1)} is {wish}"
                    f"{' with ' + _opts_text(options) if options else ''}; I will go back and refine the search.")
        if nxt == "click[Next >]":
            return f"No item on page {s.get('page_no', 1)} fits yet; I will look at the next page."
        return None

    if page == "item":
        item = s.get("item") or {}
        last = st.steps[-1]["action"] if st.steps else ""
        if not last.lower().startswith("click[") or last.lower() in ("click[< prev]",):
            return None
        just_opened = last[6:-1].lower() == str(item.get("asin", "")).lower()
        if not just_opened:
            return None
        names = list((item.get("options") or {}).keys())
        if nxt == "click[Buy Now]":
            if names and not options:
                return (f"This item costs {item.get('price')}{', within my budget' if price else ''}; the instruction "
                        f"names none of its {', '.join(names)} options, so I can buy it as it is.")
            return (f"This item fits the instruction and costs {item.get('price')}"
                    f"{_budget(price) and ', within my budget'}. I will buy it.")
        picks = [f"{k}: {v}" for k, v in options.items() if k in names] or list(options.values())
        return (f"This item has {', '.join(names)} options; the instruction asks for these: {' and '.join(picks)}. "
                f"I select {'them' if len(picks) > 1 else 'it'} and then buy it.")
    return None
