"""Episode length and success of collected trajectories: ``python benchmarks/expert_episode_stats.py FILE.jsonl...``.

Prints, overall and per task type (``meta.task_type`` when present): episodes, success with its 95%
Wilson interval (scipy), and the median / 90th percentile / max number of steps. Used for the ALFWorld
expert numbers in the README (``sad collect --env alfworld ... -o FILE`` first).
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
    return {"n": n, "success": won / n if n else 0.0, "ci": (ci.low, ci.high) if ci else (0.0, 0.0),
            "median": float(np.median(steps)) if n else 0.0,
            "p90": float(np.percentile(steps, 90)) if n else 0.0, "max": int(steps.max()) if n else 0}


def main(paths: list[str]) -> None:
    records = []
    for p in paths:
        with open(p, encoding="utf-8") as fh:
            records += [json.loads(line) for line in fh if line.strip()]
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r.get("meta") or {}).get("task_type", "-")].append(r)
    print(f"{'group':32} {'n':>4} {'success':>8} {'95% CI':>15} {'median':>7} {'p90':>6} {'max':>5}")
    for name, recs in [("all", records)] + sorted(groups.items()):
        s = summarize(recs)
        print(f"{name:32} {s['n']:>4} {s['success']:>8.1%} {s['ci'][0]:>7.1%}-{s['ci'][1]:<7.1%} "
              f"{s['median']:>7.1f} {s['p90']:>6.1f} {s['max']:>5}")


if __name__ == "__main__":
    main(sys.argv[1:])
