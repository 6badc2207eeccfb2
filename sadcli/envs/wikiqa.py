"""HotPotQA-style question answering over a local Wikipedia-like corpus (ReAct's action space).

Actions, as in ReAct (Yao et al. 2023):

- ``search[entity]`` — the first sentences (5) of the page titled ``entity`` (case and punctuation do not
  matter); when no title matches, the best BM25 page if it contains every content word of the query (as
  Wikipedia's search goes straight to a page it is sure of; ``match_words=0.5`` lowers that to half the
  words), else ``Could not find [entity]. Similar: [...]`` with the five closest titles (BM25 over titles,
  their character trigrams and first sentences);
- ``lookup[keyword]`` — the next sentence of the current page that contains ``keyword``
  (``(Result i / n) ...``, then ``No more results.``);
- ``finish[answer]`` — ends the episode: ``Episode finished, reward = True|False`` (FireAct's words);
  the reward is exact match with the gold answer after HotPotQA's normalization, ``info["f1"]`` its token F1.

Two sources:

- ``corpus="hotpotqa"`` (``--corpus hotpotqa``): the built-in loader for HotPotQA's distractor-setting files
  in ``data_dir`` (``--data-dir`` or ``$HOTPOTQA_DATA``): ``train_distractor_800.jsonl`` and
  ``dev_distractor_200.jsonl``. Their context paragraphs (title -> sentences, 9,749 distinct pages) are the
  corpus; splits ``train`` (800 questions, teacher data, the default) and ``dev`` (200, evaluation). An
  expert follows the supporting facts (see :meth:`WikiQAEnv.expert_plan`). Step cap 7, as in ReAct.
- any corpus file of ``{"title", "text"}`` records (``text`` a string or a list of sentences) and a
  questions file of ``{"question", "answer"}`` records (e.g. ``hotpotqa_dev_questions.json``; every question
  in every split name unless records carry ``"split"``). No expert.

The task text is the bare question, as in FireAct's fine-tuning data (the first user turn), and the turns
are ``Thought: ...`` / ``Action: search[...]`` / ``Observation: ...`` as there, so a model fine-tuned on
FireAct acts here as is.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import string
from collections.abc import Iterable

from sadcli.envs.base import BaseEnv, GoldPath, PromptTemplate, Task, Transition
from sadcli.errors import InputError
from sadcli.jsonl import read_records

ACTION_RE = re.compile(r"^\s*(search|lookup|finish)\s*\[(.*)\]\s*\.?\s*$", re.I | re.S)
HOTPOTQA_FILES = {"train": "train_distractor_800.jsonl", "dev": "dev_distractor_200.jsonl"}

_WORD = re.compile(r"\w+", re.U)
_STOP = frozenset("a an the of in on at to for and or is was were are be by with from as what which who whom "
                  "whose when where why how did does do that this these those it its his her their".split())


def normalize_answer(s: str) -> str:
    """HotPotQA/SQuAD answer normalization: lower case, no punctuation, articles or extra spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 as in the HotPotQA evaluation script (yes/no/noanswer must match exactly)."""
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if p in ("yes", "no", "noanswer") or g in ("yes", "no", "noanswer"):
        if p != g:
            return 0.0
    pt, gt = p.split(), g.split()
    common = collections.Counter(pt) & collections.Counter(gt)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pt), same / len(gt)
    return 2 * precision * recall / (precision + recall)


_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_ABBREV = re.compile(r"(?:\b[A-Z]|\b(?:Jr|Sr|Mr|Mrs|Ms|Dr|St|Mt|Ft|Gen|Col|Lt|Sgt|Capt|Rev|Prof|Inc|Co|Corp|Ltd|No|vs|"
                     r"U\.S|U\.K))\.$")


def sentences(text: str) -> list[str]:
    """Split a paragraph into sentences: at ``. `` + a capital (as ReAct's wikienv), not after an initial
    (``K. A. Applegate``) or a common abbreviation (``Jr.``, ``St.``, ``U.S.``)."""
    out: list[str] = []
    for para in text.split("\n"):
        para = para.strip()
        if not para:
            continue
        parts: list[str] = []
        for piece in _SENT_END.split(para):
            if parts and _ABBREV.search(parts[-1]):
                parts[-1] += " " + piece
            else:
                parts.append(piece)
        out += [x.strip() for x in parts if x.strip()]
    return out


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def title_key(title: str) -> str:
    """How titles are matched: lower case, words only (``"Ed Wood (film)"`` -> ``"ed wood film"``)."""
    return " ".join(_tokens(title.replace("_", " ")))


def _trigrams(title: str) -> list[str]:
    out = []
    for w in _tokens(title):
        if len(w) < 3 or w in _STOP:
            continue
        w = f"#{w}#"
        out += [f"tri_{w[i:i + 3]}" for i in range(len(w) - 2)]
    return out


class Corpus:
    """Pages (title -> sentences) with a BM25 index (``bm25s``) for similar titles and free-text queries."""

    def __init__(self, records: Iterable[dict]):
        self.titles: list[str] = []
        self.pages: list[list[str]] = []
        self.exact: dict[str, int] = {}     # title as written -> page
        self.by_title: dict[str, int] = {}  # title_key -> first page with that key
        for rec in records:
            title, text = str(rec["title"]), rec["text"]
            sents = [str(s).strip() for s in text if str(s).strip()] if isinstance(text, list) else sentences(str(text))
            if title in self.exact:
                continue
            self.exact[title] = len(self.titles)
            self.by_title.setdefault(title_key(title), len(self.titles))
            self.titles.append(title)
            self.pages.append(sents)
        self._index = None

    @property
    def texts(self) -> list[str]:
        return [" ".join(p) for p in self.pages]

    @property
    def index(self):
        """BM25 over each page's title (twice), its title's character trigrams and its first sentence."""
        if self._index is None:
            from sadcli.envs.bm25 import BM25Index

            docs = [" ".join([t, t, *_trigrams(t), p[0] if p else ""]) for t, p in zip(self.titles, self.pages,
                                                                                       strict=True)]
            self._index = BM25Index(docs, k1=1.2, b=0.75, stem=False)
        return self._index

    def _query(self, query: str) -> str:
        return " ".join([query, *_trigrams(query)])

    @classmethod
    def load(cls, path: str) -> Corpus:
        def recs():
            for line, rec in read_records(path):
                if "title" not in rec or "text" not in rec:
                    raise InputError('a corpus record needs "title" and "text"', file=line.file, line=line.line)
                yield rec
        return cls(recs())

    def __len__(self) -> int:
        return len(self.titles)

    def lookup_title(self, title: str) -> int | None:
        """The page titled ``title``: exactly as written, else the first whose :func:`title_key` matches."""
        i = self.exact.get(title.strip())
        return i if i is not None else self.by_title.get(title_key(title))

    def rank(self, query: str, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` pages closest to ``query`` (BM25; best first, ties by corpus order)."""
        return self.index.top(self._query(query), k)

    def coverage(self, query: str, i: int) -> float:
        """Fraction of the query's content words that occur in page ``i`` (title or text)."""
        words = [w for w in set(_tokens(query)) if w not in _STOP] or list(set(_tokens(query)))
        if not words:
            return 0.0
        have = set(_tokens(self.titles[i] + " " + " ".join(self.pages[i])))
        return sum(1 for w in words if w in have) / len(words)


# ---------------------------------------------------------------------------------------------- HotPotQA
def read_hotpotqa(path: str) -> list[dict]:
    """Questions of a HotPotQA distractor-setting JSONL file (``_id``, question, answer, type, level,
    supporting_facts, context)."""
    out = []
    for line, rec in read_records(path):
        for k in ("question", "answer", "context", "supporting_facts"):
            if k not in rec:
                raise InputError(f'a HotPotQA record needs "{k}"', file=line.file, line=line.line,
                                 hint="use HotPotQA's distractor-setting files (see docs/collect.md)")
        out.append(rec)
    return out


@functools.lru_cache(maxsize=2)
def load_hotpotqa(data_dir: str) -> tuple[Corpus, dict[str, list[dict]]]:
    """The corpus (union of both files' context paragraphs) and the questions by split."""
    splits = {}
    for split, name in HOTPOTQA_FILES.items():
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            raise InputError(f"{path} is missing", hint="point --data-dir at the folder with "
                             f"{' and '.join(HOTPOTQA_FILES.values())} (see docs/collect.md)")
        splits[split] = read_hotpotqa(path)
    pages = ({"title": t, "text": s} for split in ("dev", "train") for q in splits[split] for t, s in q["context"])
    return Corpus(pages), splits


def load_questions(path: str) -> list[dict]:
    out = []
    for line, rec in read_records(path):
        if "question" not in rec:
            raise InputError('a question record needs "question" (and "answer")', file=line.file, line=line.line)
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------------------- prompt
INSTRUCTION = (
    "Solve a question answering task with interleaving Thought, Action, Observation steps. Thought can reason "
    "about the current situation, and Action can be three types:\n"
    "(1) search[entity], which searches the exact entity on Wikipedia and returns the first paragraph if it "
    "exists. If not, it will return some similar entities to search.\n"
    "(2) lookup[keyword], which returns the next sentence containing keyword in the current passage.\n"
    "(3) finish[answer], which returns the answer and finishes the task.\n"
    "Write one Thought line and one Action line per turn."
)

# Worked examples written for this project (not copied from a dataset), in FireAct's turn format.
EXAMPLES = [
    {"task": "Which river flows through the capital of the country where the Eiffel Tower stands?",
     "steps": [
         {"reason": "I need to search Eiffel Tower, find the country it stands in, then find the river through "
                    "that country's capital.",
          "action": "search[Eiffel Tower]",
          "observation": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France."},
         {"reason": "The Eiffel Tower is in Paris, France, and Paris is the capital of France. Now I need the "
                    "river that flows through Paris.",
          "action": "search[Paris]",
          "observation": "Paris is the capital and largest city of France. The city is on the river Seine."},
         {"reason": "The river Seine flows through Paris. So the answer is the Seine.",
          "action": "finish[Seine]",
          "observation": "Episode finished, reward = True"}]},
    {"task": "Were the composers of Boleros Nuevos and Lunar Tides born in the same country?",
     "steps": [
         {"reason": "I need to search Boleros Nuevos and Lunar Tides, find their composers and where they "
                    "were born, then compare.",
          "action": "search[Boleros Nuevos]",
          "observation": "Boleros Nuevos is a 1961 suite for guitar by the Cuban composer Ana Ferrer."},
         {"reason": "Boleros Nuevos was composed by Ana Ferrer, who is Cuban. I need to look up where she was "
                    "born to be sure.",
          "action": "lookup[born]",
          "observation": "(Result 1 / 1) Ferrer was born in Havana in 1930."},
         {"reason": "Ana Ferrer was born in Havana, Cuba. Now I need to search Lunar Tides.",
          "action": "search[Lunar Tides]",
          "observation": "Lunar Tides is an orchestral piece by the Chilean composer Tomas Vidal, born in "
                         "Valparaiso."},
         {"reason": "Tomas Vidal was born in Valparaiso, Chile, and Ana Ferrer in Havana, Cuba. They were not "
                    "born in the same country, so the answer is no.",
          "action": "finish[no]",
          "observation": "Episode finished, reward = True"}]},
]

PROMPT = PromptTemplate(INSTRUCTION, EXAMPLES)


# ---------------------------------------------------------------------------------------------- expert
def _core(title: str) -> str:
    """``"Ed Wood (film)"`` -> ``"Ed Wood"``."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()


def gold_title_order(q: dict) -> list[str]:
    """The supporting titles in the order a reader would search them.

    Bridge: first the page that mentions the other one (the bridge entity), ties broken by which title
    the question names; comparison: in the order the question names them.
    """
    titles = list(dict.fromkeys(t for t, _ in q["supporting_facts"]))
    if len(titles) != 2:
        return titles
    ctx = {t: " ".join(s) for t, s in q["context"]}
    question = q["question"].lower()
    a, b = titles

    def pos(t: str) -> int:
        i = question.find(_core(t).lower())
        return i if i >= 0 else len(question)

    if q.get("type") == "comparison":
        return sorted(titles, key=lambda t: (pos(t), titles.index(t)))
    a_links = _core(b).lower() in ctx.get(a, "").lower()
    b_links = _core(a).lower() in ctx.get(b, "").lower()
    if a_links != b_links:
        return [a, b] if a_links else [b, a]
    return sorted(titles, key=lambda t: (pos(t), titles.index(t)))


def lookup_keyword(page: list[str], target: int, question: str, answer: str) -> tuple[str, int] | None:
    """A keyword whose lookup reaches sentence ``target`` of ``page`` soonest: (keyword, lookups needed).

    Candidates are the sentence's words, the question's words first, then the answer's, then the rest.
    """
    sent = page[target]
    words = [w for w in dict.fromkeys(re.findall(r"[A-Za-z0-9][\w'-]*", sent)) if w.lower() not in _STOP and len(w) > 2]
    qwords = {w.lower() for w in _tokens(question)}
    awords = {w.lower() for w in _tokens(answer)}
    best = None
    for w in words:
        hits = [i for i, s in enumerate(page) if w.lower() in s.lower()]
        if target not in hits:
            continue
        n = hits.index(target) + 1
        pref = 0 if w.lower() in qwords else 1 if w.lower() in awords else 2
        cand = (n, pref, words.index(w), w)
        if best is None or cand < best:
            best = cand
    return (best[3], best[0]) if best else None


def expert_actions(q: dict, corpus: Corpus, n_sentences: int, max_steps: int) -> list[str]:
    """The expert's actions for question ``q``: search the gold pages, look up deep facts, finish."""
    deep: dict[str, list[int]] = collections.defaultdict(list)
    for t, i in q["supporting_facts"]:
        if i >= n_sentences:
            deep[t].append(i)
    actions: list[str] = []
    for title in gold_title_order(q):
        actions.append(f"search[{title}]")
        idx = corpus.lookup_title(title)
        if idx is None:
            continue
        page = corpus.pages[idx]
        for i in sorted(set(deep.get(title, []))):
            if i >= len(page):
                continue
            kw = lookup_keyword(page, i, q["question"], str(q.get("answer", "")))
            if kw:
                actions += [f"lookup[{kw[0]}]"] * kw[1]
    actions.append(f"finish[{q['answer']}]")
    while len(actions) > max_steps and any(a.startswith("lookup[") for a in actions):
        # over the budget: drop the last lookup (the searches and the answer stay)
        last = max(i for i, a in enumerate(actions) if a.startswith("lookup["))
        del actions[last]
    return actions


# ---------------------------------------------------------------------------------------------- env
class WikiQAEnv(BaseEnv):
    """Search / lookup / finish over a local corpus; one task per question."""

    name = "wikiqa"
    splits = ("train", "dev")
    default_split = "dev"
    max_steps = 7
    prompt = PROMPT

    def __init__(self, corpus: str | Corpus | None = None, questions: str | None = None, *,
                 data_dir: str | None = None, sentences_per_search: int = 5, max_steps: int | None = None,
                 match_words: float = 1.0):
        corpus = corpus or os.environ.get("SAD_WIKI_CORPUS")
        self.n_sentences = int(sentences_per_search)
        self.match_words = float(match_words)
        if max_steps is not None:
            self.max_steps = int(max_steps)
        self.hotpotqa = isinstance(corpus, str) and corpus.lower() == "hotpotqa"
        self._by_split: dict[str, list[dict]] = {}
        if self.hotpotqa:
            data_dir = data_dir or os.environ.get("HOTPOTQA_DATA")
            if not data_dir:
                raise InputError("--corpus hotpotqa needs the folder of HotPotQA's distractor files",
                                 hint="pass --data-dir DIR (train_distractor_800.jsonl, dev_distractor_200.jsonl) "
                                      "or set HOTPOTQA_DATA")
            if questions:
                raise InputError("--questions does not apply to --corpus hotpotqa",
                                 hint="the questions come with the corpus files; choose them with --split")
            self.corpus, self._by_split = load_hotpotqa(os.path.abspath(data_dir))
            self.default_split = "train"
            self.questions = [q for split in ("train", "dev") for q in self._by_split[split]]
        else:
            questions = questions or os.environ.get("SAD_WIKI_QUESTIONS")
            if not corpus:
                raise InputError("the wikiqa environment needs a corpus file of {\"title\", \"text\"} records",
                                 hint="pass --corpus FILE, or --corpus hotpotqa --data-dir DIR")
            if not questions:
                raise InputError("the wikiqa environment needs a questions file of {\"question\", \"answer\"} "
                                 "records", hint="pass --questions FILE (or set SAD_WIKI_QUESTIONS)")
            self.corpus = corpus if isinstance(corpus, Corpus) else Corpus.load(corpus)
            self.questions = load_questions(questions)
        self._q: dict | None = None
        self._page: int | None = None
        self._lookup: tuple[str, list[str], int] | None = None
        self._answer: str | None = None
        self._won = False
        self._gold = GoldPath()

    # ------------------------------------------------------------------ tasks
    def tasks(self, split: str) -> list[Task]:
        if self.hotpotqa:
            if split not in self._by_split:
                raise InputError(f"unknown HotPotQA split {split!r}", hint="use train (800) or dev (200)")
            return [Task(self.name, split, str(q["_id"]) if q.get("_id") else str(i), 0,
                         {k: q[k] for k in ("type", "level") if q.get(k)})
                    for i, q in enumerate(self._by_split[split])]
        return [Task(self.name, split, str(i), 0, {"type": q.get("type")} if q.get("type") else {})
                for i, q in enumerate(self.questions)
                if q.get("split", split) == split]

    def _question(self, task: Task) -> dict:
        if self.hotpotqa:
            qs = self._by_split.get(task.split) or []
            for i, q in enumerate(qs):
                if str(q.get("_id") or i) == task.game:
                    return q
            raise InputError(f"no HotPotQA question {task.game} in {task.split}")
        return self.questions[int(task.game)]

    def reset(self, task: Task) -> str:
        self._q = self._question(task)
        self._page, self._lookup, self._answer, self._won = None, None, None, False
        self._gold = GoldPath(expert_actions(self._q, self.corpus, self.n_sentences, self.max_steps)
                              if self.hotpotqa else [])
        return self._q["question"].strip()

    # ------------------------------------------------------------------ actions
    def parse_action(self, text: str) -> str | None:
        m = ACTION_RE.match((text or "").strip().split("\n", 1)[0])
        if not m:
            return None
        return f"{m.group(1).lower()}[{m.group(2).strip()}]"

    def _search(self, entity: str) -> str:
        i = self.corpus.lookup_title(entity)
        if i is None:
            ranked = self.corpus.rank(entity, k=5)
            if ranked and self.corpus.coverage(entity, ranked[0][0]) >= self.match_words:
                i = ranked[0][0]
            else:
                self._page = None
                similar = [self.corpus.titles[j] for j, _ in ranked]
                return f"Could not find [{entity}]. Similar: {similar}."
        self._page, self._lookup = i, None
        return " ".join(self.corpus.pages[i][: self.n_sentences])

    def _lookup_kw(self, keyword: str) -> str:
        if self._page is None:
            return "No page is open: search[entity] first."
        if self._lookup is None or self._lookup[0] != keyword:
            hits = [s for s in self.corpus.pages[self._page] if keyword.lower() in s.lower()]
            self._lookup = (keyword, hits, 0)
        kw, hits, k = self._lookup
        if k >= len(hits):
            return "No more results."
        self._lookup = (kw, hits, k + 1)
        return f"(Result {k + 1} / {len(hits)}) {hits[k]}"

    def step(self, action: str) -> Transition:
        assert self._q is not None, "reset() first"
        parsed = self.parse_action(action)
        if parsed is None:
            return Transition(f"Invalid action: {action.strip()}", 0.0, False, {"invalid": True})
        self._gold.advance(parsed)
        kind, arg = parsed.split("[", 1)
        arg = arg[:-1]
        if kind == "search":
            return Transition(self._search(arg))
        if kind == "lookup":
            return Transition(self._lookup_kw(arg))
        self._answer = arg
        gold = str(self._q.get("answer", ""))
        em = exact_match(arg, gold)
        self._won = em
        return Transition(f"Episode finished, reward = {em}", float(em), True,
                          {"won": em, "em": em, "f1": f1_score(arg, gold), "answer": arg, "gold": gold})

    def success(self) -> bool:
        return self._won

    # ------------------------------------------------------------------ expert
    def expert_plan(self) -> list[str] | None:
        return self._gold.plan()

    def expert_action(self) -> str | None:
        return self._gold.next_action()

    def state_info(self) -> dict:
        if not self.hotpotqa or self._q is None:
            return {}
        return {"type": self._q.get("type"), "page": self.corpus.titles[self._page] if self._page is not None else None}


def make(**options) -> WikiQAEnv:
    return WikiQAEnv(**options)

