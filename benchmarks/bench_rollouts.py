"""Benchmark of `sad eval` rollouts: a 135M model, TextWorldExpress, batched vs one episode at a time.

The embedded SmolLM2-135M-Instruct (greedy, the environment's ReAct prompt without few-shot examples) plays
``--episodes`` (32) TextWorldExpress ``twc`` episodes of ``--steps`` steps each, once with ``--parallel``
(8) episodes at once (one batched forward per token for all active episodes, per-episode KV caches, a
finished episode's slot refilled at the next round) and once one episode at a time — the same code path
``sad eval`` and ``sad collect --teacher hf:`` use. The variants alternate ``--repeats`` times so that load
from other processes hits both alike; the best wall time of each counts. Every environment worker plays one
reset before the clock starts (JVM start-up).

Prints one JSON line: the speed-up (one-at-a-time / batched wall time), episodes per minute, and how many
generated actions agree between the two variants (greedy decoding in a batch may differ from one-row
decoding in the last bits of the logits, so a rare argmax tie can flip).

    python benchmarks/bench_rollouts.py                       # 32 episodes x 4 steps (minutes on 2 cores)
    python benchmarks/bench_rollouts.py --episodes 8 --steps 2 # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run(episodes: int, steps: int, parallel: int, max_new_tokens: int, threads: int, repeats: int,
        device: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sadcli.agent.loop import EnvPool
    from sadcli.envs.registry import EnvSpec
    from sadcli.eval.policies import EvalGen, make_policy, parse_model
    from sadcli.eval.rollouts import RolloutPlan, run_rollouts

    ref = parse_model("smollm2-135m")
    policy = make_policy(ref, EvalGen(max_new_tokens=max_new_tokens, examples=False, device=device))
    spec = EnvSpec.parse("twx", {"game": "twc"})
    with EnvPool(spec, 1) as pool:
        tasks = pool.tasks("train")[:episodes]
        run_rollouts(pool, RolloutPlan(tasks[:1], [0], 1), [("warm-up", lambda s: policy)])
    walls: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
    actions: dict[str, dict] = {}
    tokens: dict[str, int] = {}
    for _ in range(repeats):
        for name, slots in (("batched", parallel), ("one_at_a_time", 1)):
            with EnvPool(spec, slots) as pool:
                for slot in pool.slots:
                    slot.request("reset", tasks[0].to_dict())
                t0 = time.perf_counter()
                recs = run_rollouts(pool, RolloutPlan(tasks, [0], steps), [(name, lambda s: policy)])
                wall = time.perf_counter() - t0
            walls[name].append(round(wall, 2))
            actions[name] = {r["id"]: [s["action"] for s in r["steps"]] for r in recs}
            tokens[name] = sum(r["generated_tokens"] for r in recs)
            print(json.dumps({name: wall, "episodes": len(recs), "tokens": tokens[name]}), file=sys.stderr)
    same = sum(a == b for i in actions["batched"]
               for a, b in zip(actions["batched"][i], actions["one_at_a_time"].get(i, []), strict=False))
    total = sum(len(v) for v in actions["batched"].values())
    best = {k: min(v) for k, v in walls.items()}
    return {
        "speedup": round(best["one_at_a_time"] / best["batched"], 2),
        "episodes_per_min": {k: round(60 * episodes / v, 2) for k, v in best.items()},
        "wall_s": walls, "actions_agreeing": f"{same}/{total}", "generated_tokens": tokens,
        "config": {"episodes": episodes, "steps": steps, "parallel": parallel, "max_new_tokens": max_new_tokens,
                   "threads": threads, "repeats": repeats, "model": "smollm2-135m", "device": device,
                   "generator": "sadcli HFGenerator (own batched loop, per-episode KV cache)"},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4, help="step cap per episode")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(run(a.episodes, a.steps, a.parallel, a.max_new_tokens, a.threads, a.repeats, a.device)))


if __name__ == "__main__":
    main()
