"""Benchmark of `sad collect`: expert speed per environment, and batched vs one-at-a-time model episodes.

1. Per environment (twx, alfworld, scienceworld): the expert plays ``--episodes`` episodes in one
   worker process (as ``sad collect -p 1`` does); reports episodes per minute (resets included) and
   environment steps per second.
2. Model teacher (``hf:smollm2-135m``, greedy): the same ``--hf-episodes`` TextWorldExpress episodes
   (``--hf-steps`` steps each) played one at a time (1 slot, one prompt per generate call) and then all
   at once (``--hf-episodes`` slots, one batched generate call per round), alternating ``--repeats``
   times so that load from other processes hits both alike. Every environment worker plays one reset
   before the clock starts (a worker's first game pays the JVM warm-up, once per worker and run, which
   would otherwise be charged 8 times to the batched variant and once to the other). ``--no-prefix-cache``
   measures the teacher without its kept KV caches. Prints the speed-up (best one-at-a-time
   wall time / best batched wall time) — the ratio against a baseline measured in the same run — the
   speed-up of each repeat, and how many of the generated actions agree between the two variants.

Prints one JSON line with every figure.

    python benchmarks/bench_collect.py                           # all of it (a few minutes on 2 cores)
    python benchmarks/bench_collect.py --envs twx --skip-hf      # only the fast part
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ALFWORLD = os.path.join(ROOT, "..", "shared", "data", "alfworld")

ENV_OPTS = {
    "twx": ("train", {"game": "twc"}),
    "alfworld": ("valid_unseen", {"data_dir": ALFWORLD}),
    "scienceworld": ("train", {"task": "boil,find-living-thing,chemistry-mix,melt"}),
}


def bench_expert(env: str, episodes: int, alfworld_cache: str = "disk") -> dict:
    from sadcli.agent.loop import EnvPool, run_episodes
    from sadcli.envs.registry import EnvSpec
    from sadcli.teachers import make_teacher

    split, opts = ENV_OPTS[env]
    if env == "alfworld":  # resets reuse PDDL translations (benchmarks/bench_alfworld_reset.py measures it)
        opts = {**opts, "cache": alfworld_cache}
    with EnvPool(EnvSpec.parse(env, opts), 1) as pool:
        tasks = pool.tasks(split)[:episodes]
        t0 = time.perf_counter()
        recs = list(run_episodes(pool, tasks, make_teacher("expert")))
        wall = time.perf_counter() - t0
    steps = sum(r["meta"]["steps"] for r in recs)
    return {"env": env, "episodes": len(recs), "success": sum(r["success"] for r in recs), "steps": steps,
            "wall_s": round(wall, 2), "episodes_per_min": round(60 * len(recs) / wall, 1),
            "steps_per_s": round(steps / wall, 1), **({"cache": opts["cache"]} if "cache" in opts else {})}


def bench_hf(episodes: int, steps: int, max_new_tokens: int, threads: int, repeats: int = 2,
             prefix_cache: bool = True, few_shot: bool = False) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sadcli.agent.loop import EnvPool, run_episodes
    from sadcli.envs.registry import EnvSpec
    from sadcli.teachers import make_teacher

    teacher = make_teacher("hf:smollm2-135m", max_new_tokens=max_new_tokens, examples=few_shot, device="cpu",
                           prefix_cache=prefix_cache)
    calls = []
    orig = teacher.gen._generate

    def counted(prompts, stops, holders=None):
        calls.append(len(prompts))
        return orig(prompts, stops, holders)

    teacher.gen._generate = counted
    spec = EnvSpec.parse("twx", {"game": "twc"})
    # warm-up (first generate call pays one-time costs)
    with EnvPool(spec, 1) as pool:
        tasks = pool.tasks("train")[:episodes]
        list(run_episodes(pool, tasks[:1], teacher, max_steps=1))
    out: dict = {}
    runs: dict = {}
    walls: dict = {"one_at_a_time": [], "batched": []}
    # alternate the two variants so that load from other processes hits both alike; keep the best of each
    order = [("batched", episodes), ("one_at_a_time", 1)] * repeats
    for name, slots in order:
        calls.clear()
        with EnvPool(spec, slots) as pool:
            for slot in pool.slots:  # each worker's first game (JVM start-up) happens before the clock starts
                slot.request("reset", tasks[0].to_dict())
            t0 = time.perf_counter()
            recs = list(run_episodes(pool, tasks, teacher, max_steps=steps))
            wall = time.perf_counter() - t0
        walls[name].append(round(wall, 2))
        n_steps = sum(r["meta"]["steps"] for r in recs)
        runs[name] = {r["id"]: [s["action"] for s in r["steps"]] for r in recs}
        out[name] = {"wall_s": min(walls[name]), "all_wall_s": walls[name], "steps": n_steps,
                     "generate_calls": len(calls), "max_batch": max(calls),
                     "steps_per_s": round(n_steps / min(walls[name]), 3)}
        print(json.dumps({name: out[name]}), file=sys.stderr)
    same = sum(a == b for i in runs["batched"] for a, b in zip(runs["batched"][i], runs["one_at_a_time"][i], strict=False))
    total = sum(len(v) for v in runs["batched"].values())
    out["speedup"] = round(out["one_at_a_time"]["wall_s"] / out["batched"]["wall_s"], 2)
    out["speedup_per_repeat"] = [round(a / b, 2) for a, b in zip(walls["one_at_a_time"], walls["batched"], strict=False)]
    out["actions_agreeing"] = f"{same}/{total}"
    out["config"] = {"episodes": episodes, "steps": steps, "max_new_tokens": max_new_tokens,
                     "threads": threads, "repeats": repeats, "few_shot": few_shot,
                     "prefix_cache": prefix_cache, "model": "smollm2-135m", "device": "cpu"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", default="twx,alfworld,scienceworld")
    ap.add_argument("--episodes", type=int, default=5, help="expert episodes per environment")
    ap.add_argument("--alfworld-cache", default="disk", choices=["disk", "memory", "off"],
                    help="ALFWorld translation cache (disk: warm after a first run)")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--hf-episodes", type=int, default=8)
    ap.add_argument("--hf-steps", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each variant; the best counts")
    ap.add_argument("--no-prefix-cache", action="store_true",
                    help="re-encode every prompt in full (the KV cache is not kept between steps)")
    ap.add_argument("--few-shot", action="store_true", help="include the environment's few-shot examples")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result: dict = {"machine": f"{os.cpu_count()} CPU cores", "expert": []}
    for env in [e for e in a.envs.split(",") if e]:
        try:
            r = bench_expert(env, a.episodes, a.alfworld_cache)
        except Exception as e:  # noqa: BLE001 - an env that is not installed is reported, not fatal
            r = {"env": env, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(r), file=sys.stderr)
        result["expert"].append(r)
    if not a.skip_hf:
        result["hf"] = bench_hf(a.hf_episodes, a.hf_steps, a.max_new_tokens, a.threads, a.repeats,
                                 prefix_cache=not a.no_prefix_cache, few_shot=a.few_shot)
        print(json.dumps(result["hf"]), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
