"""WebShop (Yao et al. 2022) in text mode, offline: 1,000 products, BM25 search, the paper's reward.

Pages and actions, as in WebShop's ``text`` observation mode (clickables joined by `` [SEP] ``):

- search page ``WebShop [SEP] Instruction: [SEP] <instruction> [SEP] Search`` — ``search[<query>]``;
- results page (50 best BM25 hits, 10 per page: asin, title, price) — ``click[<asin>]``, ``click[Next >]``,
  ``click[< Prev]``, ``click[Back to Search]``;
- item page (for each option name its values; title, price, rating) — ``click[<option value>]``,
  ``click[Description]``, ``click[Features]``, ``click[Reviews]``, ``click[Buy Now]``, ``click[< Prev]``;
- description / features / reviews pages — ``click[< Prev]`` back to the item;
- ``click[Buy Now]`` ends the episode with the reward of :mod:`sadcli.envs.webshop_reward`; success is a
  reward of 1.0 and the paper's score is the mean reward x 100.

Clicks match case-insensitively (WebShop lower-cases them); an action that is not on the page changes
nothing and is answered with the same page (``info["invalid"]``). ``admissible_actions()`` lists the
page's clicks; on the search page it is ``["search[<query>]"]`` (any query).

Data (``--data-dir``, or ``$WEBSHOP_DATA``): a folder with ``products_1k_processed.jsonl`` (one product a
line: ``id`` = asin, ``contents`` = the text WebShop indexes, ``product`` = its processed fields
``Title``, ``Description``, ``BulletPoints``, ``Price``, ``pricing``, ``options``, ``Attributes``,
``query``, ``category``, ``product_category``, ``Rating``), ``items_ins_v2_1000.json`` (asin ->
``instruction``, ``instruction_attributes``) and, for the human goal set, ``items_human_ins_1k.json``.

Goals (``goal_set="synthetic"``, the default) are built as WebShop builds them: for every product with an
instruction and every combination of its option values, the instruction + ``" with <name>: <value>, and
..."`` + ``", and price lower than <u> dollars"``, with ``u`` drawn from the two-to-four round prices
above the product's price. Everything random in upstream is seeded here: a product with a price range
costs ``uniform(low, high)`` drawn with seed ``asin``; the bound uses seed ``asin/<combination index>``.
The goals (6,910 for the 1,000 products) are then shuffled with seed 233 and split by index: ``test`` =
goals 0..499 (as in WebShop, whose test goals are its first 500), ``train`` = goals 500 and on. Teacher
data comes from ``train``; ``test`` is for evaluation only. ``goal_set="human"`` gives the 13 human
instructions (split ``test``; their options are values without names).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import re
from dataclasses import dataclass, field

from sadcli.envs.base import BaseEnv, PromptTemplate, Task, Transition
from sadcli.errors import InputError

SEARCH_RETURN_N = 50
PER_PAGE = 10
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
TEST_GOALS = 500
SHUFFLE_SEED = 233
PRODUCTS_FILE = "products_1k_processed.jsonl"
INSTRUCTIONS_FILE = "items_ins_v2_1000.json"
HUMAN_FILE = "items_human_ins_1k.json"

BACK, NEXT, PREV, BUY = "Back to Search", "Next >", "< Prev", "Buy Now"
SUBPAGES = ("Description", "Features", "Reviews")
ACTION_RE = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*\.?\s*$", re.I | re.S)


# ---------------------------------------------------------------------------------------------- data
@dataclass
class Goal:
    asin: str
    instruction: str
    attributes: list[str]
    goal_options: dict | list
    price_upper: float
    query: str
    category: str
    product_category: str
    name: str
    kind: str = "synthetic"

    def as_dict(self) -> dict:
        return {"asin": self.asin, "instruction_text": self.instruction, "attributes": self.attributes,
                "goal_options": self.goal_options, "price_upper": self.price_upper, "query": self.query,
                "category": self.category, "product_category": self.product_category, "name": self.name}

    def option_values(self) -> list[str]:
        return list(self.goal_options.values()) if isinstance(self.goal_options, dict) else list(self.goal_options)


def product_price(asin: str, pricing: list[float]) -> float:
    """The price a product is sold at: its one price, ``uniform(low, high)`` seeded by asin, or 100."""
    if not pricing:
        return 100.0
    if len(pricing) == 1:
        return float(pricing[0])
    return random.Random(asin).uniform(*pricing[:2])


def _price_bound(price: float, seed: str) -> tuple[float, str]:
    above = [p for p in PRICE_RANGE if p > price][:4]
    if len(above) < 2:
        return 1_000_000.0, ""
    upper = sorted(random.Random(seed).sample(above, 2))[1]
    return upper, f", and price lower than {upper:.2f} dollars"


def _data_file(data_dir: str, name: str) -> str:
    path = os.path.join(data_dir, name)
    if not os.path.exists(path):
        raise InputError(f"{path} is missing",
                         hint="point --data-dir at the WebShop folder (products_1k_processed.jsonl, "
                              "items_ins_v2_1000.json; see docs/collect.md)")
    return path


class WebShopData:
    """Products, prices, goals and the BM25 index, loaded once per process and folder."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.products: list[dict] = []
        self.contents: list[str] = []
        path = _data_file(data_dir, PRODUCTS_FILE)
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    prod = rec["product"]
                    prod["asin"] = rec["id"]
                    self.contents.append(rec.get("contents") or prod["Title"])
                except (ValueError, KeyError, TypeError) as e:
                    raise InputError(f"not a WebShop product record ({type(e).__name__}: {e})", file=path,
                                     line=n, hint='each line needs "id", "contents" and "product"') from None
                self.products.append(prod)
        self.by_asin = {p["asin"]: p for p in self.products}
        self.prices = {p["asin"]: product_price(p["asin"], list(p.get("pricing") or [])) for p in self.products}
        with open(_data_file(data_dir, INSTRUCTIONS_FILE), encoding="utf-8") as f:
            self.instructions = json.load(f)
        self._goals: dict[str, list[Goal]] = {}
        self._index = None

    @property
    def index(self):
        if self._index is None:
            from sadcli.envs.bm25 import BM25Index

            self._index = BM25Index(self.contents)
        return self._index

    def search(self, query: str) -> list[str]:
        """The asins of the best ``SEARCH_RETURN_N`` products for ``query`` (deterministic)."""
        return [self.products[i]["asin"] for i, _ in self.index.top(query, SEARCH_RETURN_N)]

    def goals(self, goal_set: str = "synthetic") -> list[Goal]:
        if goal_set not in self._goals:
            self._goals[goal_set] = self._human_goals() if goal_set == "human" else self._synthetic_goals()
        return self._goals[goal_set]

    def _synthetic_goals(self) -> list[Goal]:
        goals = []
        for p in self.products:
            ins = self.instructions.get(p["asin"]) or {}
            text, attrs = ins.get("instruction"), ins.get("instruction_attributes")
            if not text or not attrs:
                continue
            names = sorted(p.get("options") or {})
            for k, combo in enumerate(itertools.product(*(p["options"][n] for n in names))):
                opts = dict(zip(names, combo, strict=True))
                opt_text = ", and ".join(f"{n}: {v}" for n, v in opts.items())
                upper, price_text = _price_bound(self.prices[p["asin"]], f"{p['asin']}/{k}")
                goals.append(Goal(p["asin"], f"{text}{' with ' + opt_text if opt_text else ''}{price_text}",
                                  list(attrs), opts, upper, p["query"], p.get("category", ""),
                                  p["product_category"], p["Title"]))
        random.Random(SHUFFLE_SEED).shuffle(goals)
        return goals

    def _human_goals(self) -> list[Goal]:
        with open(_data_file(self.data_dir, HUMAN_FILE), encoding="utf-8") as f:
            human = json.load(f)
        goals = []
        for asin in sorted(human):
            p = self.by_asin.get(asin)
            if p is None:
                continue
            for k, ins in enumerate(human[asin]):
                if not ins.get("instruction_attributes"):
                    continue
                upper, price_text = _price_bound(self.prices[asin], f"{asin}/human/{k}")
                goals.append(Goal(asin, ins["instruction"].strip().rstrip(".") + price_text,
                                  list(ins["instruction_attributes"]),
                                  [o for o in ins.get("instruction_options") or [] if o], upper,
                                  p["query"], p.get("category", ""), p["product_category"], p["Title"], "human"))
        return goals


