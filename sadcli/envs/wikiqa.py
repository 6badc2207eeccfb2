"""HotPotQA-style question answering over a local Wikipedia-like corpus (ReAct's action space).

Actions, as in ReAct (Yao et al. 2023):

- ``search[entity]`` — the first sentences of the page titled ``entity``; when no title matches, the
  best matching page by BM25 over title and text if it shares at least half of the query's content
  words, else ``Could not find [entity]. Similar: [...]`` with the closest titles;
- ``lookup[keyword]`` — the next sentence of the current page that contains ``keyword``
  (``(Result i / n) ...``);
- ``finish[answer]`` — ends the episode; reward = exact match with the gold answer (HotPotQA
  normalization), ``info["f1"]`` = token F1.

The corpus is a JSONL (or JSON array) of ``{"title", "text"}`` records, e.g. the HotPotQA
introductory-paragraph dump; questions are a JSON array / JSONL of ``{"question", "answer"}``
(like ``hotpotqa_dev_questions.json``). Both are loaded in memory. There is no expert.
"""

from __future__ import annotations

import collections
import math
import os
import re
import string
from collections.abc import Iterable

from sadcli.envs.base import BaseEnv, PromptTemplate, Task, Transition
from sadcli.errors import InputError
from sadcli.jsonl import read_records

ACTION_RE = re.compile(r"^\s*(search|lookup|finish)\s*\[(.*)\]\s*\.?\s*$", re.I | re.S)

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


def sentences(text: str) -> list[str]:
    """Split a paragraph into sentences (on ``. `` followed by a capital, like ReAct's wikienv)."""
    out = []
    for para in text.split("\n"):
        para = para.strip()
        if not para:
            continue
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", para):
            if s.strip():
                out.append(s.strip())
    return out


def _tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower())]


def _title_key(title: str) -> str:
    return " ".join(_tokens(title.replace("_", " ")))


class Corpus:
    """Pages by title, with a BM25 index over title + text for search fallbacks."""

    def __init__(self, records: Iterable[dict], k1: float = 1.2, b: float = 0.75):
        self.titles: list[str] = []
        self.texts: list[str] = []
        self.by_title: dict[str, int] = {}
        postings: dict[str, dict[int, int]] = collections.defaultdict(dict)
        self.lengths: list[int] = []
        for rec in records:
            title, text = str(rec["title"]), rec["text"]
            if isinstance(text, list):  # the HotPotQA dump stores sentences as a list
                text = "".join(text)
            i = len(self.titles)
            self.titles.append(title)
            self.texts.append(str(text))
            self.by_title.setdefault(_title_key(title), i)
            toks = _tokens(title) * 2 + _tokens(str(text))
            self.lengths.append(len(toks))
            for w, c in collections.Counter(toks).items():
                postings[w][i] = c
        self.postings = dict(postings)
        self.k1, self.b = k1, b
        self.avg_len = (sum(self.lengths) / len(self.lengths)) if self.lengths else 1.0

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
        return self.by_title.get(_title_key(title))

    def rank(self, query: str, k: int = 5) -> list[tuple[int, float]]:
        n = len(self.titles)
        scores: dict[int, float] = collections.defaultdict(float)
        for w in set(_tokens(query)):
            docs = self.postings.get(w)
            if not docs:
                continue
            idf = math.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            for i, tf in docs.items():
                norm = tf + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg_len)
                scores[i] += idf * tf * (self.k1 + 1) / norm
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def coverage(self, query: str, i: int) -> float:
        """Fraction of the query's content words that occur in page ``i``."""
        words = [w for w in set(_tokens(query)) if w not in _STOP] or list(set(_tokens(query)))
        if not words:
            return 0.0
        return sum(1 for w in words if i in self.postings.get(w, {})) / len(words)


def load_questions(path: str) -> list[dict]:
    out = []
    for line, rec in read_records(path):
        if "question" not in rec:
            raise InputError('a question record needs "question" (and "answer")', file=line.file, line=line.line)
        out.append(rec)
    return out


INSTRUCTION = (
    "Solve a question answering task with interleaving Thought, Action, Observation steps. Thought can reason "
    "about the current situation, and Action can be three types:\n"
    "(1) search[entity], which searches the exact entity on Wikipedia and returns the first paragraph if it "
    "exists. If not, it will return some similar entities to search.\n"
    "(2) lookup[keyword], which returns the next sentence containing keyword in the current passage.\n"
    "(3) finish[answer], which returns the answer and finishes the task.\n"
    "Write one Thought line and one Action line per turn."
)

