"""Aggregate evaluation episodes per model: rates with Wilson intervals, per task type, paired tests.

Everything here is a pure function of the records (plus an optional token counter), so a report can be
rebuilt from an episodes file alone. Rewards are read from the trajectory (``reward``) and from the
environment's last ``info`` (``meta.final_info``: wiki-QA/HotPotQA ``em`` and ``f1``, ScienceWorld and
WebShop ``score``), so new environments plug in by reporting those fields.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from sadcli.eval.stats import mean_sd, pairwise_mcnemar, wilson

SCORE_KEYS = ("em", "f1", "score")


def task_type(rec: dict) -> str:
    meta = rec.get("meta") or {}
    return str(meta.get("task_type") or meta.get("type") or meta.get("game") or rec.get("env") or "all")


def _words(text: str) -> int:
    return len(text.split())


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def rate(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": (k / n) if n else math.nan, "ci95": [lo, hi]}


def summarize_model(recs: list[dict], count_tokens: Callable[[str], int] | None = None) -> dict:
    count = count_tokens or _words
    n = len(recs)
    k = sum(bool(r.get("success")) for r in recs)
    by_type: dict[str, list[dict]] = defaultdict(list)
    by_seed: dict[int, list[dict]] = defaultdict(list)
    for r in recs:
        by_type[task_type(r)].append(r)
        by_seed[int(r.get("seed") or 0)].append(r)
    types = {t: rate(sum(bool(x.get("success")) for x in rs), len(rs)) for t, rs in sorted(by_type.items())}
    seed_rates = [sum(bool(x.get("success")) for x in rs) / len(rs) for _, rs in sorted(by_seed.items())]
    m, sd = mean_sd(seed_rates)
    steps_all = [len(r.get("steps") or []) for r in recs]
    steps_won = [len(r.get("steps") or []) for r in recs if r.get("success")]
    reasons = [count(s["reason"]) for r in recs for s in (r.get("steps") or []) if s.get("reason")]
    per_ep_reason = [sum(count(s["reason"]) for s in (r.get("steps") or []) if s.get("reason")) for r in recs]
    total_steps = sum(steps_all)
    invalid = sum(int((r.get("meta") or {}).get("invalid_actions", 0)) for r in recs)
    lat = [float(r.get("latency_s") or 0.0) for r in recs]
    gen_tokens = sum(int(r.get("generated_tokens") or 0) for r in recs)
    scores: dict[str, float] = {}
    for key in SCORE_KEYS:
        vals = [float(v) for r in recs
                if isinstance(v := ((r.get("meta") or {}).get("final_info") or {}).get(key), (int, float))
                and not isinstance(v, bool)]
        if vals:
            scores[key] = _mean(vals)
    any_won: dict[str, bool] = {}
    for r in recs:
        any_won[str(r.get("id"))] = any_won.get(str(r.get("id")), False) or bool(r.get("success"))
    return {
        "episodes": n,
        # pass@k over the k seeds (--samples): an episode counts when any of its runs won
        "pass_at_k": rate(sum(any_won.values()), len(any_won)) if len(by_seed) > 1 else None,
        "success": rate(k, n),
        "success_macro": _mean([v["rate"] for v in types.values()]),
        "task_types": types,
        "seeds": {"n": len(seed_rates), "mean": m, "sd": sd},
        "reward_mean": _mean([float(r.get("reward") or 0.0) for r in recs]),
        "scores": scores,
        "reason_tokens_per_span": _mean(reasons),
        "reason_tokens_per_episode": _mean(per_ep_reason),
        "steps_mean": _mean(steps_all),
        "steps_mean_success": _mean(steps_won),
        "latency_s_mean": _mean(lat),
        "tokens_per_s": gen_tokens / sum(lat) if gen_tokens and sum(lat) > 0 else math.nan,
        "generated_tokens": gen_tokens,
        "invalid_action_rate": invalid / total_steps if total_steps else math.nan,
        "terminations": dict(Counter(str(r.get("termination")) for r in recs).most_common()),
    }


def paired_tests(by_model: dict[str, list[dict]]) -> list[dict]:
    """Exact McNemar test for every pair of models on the episodes (id, seed) both played."""
    return pairwise_mcnemar({m: {(r.get("id"), r.get("seed")): bool(r.get("success")) for r in recs}
                             for m, recs in by_model.items()})


def summarize(records: list[dict], labels: list[str] | None = None,
              count_tokens: Callable[[str], int] | None = None) -> dict:
    """``{"models": {label: summary}, "pairs": [...]}`` over all records (grouped by ``model``)."""
    by_model: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_model[str(r.get("model"))].append(r)
    order = [m for m in (labels or []) if m in by_model] + [m for m in by_model if m not in (labels or [])]
    ordered = {m: by_model[m] for m in order}
    return {"models": {m: summarize_model(rs, count_tokens) for m, rs in ordered.items()},
            "pairs": paired_tests(ordered)}