@functools.lru_cache(maxsize=4)
def load_data(data_dir: str) -> WebShopData:
    return WebShopData(os.path.abspath(data_dir))


# ---------------------------------------------------------------------------------------------- prompt
INSTRUCTION = (
    "You are shopping on WebShop for the item the instruction describes. Each turn, write a Thought line "
    "(optional on routine clicks) and an Action line with one action:\n"
    "search[keywords] on the search page; click[button] for anything shown between [SEP] separators on "
    "the page: a product id from the results, an option value, Next >, < Prev, Back to Search, "
    "Description, Features, Reviews, or Buy Now.\n"
    "Buy the product that matches the attributes, options and price in the instruction; choose its "
    "options before you click Buy Now."
)

# A worked example written for this project (the products are made up).
EXAMPLE = {
    "task": "WebShop [SEP] Instruction: [SEP] i need a long clip-in hair extension which is natural looking, "
            "with color: light brown, and price lower than 40.00 dollars [SEP] Search",
    "steps": [
        {"reason": "I need a natural looking long clip-in hair extension in light brown, under $40. "
                   "I will search with those key words.",
         "action": "search[long clip-in hair extension natural looking]",
         "observation": "Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > [SEP] B000000001 [SEP] "
                        "Long Clip In Hair Extensions Natural Looking Straight Hairpiece [SEP] $25.99 [SEP] "
                        "B000000002 [SEP] Wavy Synthetic Ponytail Extension [SEP] $12.5"},
        {"reason": "B000000001 'Long Clip In Hair Extensions Natural Looking Straight Hairpiece' is a long "
                   "clip-in extension and costs $25.99, below $40.00. I will open it.",
         "action": "click[B000000001]",
         "observation": "Back to Search [SEP] < Prev [SEP] color [SEP] black [SEP] light brown [SEP] blonde "
                        "[SEP] Long Clip In Hair Extensions Natural Looking Straight Hairpiece [SEP] "
                        "Price: $25.99 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews "
                        "[SEP] Buy Now"},
        {"reason": "The item has color options; the instruction asks for color: light brown, so I select it "
                   "and then buy.",
         "action": "click[light brown]",
         "observation": "Back to Search [SEP] < Prev [SEP] color [SEP] black [SEP] light brown [SEP] blonde "
                        "[SEP] Long Clip In Hair Extensions Natural Looking Straight Hairpiece [SEP] "
                        "Price: $25.99 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews "
                        "[SEP] Buy Now"},
        {"reason": None, "action": "click[Buy Now]",
         "observation": "Thank you for shopping with us! [SEP] Your score (min 0.0, max 1.0) [SEP] 1.00"},
    ],
}

