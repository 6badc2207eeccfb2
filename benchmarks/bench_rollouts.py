"""Benchmark of `sad eval` rollouts: a 135M model, TextWorldExpress, batched vs one episode at a time.

The embedded SmolLM2-135M-Instruct (greedy, the environment's ReAct prompt without few-shot examples) plays
``--episodes`` (32) TextWorldExpress ``twc`` episodes of ``--steps`` steps each, in three variants — the code
path ``sad eval`` and ``sad collect --teacher hf:`` use (:func:`sadcli.agent.scheduler.play`):

- ``continuous``: ``--parallel`` (8) episodes at once, token-level continuous batching (a row that wrote its
  action leaves the decode batch, its episode's next prompt joins it while the other rows decode; a new
  episode fills a free slot at once), per-episode KV caches;
- ``rounds``: the same 8 slots played round by round (every round waits for its longest answer; the path
  before continuous batching, ``continuous=false``);
- ``one_at_a_time``: one slot, rounds (the baseline).

The variants alternate ``--repeats`` times so that load from other processes hits them alike; the best
wall time of each counts. Every environment worker plays one reset before the clock starts (JVM start-up).

Prints one JSON line: the speed-ups over one at a time (the target: continuous >= 3x; wall time), the same
ratio of this process's CPU time (the model's work, excluding the environment workers: a steadier measure on
a machine shared with other jobs, but blind to the overlap of environment steps with decoding), episodes per minute,
and how many generated actions agree with the baseline (greedy decoding in a batch may differ from one-row
decoding in the last bits of the logits, so a rare argmax tie can flip).

    python benchmarks/bench_rollouts.py                       # 32 episodes x 4 steps (minutes on 2 cores)
    python benchmarks/bench_rollouts.py --episodes 8 --steps 2 # a quick look
    python benchmarks/bench_rollouts.py --only continuous,one_at_a_time
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
        device: str, only: list[str] | None = None) -> dict:
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
    variants = {"continuous": (parallel, True), "rounds": (parallel, False), "one_at_a_time": (1, False)}
    walls: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    actions: dict[str, dict] = {}
    tokens: dict[str, int] = {}
    for _ in range(repeats):
        for name, (slots, continuous) in variants.items():
            if only and name not in only:
                continue
            policy.teacher.opts.continuous = continuous
            with EnvPool(spec, slots) as pool:
                for slot in pool.slots:
                    slot.request("reset", tasks[0].to_dict())
                t0, c0 = time.perf_counter(), time.process_time()
                recs = run_rollouts(pool, RolloutPlan(tasks, [0], steps), [(name, lambda s: policy)])
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            walls[name].append(round(wall, 2))
            cpus[name].append(round(cpu, 2))
            actions[name] = {r["id"]: [s["action"] for s in r["steps"]] for r in recs}
            tokens[name] = sum(r["generated_tokens"] for r in recs)
            print(json.dumps({name: wall, "cpu_s": cpu, "episodes": len(recs), "tokens": tokens[name],
                              "load": os.getloadavg()[0]}), file=sys.stderr, flush=True)
    best = {k: min(v) for k, v in walls.items() if v}
    base = actions.get("one_at_a_time", {})
    agree = {}
    for name in actions:
        if name == "one_at_a_time" or not base:
            continue
        same = sum(a == b for i in actions[name] for a, b in zip(actions[name][i], base.get(i, []), strict=False))
        agree[name] = f"{same}/{sum(len(v) for v in actions[name].values())}"
    speedup = {k: round(best["one_at_a_time"] / v, 2) for k, v in best.items()
               if k != "one_at_a_time" and "one_at_a_time" in best}
    best_cpu = {k: min(v) for k, v in cpus.items() if v}
    cpu_ratio = {k: round(best_cpu["one_at_a_time"] / v, 2) for k, v in best_cpu.items()
                 if k != "one_at_a_time" and "one_at_a_time" in best_cpu}
    return {
        "speedup": speedup,
        "cpu_time_ratio": cpu_ratio, "cpu_s": cpus,
        "episodes_per_min": {k: round(60 * episodes / v, 2) for k, v in best.items()},
        "wall_s": walls, "actions_agreeing_with_one_at_a_time": agree, "generated_tokens": tokens,
        "config": {"episodes": episodes, "steps": steps, "parallel": parallel, "max_new_tokens": max_new_tokens,
                   "threads": threads, "repeats": repeats, "model": "smollm2-135m", "device": device,
                   "generator": "sadcli RowBatch (own continuous batching, per-episode KV cache)"},
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
    ap.add_argument("--only", default="", help="comma-separated variants to run (continuous,rounds,one_at_a_time)")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    only = [v for v in a.only.split(",") if v] or None
    print(json.dumps(run(a.episodes, a.steps, a.parallel, a.max_new_tokens, a.threads, a.repeats, a.device, only)))


if __name__ == "__main__":
    main()
