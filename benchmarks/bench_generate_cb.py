"""Our continuous batching (:class:`sadcli.teachers.continuous.RowBatch`) vs transformers' own
(``model.generate_batch``, the ``ContinuousBatchingManager`` of transformers 5.x) on the same prompts.

transformers' manager stops a request only on end-of-sequence token ids, so the ReAct stop ("the action line
ended") is mapped to token ids: every vocabulary token whose text holds a line break ends a request, i.e.
each request writes one line. Both generators get that same stop (no stop strings), greedy decoding,
``--max-new-tokens`` (48), and the same prompts: the first ReAct prompt (no few-shot examples) of
``--episodes`` (32) TextWorldExpress ``twc`` games for the embedded SmolLM2-135M. Ours decodes all prompts
as rows of one batch (each prefilled alone, rows leaving as they stop); transformers' is given all requests
at once and schedules them itself (paged KV cache).

Prints one JSON line: wall time of each (best of ``--repeats``, alternating), the ratio
transformers / ours, and how many outputs are identical.

    python benchmarks/bench_generate_cb.py --episodes 8
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


def prompts_of(n: int, teacher) -> list[str]:
    from sadcli.agent.loop import EnvPool, EpisodeState, start_episode
    from sadcli.envs.registry import EnvSpec

    out = []
    with EnvPool(EnvSpec.parse("twx", {"game": "twc"}), 1, in_process=True) as pool:
        for task in pool.tasks("train")[:n]:
            st = EpisodeState(task=task, env=pool.info.name, prompt=pool.info.prompt)
            start_episode(st, pool.slots[0].request("reset", task.to_dict()))
            out.append(teacher.prompt(st))
    return out


def ours(teacher, prompts: list[str], newline: set[int]) -> tuple[float, list[list[int]]]:
    from sadcli.teachers.continuous import RowBatch

    g = teacher.gen
    g._shared = None  # no prefix kept from an earlier run
    eos = g.eos_ids
    g.eos_ids = eos | newline
    toks: dict[int, list[int]] = {}
    batch = RowBatch(g, [])
    orig = batch._take

    def take(row, t, _orig=orig):  # keep the stop token too, as transformers returns it
        done = _orig(row, t)
        if done:
            toks[row.key] = [*row.out, t] if t in g.eos_ids else list(row.out)
        return done

    batch._take = take
    for i, p in enumerate(prompts):
        batch.add(i, p, {})
    t0 = time.perf_counter()
    while len(batch):
        batch.step()
    wall = time.perf_counter() - t0
    g.eos_ids = eos
    return wall, [toks[i] for i in range(len(prompts))]


def theirs(teacher, prompts: list[str], newline: set[int], max_new: int) -> tuple[float, list[list[int]]]:
    from transformers import GenerationConfig

    g = teacher.gen
    ids = [g.encode(p) for p in prompts]
    cfg = GenerationConfig(max_new_tokens=max_new, do_sample=False, eos_token_id=sorted(g.eos_ids | newline),
                           pad_token_id=g.tok.pad_token_id)
    t0 = time.perf_counter()
    res = g.model.generate_batch(inputs=ids, generation_config=cfg, max_new_tokens=max_new, warmup=False)
    wall = time.perf_counter() - t0
    order = sorted(res.values(), key=lambda r: int(str(r.request_id).rsplit("_", 1)[-1]))
    return wall, [list(r.generated_tokens) for r in order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(a.threads)
    from sadcli.teachers import make_teacher

    teacher = make_teacher("hf:smollm2-135m", max_new_tokens=a.max_new_tokens, examples=False, device="cpu")
    tok = teacher.gen.tok
    newline = {i for i in range(len(tok)) if "\n" in tok.decode([i])}
    prompts = prompts_of(a.episodes, teacher)
    walls: dict[str, list[float]] = {"ours": [], "transformers": []}
    outs: dict[str, list] = {}
    error = None
    for _ in range(a.repeats):
        w, outs["ours"] = ours(teacher, prompts, newline)
        walls["ours"].append(round(w, 2))
        try:
            w, outs["transformers"] = theirs(teacher, prompts, newline, a.max_new_tokens)
            walls["transformers"].append(round(w, 2))
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            error = f"{type(e).__name__}: {e}"
            break
    best = {k: min(v) for k, v in walls.items() if v}
    same = sum(x == y for x, y in zip(outs.get("ours", []), outs.get("transformers", []), strict=False))
    print(json.dumps({
        "wall_s": walls, "transformers_over_ours": round(best["transformers"] / best["ours"], 2)
        if "transformers" in best else None,
        "identical_outputs": f"{same}/{len(prompts)}" if "transformers" in outs else None,
        "tokens": {k: sum(len(t) for t in v) for k, v in outs.items()}, "error": error,
        "newline_tokens": len(newline),
        "config": {"episodes": a.episodes, "max_new_tokens": a.max_new_tokens, "threads": a.threads,
                   "repeats": a.repeats, "model": "smollm2-135m", "device": "cpu"},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}",
    }))


if __name__ == "__main__":
    main()
