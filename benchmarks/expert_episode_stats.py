"""Episode length, success and reasoning coverage of collected trajectories.

    python benchmarks/expert_episode_stats.py FILE.jsonl...
    python benchmarks/expert_episode_stats.py --react-prompts ../shared/data/react_alfworld_prompts.json

Prints, overall and per task type (``meta.task_type`` when present): episodes, success with its 95%
Wilson interval (scipy), the median / 90th percentile / max number of steps, reasoning coverage (share
of steps with a thought) and the number of distinct thoughts. Used for the ALFWorld expert numbers in
the README (``sad collect --env alfworld ... -o FILE`` first).

``--react-prompts`` measures the same coverage in the ReAct paper's own ALFWorld few-shot trajectories
(``react_*`` keys: the share of actions with at least one ``> think:`` line right before them), the
reference for "ReAct-like" coverage.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np
from scipy.stats import binomtest


def summarize(records: list[dict]) -> dict:
    steps = np.array([len(r.get("steps") or []) for r in records])
    won = sum(bool(r.get("success")) for r in records)
    n = len(records)
    ci = binomtest(won, n).proportion_ci(method="wilson") if n else None
    thoughts = [s.get("reason") for r in records for s in r.get("steps") or []]
    with_thought = [t for t in thoughts if t and t.strip()]
    return {"n": n, "success": won / n if n else 0.0, "won": won, "ci": (ci.low, ci.high) if ci else (0.0, 0.0),
            "median": float(np.median(steps)) if n else 0.0,
            "p90": float(np.percentile(steps, 90)) if n else 0.0, "max": int(steps.max()) if n else 0,
            "steps": len(thoughts), "coverage": len(with_thought) / len(thoughts) if thoughts else 0.0,
            "distinct": len(set(with_thought))}


def react_prompt_coverage(path: str) -> dict:
    """Actions, and actions preceded by a ``> think:`` line, in ReAct's ALFWorld prompts (``react_*``)."""
    with open(path, encoding="utf-8") as fh:
        prompts = json.load(fh)
    actions = with_thought = trajectories = 0
    per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # react_<type>_<i> -> [actions, with thought]
    for key, text in prompts.items():
        if not key.startswith("react_"):
            continue
        trajectories += 1
        counts = per_type[key.split("_")[1]]
        thought = False
        for line in text.split("\n"):
            if line.startswith("> think:"):
                thought = True
            elif line.startswith("> "):
                actions += 1
                with_thought += thought
                counts[0] += 1
                counts[1] += thought
                thought = False
    return {"trajectories": trajectories, "actions": actions, "with_thought": with_thought,
            "coverage": with_thought / actions if actions else 0.0,
            "per_type": {t: c[1] / c[0] for t, c in per_type.items() if c[0]}}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--react-prompts"]:
        c = react_prompt_coverage(argv[1])
        print(f"ReAct ALFWorld prompts: {c['trajectories']} trajectories, {c['actions']} actions, "
              f"{c['with_thought']} with a thought before them (coverage {c['coverage']:.1%}); per task type: "
              + ", ".join(f"{t} {v:.1%}" for t, v in c["per_type"].items()))
        return
    records = []
    for p in argv:
        with open(p, encoding="utf-8") as fh:
            records += [json.loads(line) for line in fh if line.strip()]
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r.get("meta") or {}).get("task_type", "-")].append(r)
    print(f"{'group':32} {'n':>4} {'won':>4} {'success':>8} {'95% CI':>15} {'median':>7} {'p90':>6} {'max':>5} "
          f"{'coverage':>8} {'distinct':>8}")
    for name, recs in [("all", records)] + sorted(groups.items()):
        s = summarize(recs)
        print(f"{name:32} {s['n']:>4} {s['won']:>4} {s['success']:>8.1%} {s['ci'][0]:>7.1%}-{s['ci'][1]:<7.1%} "
              f"{s['median']:>7.1f} {s['p90']:>6.1f} {s['max']:>5} {s['coverage']:>8.1%} {s['distinct']:>8}")


if __name__ == "__main__":
    main(sys.argv[1:])
