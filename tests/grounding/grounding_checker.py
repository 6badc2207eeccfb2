"""A grounding checker for expert reasoning, independent of the templates that write it.

``check_record(record) -> list[Violation]`` reads a schema-v1 trajectory (``task``, ``steps`` with
``reason`` / ``action`` / ``observation``) and checks every sentence of every thought against what the
agent had been shown *before* that step: the task text and the earlier observations (never later ones,
never the game state). Rules:

- ``unseen-entity``: a thing named in a factual clause (``the chest of drawers``, ``cabinet 3``,
  ``cabinet (1-6)``) never appeared in the task or an earlier observation. Clauses of commonsense
  (``usually``, ``more likely``) may name kinds of things the agent has not seen, and exploration
  clauses (``I have not seen a hat rack yet``) may name what is looked for; numbered instances must be
  seen everywhere.
- ``false-negative``: ``I have not seen X yet`` although an earlier observation showed X.
- ``false-claim``: ``I saw X in/on Y`` with no earlier observation showing both; ``Now I find X (n)``
  / ``X is here`` not in the latest observation; ``X is closed`` while the last word on X says otherwise;
  ``I carry X`` without having picked it up; ``Now I <verb> X`` when the last action was not that.
- ``wrong-object``: finding/taking a kind of object the task does not name.
- ``plan-mismatch``: a stated plan (``so I move west``, ``so I go to desk 1``, ``starting with
  drawer 1``, ``Next, I need to take it``) that the next action does not carry out; ``starting with X``
  where X is not among the places the same sentence listed.

Reuse for another environment: call ``check_record`` on its records; pass ``extra_rules`` (functions
``(ctx) -> list[Violation]``) for environment-specific claims. ``stats(records)`` gives coverage.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    id: str
    step: int
    sentence: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.id} step {self.step} [{self.rule}] {self.detail}: {self.sentence!r}"


@dataclass
class Context:
    """What the agent had been shown when it wrote the thought of step ``step``."""

    id: str
    step: int
    task: str
    observations: list[str]      # earlier observations, oldest first
    actions: list[str]           # earlier actions
    next_action: str
    sentence: str
    thought: str = ""            # the whole thought the sentence belongs to

    @property
    def shown(self) -> list[str]:
        return [self.task, *self.observations]

    @property
    def last(self) -> str:
        return self.observations[-1] if self.observations else self.task

    def seen(self, phrase: str, texts: list[str] | None = None) -> bool:
        pat = re.compile(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", re.I)
        return any(pat.search(t) for t in (self.shown if texts is None else texts))

    def goal_line(self) -> str:
        m = re.search(r"Your task is to:?\s*(.*)", self.task, re.S)
        return m.group(1) if m else self.task


COMMONSENSE = re.compile(r"\b(usually|typically|often|more likely|likely to|belongs?|would go|would usually)\b", re.I)
EXPLORATION = re.compile(r"\b(not seen|not found|have not|haven't|not yet|yet|explore|not in any|had no|"
                         r"will look|to look|look for|look in|check)\b", re.I)
_STOP = (r"is|are|was|were|in|on|in/on|to|so|and|which|where|that|but|here|there|usually|belongs?|yet|with|it|"
         r"from|for|now|not|before|later|would|whose|or|I|is here|again|first|then|at|into|by|as|under|says|asks|"
         r"names|mentions|needs")
_PHRASE = re.compile(rf"\b(?:the|a|an|another)\s+((?:(?!(?:{_STOP})\b)[a-z][a-z-]*\s?)+)", re.I)
_GROUP = re.compile(r"\b([a-z]+) \((\d+(?:\s*-\s*\d+)?(?:,\s*\d+)*)\)")
_INSTANCE = re.compile(r"\b([a-z]+) (\d+)\b")
GENERIC = {"task", "way", "places", "place", "ones", "other receptacles", "receptacles", "objects", "object",
           "room", "first", "second", "next part", "while", "plan", "rest", "one", "same", "goal", "items",
           "usual locations", "usual location", "substance"}
_ORDINAL = re.compile(r"^(?:first|second|other|same)\s+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text.strip()) if s.strip()]


def clauses(sentence: str) -> list[str]:
    return [c.strip() for c in re.split(r";|,\s+(?=but\b|so\b|and\b|where\b|which\b)", sentence) if c.strip()]


def instances(text: str) -> list[str]:
    """Numbered things a sentence names: ``mug (3)``, ``cabinet (1-3)``, ``drawer (1, 4)``, ``desk 2``."""
    out = []
    for kind, nums in _GROUP.findall(text):
        for part in re.split(r",\s*", nums):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-"))
                out += [f"{kind} {i}" for i in range(lo, hi + 1)]
            else:
                out.append(f"{kind} {int(part)}")
    stripped = _GROUP.sub("", text)
    out += [f"{k} {n}" for k, n in _INSTANCE.findall(stripped)]
    return out


def phrases(text: str) -> list[str]:
    """Things named with an article (``the chest of drawers`` is read as ``chest``... ``of drawers``)."""
    text = _GROUP.sub(lambda m: m.group(1), text)
    out = []
    for m in _PHRASE.finditer(text):
        p = _ORDINAL.sub("", m.group(1).strip().lower())
        p = re.sub(r"\s+\d+$", "", p).strip()
        # "chest of drawers": the phrase stops at "of"? keep "of" inside a name
        tail = text[m.end():]
        mo = re.match(r"of ([a-z]+(?: [a-z]+)?)", tail)
        if mo and p and not p.endswith("usual place"):
            p = f"{p} of {mo.group(1).split(' ')[0]}"
        if p and p not in GENERIC:
            out.append(p)
    return out


def _norm_action(a: str) -> str:
    a = a.lower().strip().rstrip(".")
    a = re.sub(r"\b(the|a|an)\s+", "", a)
    a = a.replace(" in inventory", "")  # ScienceWorld's locator for a carried thing
    a = re.sub(r"\(\s*(\d+)\s*\)", r"\1", a)
    return " ".join(a.split())


VERBS = ("move", "go to", "open", "take", "put", "use", "heat", "cool", "clean", "pick up", "focus on",
         "activate", "deactivate", "read", "mix", "pour", "examine", "look around", "close", "wait")
_PLAN = re.compile(rf"\b(?:so I|So I|Next I|next I|then I|I will now|I now)\s+((?:{'|'.join(VERBS)})\b[^.;]*)")


# ---------------------------------------------------------------------------------------------- rules
def rule_entities(ctx: Context) -> list[Violation]:
    out = []
    for cl in clauses(ctx.sentence):
        commonsense = bool(COMMONSENSE.search(cl))
        exploring = bool(EXPLORATION.search(cl))
        for inst in instances(cl):
            if not ctx.seen(inst):
                out.append(_v(ctx, "unseen-entity", f"{inst!r} was never shown"))
        if commonsense or exploring:
            continue
        for p in phrases(cl):
            if not ctx.seen(p) and not ctx.seen(p.split(" of ")[0] if " of " in p else p):
                out.append(_v(ctx, "unseen-entity", f"{p!r} was never shown"))
    return out


def rule_negatives(ctx: Context) -> list[Violation]:
    out = []
    for m in re.finditer(r"\b(?:have not|haven't) (?:seen|found) ((?:the|a|an|another) [^.;,]+?)(?: yet|[.;,]|$)",
                         ctx.sentence):
        obs = ctx.observations
        for p in phrases(m.group(1)):
            if m.group(1).startswith("another"):
                used = {i for a in ctx.actions for i in instances(a)}
                seen = {i for o in obs for i in instances(o) if i.rsplit(" ", 1)[0] == p} - used
                if seen:
                    out.append(_v(ctx, "false-negative", f"another {p} was shown: {sorted(seen)}"))
            elif ctx.seen(p, obs):
                out.append(_v(ctx, "false-negative", f"{p!r} was shown earlier"))
    return out


def rule_claims(ctx: Context) -> list[Violation]:
    out, s = [], ctx.sentence
    # I saw X in/on Y
    for m in re.finditer(r"\bI saw ((?:the|a|an|another) [^.;]+?) in(?:/on)? (?:the )?([a-z]+(?: [a-z]+)*?(?: \d+)?)"
                         r"(?: before)?(?=[.;,]| so| before|$)", s):
        xs = instances(m.group(1)) or phrases(m.group(1))
        y = m.group(2)
        ok = any(all(ctx.seen(x, [o]) for x in xs) and _describes(o, y) for o in ctx.shown)
        if not ok:
            out.append(_v(ctx, "false-claim", f"no earlier observation shows {xs} with {y!r}"))
    # Now I find X (n) / The X (n) is here / I see the X here
    for m in re.finditer(r"\b(?:Now I find|I find) ((?:the (?:first|second) |an? )?[a-z]+ \(\d+\))", s):
        for inst in instances(m.group(1)):
            if not ctx.seen(inst, [ctx.last]):
                out.append(_v(ctx, "false-claim", f"{inst!r} is not in the latest observation"))
    for m in re.finditer(r"\b(?:I see|The) ((?:the )?[a-z][a-z ]*?(?: \(\d+\))?) (?:is )?here\b", s):
        if m.group(1).startswith("nothing"):
            continue
        names = instances(m.group(1)) or phrases("the " + m.group(1).removeprefix("the "))
        here = _latest_place(ctx)
        for n in names:
            if not ctx.seen(n, [here]):
                out.append(_v(ctx, "false-claim", f"{n!r} is not in the latest description of this place"))
    # X is (here and) closed
    for m in re.finditer(r"\bThe ([a-z][a-z ]*?(?: \d+)?) is (?:here and )?closed\b", s):
        name = m.group(1)
        last = None
        for o in ctx.shown:
            if re.search(rf"\b{re.escape(name)}\b(?: that)? is closed|{re.escape(name)} \(that is closed\)", o):
                last = "closed"
            if re.search(rf"You open the {re.escape(name)}\b|{re.escape(name)} is (?:now )?open", o):
                last = "open"
        if last != "closed":
            out.append(_v(ctx, "false-claim", f"{name!r} was not last shown closed"))
    # I carry X
    for m in re.finditer(r"\bI carry ((?:the [a-z ]+?)(?:(?:,| and) the [a-z ]+?)*)(?=[.,;]|$)", s):
        for p in phrases(m.group(1)):
            took = [i for i, o in enumerate(ctx.observations)
                    if re.search(rf"You (?:take|pick up) the {re.escape(p)}\b", o)]
            put = [i for i, o in enumerate(ctx.observations) if re.search(rf"You put the {re.escape(p)}\b", o)]
            if not took or (put and put[-1] > took[-1]):
                out.append(_v(ctx, "false-claim", f"the agent does not carry {p!r}"))
    # Now I <verb> ...: the action just taken
    m = re.search(r"\bNow I (take|put|heat|cool|clean|open|use)\b([^.]*)", s)
    if m:
        prev = ctx.actions[-1] if ctx.actions else ""
        if not prev.startswith(m.group(1)):
            out.append(_v(ctx, "false-claim", f"says it did {m.group(1)!r}, last action was {prev!r}"))
        for inst in instances(m.group(2)):
            if inst not in prev:
                out.append(_v(ctx, "false-claim", f"{inst!r} is not in the last action {prev!r}"))
    # I am in the R now
    for m in re.finditer(r"\bI am (?:now )?in the ([a-z ]+?)(?: now)?\b[.,]", s):
        r = m.group(1)
        if not re.search(rf"(?:You move to the|This room is called the|You are in the) {re.escape(r)}\b", ctx.last):
            out.append(_v(ctx, "false-claim", f"the latest observation does not place the agent in {r!r}"))
    return out


def rule_object_class(ctx: Context) -> list[Violation]:
    out = []
    goal = ctx.goal_line()
    for m in re.finditer(r"\b(?:find|take) (?:the (?:first|second) |an? |another )([a-z]+)\b", ctx.sentence):
        kind = m.group(1)
        if kind in ("it", "one"):
            continue
        if "Your task is to" in ctx.task and not re.search(rf"\b{re.escape(kind)}s?\b", goal):
            out.append(_v(ctx, "wrong-object", f"the task names no {kind!r}"))
    return out


def rule_plans(ctx: Context) -> list[Violation]:
    out, s, nxt = [], ctx.sentence, _norm_action(ctx.next_action)
    for m in _PLAN.finditer(s):
        said = _norm_action(m.group(1))
        said = re.sub(r"\s+(?:to look there|toward it|to look)$", "", said)
        if said in ("go there",):
            continue  # resolved below
        if said != nxt:
            out.append(_v(ctx, "plan-mismatch", f"says {said!r}, next action is {nxt!r}"))
    m = re.search(r"\bI saw [^.]*? in(?:/on)? ([a-z]+ \d+)[^.]*?\bso I go there\b", s)
    if m and nxt != f"go to {m.group(1)}":
        out.append(_v(ctx, "plan-mismatch", f"says it goes to {m.group(1)!r}, next action is {nxt!r}"))
    m = re.search(r"\bstarting with ([a-z]+ \d+)", s)
    if m:
        target = m.group(1)
        if nxt not in (f"go to {target}", f"open {target}", f"examine {target}"):
            out.append(_v(ctx, "plan-mismatch", f"starts with {target!r}, next action is {nxt!r}"))
        before = ctx.thought[: ctx.thought.find(s)] if s in ctx.thought else ""
        listed = instances(before + s[: m.start()])
        if listed and target not in listed:
            out.append(_v(ctx, "plan-mismatch", f"{target!r} is not among the places listed {listed}"))
    m = re.search(r"\bNext, I need to (take|use) it\b", s)
    if m and not nxt.startswith(m.group(1)):
        out.append(_v(ctx, "plan-mismatch", f"next sub-goal {m.group(1)!r}, next action is {nxt!r}"))
    # reaching X: `go to X`, or `examine X` where X shares a spot with where the agent stands (ALFWorld
    # then offers no `go to X`; `examine X` shows it, as in the search rule above)
    m = re.search(r"\bNext, I need to go to ([a-z]+ \d+)", s)
    if m and not (nxt in (f"go to {m.group(1)}", f"examine {m.group(1)}") or nxt.endswith(f"with {m.group(1)}")):
        out.append(_v(ctx, "plan-mismatch", f"next sub-goal is {m.group(1)!r}, next action is {nxt!r}"))
    m = re.search(r"\bNext, I need to put it in/on ([a-z]+ \d+)", s)
    if m and nxt not in (f"go to {m.group(1)}", f"open {m.group(1)}", f"examine {m.group(1)}") \
            and not nxt.endswith(f"in/on {m.group(1)}"):
        out.append(_v(ctx, "plan-mismatch", f"next sub-goal is {m.group(1)!r}, next action is {nxt!r}"))
    m = re.search(r"\bNext, I need to find\b", s)
    if m and not re.match(r"^(go to|open|examine|take|use)\b", nxt):
        out.append(_v(ctx, "plan-mismatch", f"a search starts with {nxt!r}"))
    return out


def _describes(text: str, place: str) -> bool:
    """Whether ``text`` describes ``place``: a room description of that room, or a text naming it."""
    rooms = re.findall(r"(?:You are in the|This room is called the) ([a-z ]+?)\.", text)
    if rooms:
        return place in rooms
    return re.search(rf"(?<![a-z]){re.escape(place)}(?![a-z0-9])", text) is not None


def _latest_place(ctx: Context) -> str:
    """The latest description of where the agent is (a room, or the receptacle it looked at)."""
    for o in reversed(ctx.shown):
        if re.search(r"^You are in the|This room is called|^On the [a-z]+ \d+|In it, you see|"
                     r"^The [a-z]+ \d+ is (?:open|closed)|^Looking quickly around you", o, re.M):
            return o
    return ctx.last


def _v(ctx: Context, rule: str, detail: str) -> Violation:
    return Violation(ctx.id, ctx.step, ctx.sentence, rule, detail)


RULES: list[Callable[[Context], list[Violation]]] = [rule_entities, rule_negatives, rule_claims,
                                                       rule_object_class, rule_plans]


def check_record(record: dict, extra_rules: Iterable[Callable[[Context], list[Violation]]] = ()) -> list[Violation]:
    """Every violation in the thoughts of one trajectory record."""
    rules = [*RULES, *extra_rules]
    steps = record.get("steps") or []
    out: list[Violation] = []
    for i, st in enumerate(steps):
        reason = st.get("reason")
        if not reason:
            continue
        obs = [s.get("observation") or "" for s in steps[:i]]
        acts = [s.get("action") or "" for s in steps[:i]]
        for sent in sentences(reason):
            ctx = Context(str(record.get("id", "?")), i, record.get("task") or "", obs, acts,
                          st.get("action") or "", sent, reason)
            for rule in rules:
                out.extend(rule(ctx))
    return out


def stats(records: list[dict]) -> dict:
    """Coverage (share of steps with a thought), distinct thoughts, episodes and steps."""
    steps = [s for r in records for s in r.get("steps") or []]
    reasons = [s["reason"] for s in steps if s.get("reason")]
    return {"episodes": len(records), "steps": len(steps), "with_reason": len(reasons),
            "coverage": len(reasons) / len(steps) if steps else 0.0, "distinct": len(set(reasons))}


def main(argv: list[str] | None = None) -> int:
    """``python tests/grounding/grounding_checker.py FILE.jsonl...``: coverage, distinct thoughts, violations."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    records = []
    for path in args:
        with open(path, encoding="utf-8") as fh:
            records += [json.loads(line) for line in fh if line.strip()]
    violations = [v for r in records for v in check_record(r)]
    s = stats(records)
    print(f"{s['episodes']} episodes, {s['steps']} steps, {s['with_reason']} with a thought "
          f"(coverage {s['coverage']:.1%}), {s['distinct']} distinct thoughts, {len(violations)} violations")
    for v in violations[:50]:
        print(v)
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