# A worked example written for this project (not copied from a dataset).
EXAMPLE = {
    "task": "Question: Which river flows through the capital of the country where the Eiffel Tower stands?",
    "steps": [
        {"reason": "I need to find the country where the Eiffel Tower stands, then its capital, then the river "
                   "through that capital. I will search Eiffel Tower first.",
         "action": "search[Eiffel Tower]",
         "observation": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France."},
        {"reason": "The Eiffel Tower is in Paris, France, and Paris is the capital of France. Now I need the river "
                   "that flows through Paris.",
         "action": "search[Paris]",
         "observation": "Paris is the capital and largest city of France. The city is on the river Seine."},
        {"reason": "The river Seine flows through Paris. So the answer is the Seine.",
         "action": "finish[Seine]",
         "observation": "Episode finished, reward = 1"},
    ],
}


class WikiQAEnv(BaseEnv):
    """Search / lookup / finish over a local corpus; one task per question."""

    name = "wikiqa"
    splits = ("dev",)
    default_split = "dev"
    max_steps = 8
    prompt = PromptTemplate(INSTRUCTION, [EXAMPLE])

    def __init__(self, corpus: str | None = None, questions: str | None = None, *,
                 sentences_per_search: int = 5, max_steps: int | None = None):
        corpus = corpus or os.environ.get("SAD_WIKI_CORPUS")
        questions = questions or os.environ.get("SAD_WIKI_QUESTIONS")
        if not corpus:
            raise InputError("the wikiqa environment needs a corpus file of {\"title\", \"text\"} records",
                             hint="pass --env-opt corpus=FILE (or set SAD_WIKI_CORPUS)")
        if not questions:
            raise InputError("the wikiqa environment needs a questions file of {\"question\", \"answer\"} records",
                             hint="pass --env-opt questions=FILE (or set SAD_WIKI_QUESTIONS)")
        self.corpus = corpus if isinstance(corpus, Corpus) else Corpus.load(corpus)
        self.questions = load_questions(questions)
        self.n_sentences = sentences_per_search
        if max_steps is not None:
            self.max_steps = max_steps
        self._q: dict | None = None
        self._page: int | None = None
        self._lookup: tuple[str, list[str], int] | None = None
        self._answer: str | None = None
        self._won = False

    def tasks(self, split: str) -> list[Task]:
        return [Task(self.name, split, str(i), 0, {"type": q.get("type")} if q.get("type") else {})
                for i, q in enumerate(self.questions)
                if q.get("split", split) == split]

    def reset(self, task: Task) -> str:
        self._q = self.questions[int(task.game)]
        self._page, self._lookup, self._answer, self._won = None, None, None, False
        return f"Question: {self._q['question'].strip()}"

    def parse_action(self, text: str) -> str | None:
        m = ACTION_RE.match((text or "").strip().split("\n", 1)[0])
        if not m:
            return None
        return f"{m.group(1).lower()}[{m.group(2).strip()}]"

    def _search(self, entity: str) -> str:
        i = self.corpus.lookup_title(entity)
        if i is None:
            ranked = self.corpus.rank(entity, k=5)
            if ranked and self.corpus.coverage(entity, ranked[0][0]) >= 0.5:
                i = ranked[0][0]
            else:
                self._page = None
                similar = [self.corpus.titles[j] for j, _ in ranked]
                return f"Could not find [{entity}]. Similar: {similar}."
        self._page, self._lookup = i, None
        return " ".join(sentences(self.corpus.texts[i])[: self.n_sentences])

    def _lookup_kw(self, keyword: str) -> str:
        if self._page is None:
            return "No page is open: search[entity] first."
        if self._lookup is None or self._lookup[0] != keyword:
            hits = [s for s in sentences(self.corpus.texts[self._page]) if keyword.lower() in s.lower()]
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
        return Transition(f"Episode finished, reward = {int(em)}", float(em), True,
                          {"won": em, "em": em, "f1": f1_score(arg, gold), "answer": arg, "gold": gold})

    def success(self) -> bool:
        return self._won


def make(**options) -> WikiQAEnv:
    return WikiQAEnv(**options)
