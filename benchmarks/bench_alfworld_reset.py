"""ALFWorld reset time with and without the translation cache (``sadcli/envs/alfworld_cache.py``).

For each of ``--games`` games (one per task type first, from ``--split``), ``--repeats`` times, in
the same process and interleaved so that load from other processes hits every variant alike:

- ``off``: textworld as shipped (four PDDL translations and one grammar parse per reset);
- ``cold``: the cache on, empty (a worker's first reset of a game never played before: one
  translation — no replanning translation, as ``ALFWorldEnv`` uses it — and the parse, written to disk);
- ``memory``: the same worker resets that game again;
- ``disk``: a new worker (new cache object) resets it, the files written by ``cold`` on disk.

Prints the median seconds per reset of each variant and its speed-up over ``off`` measured in the
same run (median off / median variant), and checks that every variant gives the same first
observation and admissible commands. One JSON line on stdout.

    python benchmarks/bench_alfworld_reset.py --games 6 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ALFWORLD = os.path.join(ROOT, "..", "shared", "data", "alfworld")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=ALFWORLD)
    ap.add_argument("--split", default="valid_unseen")
    ap.add_argument("--games", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    from sadcli.envs.alfworld import ALFWorldEnv
    from sadcli.envs.alfworld_cache import TranslationCache

    env = ALFWorldEnv(a.data_dir, cache="off")
    first: dict = {}
    rest = []
    for t in env.tasks(a.split):
        if t.meta["task_type"] in first:
            rest.append(t)
        else:
            first[t.meta["task_type"]] = t
    tasks = (list(first.values()) + rest)[:a.games]
    env.reset(tasks[0])  # imports, the train prior: paid once, before the clock

    def timed(task, cache):
        env._cache = cache
        t0 = time.perf_counter()
        obs = env.reset(task)
        return time.perf_counter() - t0, (obs, env.admissible_actions())

    times: dict[str, list[float]] = {"off": [], "cold": [], "memory": [], "disk": []}
    mismatches = 0
    for _ in range(a.repeats):
        for task in tasks:
            with tempfile.TemporaryDirectory() as d:
                t, ref = timed(task, None)
                times["off"].append(t)
                worker = TranslationCache(d, replan=False)  # as ALFWorldEnv uses it
                for name, cache in (("cold", worker), ("memory", worker),
                                    ("disk", TranslationCache(d, replan=False))):
                    t, got = timed(task, cache)
                    times[name].append(t)
                    mismatches += got != ref
    env.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "machine": f"{os.cpu_count()} CPU cores", "split": a.split, "games": len(tasks), "repeats": a.repeats,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "speedup_vs_off": {k: round(med["off"] / v, 2) for k, v in med.items() if k != "off"},
        "same_first_observation_and_commands": mismatches == 0,
    }
    for k in times:
        print(f"{k:7} median {med[k]:.3f} s/reset  ({len(times[k])} resets)"
              + ("" if k == "off" else f"  x{med['off'] / med[k]:.2f} vs off"), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
