"""Benchmark of the WebShop and HotPotQA-ReAct environments: expert speed and BM25 search latency.

1. Expert episodes per minute (resets included), in this process, with the expert teacher's reasoning:
   WebShop on its test goals, HotPotQA on its dev questions; also the success rate (95% Wilson interval)
   and mean steps (the numbers the README reports), and for reference WebShop's score (mean reward x 100)
   of a random-clicking shopper (searches the instruction's key words, then clicks at random; seed 0).
2. BM25 search latency per query, our index (``bm25s`` via :class:`sadcli.envs.bm25.BM25Index`) against
   two baselines measured in the same run on the same queries and documents:
   - ``python``: a pure-Python postings-list BM25 (what ``wikiqa`` used before ``bm25s``),
   - ``scan``: a linear scan that scores every document with BM25 term by term.
   WebShop: the 1,000 product texts, queries = the key words of the test instructions; HotPotQA: the
   9,749 pages (title twice + title trigrams + first sentence), queries = the gold titles with one
   letter dropped (the near-miss searches that need the ranking). Reports the median latency of each and
   the ratios baseline / ours, and checks that the three give the same top-5.

Prints one JSON line with every figure.

    python benchmarks/bench_envs.py                       # both environments (about a minute on 2 cores)
    python benchmarks/bench_envs.py --webshop-episodes 100 --hotpotqa-episodes 100 --queries 100
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DATA = os.path.join(ROOT, "..", "shared", "data")


class PythonBM25:
    """Postings lists and a dict of scores (the hand-rolled BM25 this project used before bm25s)."""

    def __init__(self, docs: list[list[str]], k1: float, b: float):
        self.k1, self.b, self.n = k1, b, len(docs)
        self.lengths = [len(d) for d in docs]
        self.avg = sum(self.lengths) / max(1, self.n)
        self.postings: dict[str, dict[int, int]] = collections.defaultdict(dict)
        for i, d in enumerate(docs):
            for w, c in collections.Counter(d).items():
                self.postings[w][i] = c

    def idf(self, w: str) -> float:
        df = len(self.postings.get(w, ()))
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def top(self, query: list[str], k: int) -> list[int]:
        scores: dict[int, float] = collections.defaultdict(float)
        for w in query:  # a repeated query word counts each time, as in Lucene and bm25s
            docs = self.postings.get(w)
            if not docs:
                continue
            idf = self.idf(w)
            for i, tf in docs.items():
                scores[i] += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg))
        return [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


class ScanBM25(PythonBM25):
    """Every document scored in turn from its own term counts (no postings)."""

    def __init__(self, docs, k1, b):
        super().__init__(docs, k1, b)
        self.counts = [collections.Counter(d) for d in docs]

    def top(self, query, k):
        q = query
        idf = {w: self.idf(w) for w in q}
        scores = []
        for i, c in enumerate(self.counts):
            s = 0.0
            for w in q:
                tf = c.get(w, 0)
                if tf:
                    s += idf[w] * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg))
            if s > 0:
                scores.append((-s, i))
        scores.sort()
        return [i for _, i in scores[:k]]


def latency(fn, queries, repeats: int = 3) -> float:
    """Median over repeats of the mean seconds per query."""
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for q in queries:
            fn(q)
        runs.append((time.perf_counter() - t) / len(queries))
    return statistics.median(runs)


def search_bench(texts: list[str], queries: list[str], k1: float, b: float, stem: bool) -> dict:
    from sadcli.envs.bm25 import BM25Index

    ours = BM25Index(texts, k1=k1, b=b, stem=stem)
    docs = [ours.tokens(t) for t in texts]
    toks = [ours.tokens(q) for q in queries]
    py, scan = PythonBM25(docs, k1, b), ScanBM25(docs, k1, b)
    agree = sum(1 for q, t in zip(queries, toks, strict=True)
                if [i for i, _ in ours.top(q, 5)] == py.top(t, 5) == scan.top(t, 5))
    t_ours = latency(lambda q: ours.top(q, 50), queries)
    t_py = latency(lambda t: py.top(t, 50), toks)
    t_scan = latency(lambda t: scan.top(t, 50), toks)
    return {"docs": len(texts), "queries": len(queries), "top5_agree": agree,
            "ms_per_query": {"bm25s": round(1e3 * t_ours, 3), "python": round(1e3 * t_py, 3),
                             "scan": round(1e3 * t_scan, 3)},
            "ratio_python_over_bm25s": round(t_py / t_ours, 2), "ratio_scan_over_bm25s": round(t_scan / t_ours, 2)}


def expert_bench(env_name: str, options: dict, split: str, n: int) -> dict:
    from sadcli.agent.loop import EnvPool, run_episodes
    from sadcli.envs.registry import EnvSpec
    from sadcli.teachers.expert import ExpertTeacher

    with EnvPool(EnvSpec.parse(env_name, options), 1, in_process=True) as pool:
        tasks = pool.tasks(split)[:n]
        pool.slots[0].request("reset", tasks[0].to_dict())  # data and index loaded before the clock
        t = time.perf_counter()
        recs = list(run_episodes(pool, tasks, ExpertTeacher()))
        dt = time.perf_counter() - t
    wins = sum(r["success"] for r in recs)
    return {"split": split, "episodes": len(recs), "success": wins, "success_rate": round(wins / len(recs), 4),
            "success_ci95": wilson(wins, len(recs)),
            "mean_reward": round(sum(r["reward"] for r in recs) / len(recs), 4),
            "mean_steps": round(sum(len(r["steps"]) for r in recs) / len(recs), 3),
            "episodes_per_min": round(60 * len(recs) / dt, 1)}


def wilson(k: int, n: int) -> list[float]:
    """95% Wilson interval of a rate k/n (scipy)."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(ci.low, 4), round(ci.high, 4)]