PROMPT = PromptTemplate(INSTRUCTION, [EXAMPLE])


# ---------------------------------------------------------------------------------------------- session
@dataclass
class Session:
    goal: Goal
    page: str = "search"            # search | results | item | description | features | reviews | done
    query: str = ""
    results: list[str] = field(default_factory=list)
    page_no: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    searches: list[str] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)
    reward: float = 0.0
    parts: dict = field(default_factory=dict)


def _lower(s: str) -> str:
    return " ".join(s.lower().split())


class WebShopEnv(BaseEnv):
    """WebShop's text environment over the 1,000-product set; an expert that knows the goal product."""

    name = "webshop"
    splits = ("train", "test")
    default_split = "train"
    max_steps = 15
    prompt = PROMPT

    def __init__(self, data_dir: str | None = None, goal_set: str = "synthetic", max_steps: int | None = None,
                 expert_pages: int = 3):
        data_dir = data_dir or os.environ.get("WEBSHOP_DATA")
        if not data_dir:
            raise InputError("the webshop environment needs its data folder",
                             hint="pass --data-dir DIR (products_1k_processed.jsonl, items_ins_v2_1000.json) "
                                  "or set WEBSHOP_DATA")
        if goal_set not in ("synthetic", "human"):
            raise InputError(f"unknown WebShop goal set {goal_set!r}", hint="use synthetic or human")
        self.data = load_data(data_dir)
        self.goal_set = goal_set
        if max_steps is not None:
            self.max_steps = int(max_steps)
        self.expert_pages = int(expert_pages)
        self.s: Session | None = None

    # ------------------------------------------------------------------ tasks
    def goals(self, split: str) -> list[tuple[int, Goal]]:
        goals = list(enumerate(self.data.goals(self.goal_set)))
        if self.goal_set == "human":
            if split != "test":
                raise InputError(f"the human goal set has only a test split, not {split!r}", hint="--split test")
            return goals
        if split == "test":
            return goals[:TEST_GOALS]
        if split == "train":
            return goals[TEST_GOALS:]
        raise InputError(f"unknown WebShop split {split!r}", hint="use train or test")

    def tasks(self, split: str) -> list[Task]:
        game = "human" if self.goal_set == "human" else "goal"
        # meta "type": the product's WebShop category (beauty, electronics, fashion, food, garden), so that
        # summaries group by it
        return [Task(self.name, split, f"{game}{i}", 0, {"asin": g.asin, "type": g.category})
                for i, g in self.goals(split)]

    def reset(self, task: Task) -> str:
        idx = int(re.sub(r"^\D+", "", task.game))
        goals = self.data.goals("human" if task.game.startswith("human") else "synthetic")
        if not 0 <= idx < len(goals):
            raise InputError(f"no WebShop goal {task.game}", hint=f"goals are 0..{len(goals) - 1}")
        self.s = Session(goals[idx])
        return self.observation()

    # ------------------------------------------------------------------ pages
    def _product(self, asin: str | None = None) -> dict:
        assert self.s is not None
        return self.data.by_asin[asin or self.s.asin or ""]

    def observation(self) -> str:
        s = self.s
        assert s is not None
        if s.page == "search":
            return f"WebShop [SEP] Instruction: [SEP] {s.goal.instruction} [SEP] Search"
        if s.page == "results":
            parts = [BACK, f"Page {s.page_no} (Total results: {len(s.results)})"]
            if s.page_no > 1:
                parts.append(PREV)
            if s.page_no * PER_PAGE < len(s.results):
                parts.append(NEXT)
            for asin in self._page_asins():
                p = self._product(asin)
                parts += [asin, p["Title"], p["Price"]]
            return " [SEP] ".join(parts)
        p = self._product()
        if s.page == "item":
            parts = [BACK, PREV]
            for name, values in (p.get("options") or {}).items():
                parts += [name, *values]
            parts += [p["Title"], f"Price: {p['Price']}", f"Rating: {p.get('Rating', 'N.A.')}", *SUBPAGES, BUY]
            return " [SEP] ".join(parts)
        if s.page == "description":
            return " [SEP] ".join([BACK, PREV, p.get("Description") or ""])
        if s.page == "features":
            return " [SEP] ".join([BACK, PREV, *[b.strip() for b in p.get("BulletPoints") or []]])
        if s.page == "reviews":
            revs = [str(r.get("body", r.get("review", ""))) for r in p.get("Reviews") or [] if isinstance(r, dict)]
            return " [SEP] ".join([BACK, PREV, *revs])
        return f"Thank you for shopping with us! [SEP] Your score (min 0.0, max 1.0) [SEP] {s.reward:.2f}"

    def _page_asins(self) -> list[str]:
        s = self.s
        assert s is not None
        return s.results[(s.page_no - 1) * PER_PAGE: s.page_no * PER_PAGE]

    def clickables(self) -> list[str]:
        """What can be clicked on the current page, as shown."""
        s = self.s
        if s is None or s.page in ("search", "done"):
            return []
        if s.page == "results":
            out = [BACK]
            if s.page_no > 1:
                out.append(PREV)
            if s.page_no * PER_PAGE < len(s.results):
                out.append(NEXT)
            return out + self._page_asins()
        if s.page == "item":
            vals = [v for values in (self._product().get("options") or {}).values() for v in values]
            return [BACK, PREV, *vals, *SUBPAGES, BUY]
        return [BACK, PREV]

    def admissible_actions(self) -> list[str] | None:
        if self.s is None or self.s.page == "done":
            return []
        if self.s.page == "search":
            return ["search[<query>]"]
        return [f"click[{c}]" for c in self.clickables()]

    def parse_action(self, text: str) -> str | None:
        m = ACTION_RE.match((text or "").strip().split("\n", 1)[0])
        if not m:
            return None
        return f"{m.group(1).lower()}[{' '.join(m.group(2).split())}]"

    # ------------------------------------------------------------------ step
    def step(self, action: str) -> Transition:
        s = self.s
        assert s is not None, "reset() first"
        parsed = self.parse_action(action)
        if parsed is None or s.page == "done":
            return Transition(self.observation(), 0.0, s.page == "done", {"invalid": True})
        kind, arg = parsed.split("[", 1)
        arg = arg[:-1]
        if kind == "search":
            if s.page != "search" or not arg.strip():
                return Transition(self.observation(), 0.0, False, {"invalid": True})
            s.query, s.page, s.page_no, s.asin, s.options = arg, "results", 1, None, {}
            s.searches.append(arg)
            s.results = self.data.search(arg)
            return Transition(self.observation())
        target = next((c for c in self.clickables() if _lower(c) == _lower(arg)), None)
        if target is None:
            return Transition(self.observation(), 0.0, False, {"invalid": True})
        if target == BACK:
            s.page, s.asin, s.options = "search", None, {}
        elif target == NEXT:
            s.page_no += 1
        elif target == PREV:
            if s.page == "results":
                s.page_no -= 1
            elif s.page == "item":
                s.page, s.asin, s.options = "results", None, {}
            else:
                s.page = "item"
        elif s.page == "results":
            s.page, s.asin, s.options = "item", target, {}
            s.visited.append(target)
        elif target == BUY:
            return self._buy()
        elif target in SUBPAGES:
            s.page = target.lower()
        else:  # an option value
            for name, values in (self._product().get("options") or {}).items():
                if target in values:
                    s.options[name] = target
                    break
        return Transition(self.observation())

    def _buy(self) -> Transition:
        from sadcli.envs.webshop_reward import reward

        s = self.s
        assert s is not None and s.asin is not None
        r, parts = reward(self._product(), s.goal.as_dict(), self.data.prices[s.asin], dict(s.options))
        s.reward, s.parts, s.page = r, parts, "done"
        won = r >= 1.0 - 1e-9
        info = {"won": won, "score": r, "asin": s.asin, "goal_asin": s.goal.asin,
                "options": json.dumps(s.options, sort_keys=True),
                **{k: v for k, v in parts.items() if isinstance(v, (int, float, bool)) or v is None}}
        return Transition(self.observation(), r, True, info)

    def success(self) -> bool:
        return self.s is not None and self.s.page == "done" and self.s.reward >= 1.0 - 1e-9

    # ------------------------------------------------------------------ expert
    def expert_queries(self) -> list[str]:
        """The expert's queries: the instruction's key words, then with the options, then the title's."""
        g = self.s.goal if self.s else None
        if g is None:
            return []
        core = instruction_keywords(g.instruction)
        with_opts = " ".join([core, *[v for v in g.option_values() if v]]).strip()
        title = " ".join(re.findall(r"[a-z0-9]+", self.data.by_asin[g.asin]["Title"].lower())[:12])
        out = []
        for q in (core, with_opts, title):
            if q and q not in out:
                out.append(q)
        return out

    def expert_action(self) -> str | None:
        s = self.s
        if s is None or s.page == "done":
            return None
        g = s.goal
        queries = self.expert_queries()
        if s.page == "search":
            return f"search[{queries[min(len(s.searches), len(queries) - 1)]}]"
        if s.page == "results":
            if g.asin in self._page_asins():
                return f"click[{g.asin}]"
            last_query = len(s.searches) >= len(queries)
            # the target further down this query's results (within expert_pages pages): next page;
            # else a refined query; the last query's pages are browsed in any case
            rank = s.results.index(g.asin) if g.asin in s.results else len(s.results)
            further = rank < self.expert_pages * PER_PAGE
            if (further or last_query) and s.page_no < self.expert_pages and NEXT in self.clickables():
                return f"click[{NEXT}]"
            if not last_query:
                return f"click[{BACK}]"
            page = self._page_asins()
            return f"click[{page[0]}]" if page else f"click[{BACK}]"
        if s.page in ("description", "features", "reviews"):
            return f"click[{PREV}]"
        if s.asin != g.asin:  # bought nothing yet on the wrong item (expert gave up): buy it
            return f"click[{BUY}]"
        for value in self._goal_option_clicks():
            if value not in s.options.values():
                return f"click[{value}]"
        return f"click[{BUY}]"

    def _goal_option_clicks(self) -> list[str]:
        """The option values to click on the goal product's page, in page order."""
        g = self.s.goal  # type: ignore[union-attr]
        options = self._product(g.asin).get("options") or {}
        if isinstance(g.goal_options, dict):
            return [g.goal_options[n] for n in options if n in g.goal_options]
        wanted = {_lower(v) for v in g.goal_options}
        out = []
        for values in options.values():
            hit = next((v for v in values if _lower(v) in wanted), None)
            if hit:
                out.append(hit)
        return out

    def state_info(self) -> dict:
        """What the current page shows, structured (the reasoning templates quote only these)."""
        s = self.s
        if s is None:
            return {}
        info: dict = {"page": s.page, "page_no": s.page_no, "searches": list(s.searches)}
        if s.page == "results":
            info["results"] = [[a, self._product(a)["Title"], self._product(a)["Price"]] for a in self._page_asins()]
            info["total"] = len(s.results)
        if s.page in ("item", "description", "features", "reviews") and s.asin:
            p = self._product()
            info["item"] = {"asin": s.asin, "title": p["Title"], "price": p["Price"],
                            "options": p.get("options") or {}, "chosen": dict(s.options)}
        return info


_FILLER = re.compile(r"^\s*(?:find me|i am looking for|i'm looking for|i need|i want|i would like|"
                     r"looking for|get me|buy me|show me|search for|please find)\s+(?:an?\s+|some\s+)?", re.I)


def instruction_keywords(instruction: str) -> str:
    """The instruction's key words: no leading "find me"/"i need", no option list, no price clause."""
    text = re.split(r",? and price lower than", instruction)[0]
    text = re.split(r" with (?:(?!with )[a-z ]){1,30}: ", text)[0]
    text = _FILLER.sub("", text)
    words = re.findall(r"[a-z0-9][a-z0-9&'\-]*", text.lower())
    return " ".join(w for w in words if w not in ("and", "with", "a", "an", "the", "for", "that", "is", "of"))


def make(**options) -> WebShopEnv:
    return WebShopEnv(**options)