def random_bench(env, tasks, seed: int = 0) -> dict:
    """A random-clicking shopper: searches the instruction's key words, then clicks uniformly at random."""
    import random

    from sadcli.envs.webshop import instruction_keywords

    rng, rewards = random.Random(seed), []
    for t in tasks:
        env.reset(t)
        for _ in range(env.max_steps):
            acts = env.admissible_actions()
            a = (f"search[{instruction_keywords(env.s.goal.instruction)}]" if acts == ["search[<query>]"]
                 else rng.choice(acts))
            if env.step(a).done:
                break
        rewards.append(env.s.reward)
    n, wins = len(rewards), sum(r >= 1.0 - 1e-9 for r in rewards)
    mean = sum(rewards) / n
    se = statistics.stdev(rewards) / math.sqrt(n)
    return {"episodes": n, "score": round(100 * mean, 2),
            "score_ci95": [round(100 * (mean - 1.96 * se), 2), round(100 * (mean + 1.96 * se), 2)],
            "success": wins, "success_rate": round(wins / n, 4), "success_ci95": wilson(wins, n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA, help="the shared data folder (webshop/, hotpotqa/ inside)")
    ap.add_argument("--webshop-episodes", type=int, default=500)
    ap.add_argument("--hotpotqa-episodes", type=int, default=200)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    ws_dir, hp_dir = os.path.join(args.data, "webshop"), os.path.join(args.data, "hotpotqa")
    out: dict = {"cpus": os.cpu_count()}

    from sadcli.envs.webshop import WebShopEnv, instruction_keywords

    ws = WebShopEnv(ws_dir)
    queries = [instruction_keywords(g.instruction) for g in ws.data.goals()[: args.queries]]
    out["webshop_search"] = search_bench(ws.data.contents, queries, k1=0.9, b=0.4, stem=True)
    out["webshop_expert"] = expert_bench("webshop", {"data_dir": ws_dir}, "test", args.webshop_episodes)
    out["webshop_random"] = random_bench(ws, ws.tasks("test")[: args.webshop_episodes])

    from sadcli.envs.wikiqa import WikiQAEnv, _trigrams, gold_title_order

    hp = WikiQAEnv("hotpotqa", data_dir=hp_dir)
    c = hp.corpus
    texts = [" ".join([t, t, *_trigrams(t), p[0] if p else ""]) for t, p in zip(c.titles, c.pages, strict=True)]
    titles = [t for q in hp._by_split["dev"] for t in gold_title_order(q)][: args.queries]
    near = [t[: len(t) // 2] + t[len(t) // 2 + 1:] for t in titles]  # one letter dropped
    out["hotpotqa_search"] = search_bench(texts, [c._query(q) for q in near], k1=1.2, b=0.75, stem=False)
    out["hotpotqa_expert"] = expert_bench("wikiqa", {"corpus": "hotpotqa", "data_dir": hp_dir}, "dev",
                                          args.hotpotqa_episodes)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
