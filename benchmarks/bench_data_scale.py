"""Benchmark: data at scale — `sad segment` against a bare JSON round trip, and `sad distill`'s data loading
(tokenization + masks) built once into the token cache, then memory-mapped, with its peak memory.

    python benchmarks/bench_data_scale.py --records 1000000          # the issue's size
    python benchmarks/bench_data_scale.py --records 100000 --repeats 1 --workers 2

Generates N synthetic short trajectories (schema-v1 ``steps``, what ``sad collect`` writes: a task and 1-4
steps of reason / action / observation, ~60-120 tokens each, deterministic in the index) into a temp folder,
then, each in a fresh subprocess (so every peak RSS is that process's own, ``ru_maxrss``):

1. ``segment``: a bare ``json.loads`` + ``json.dumps`` round trip of the file (the baseline) against
   ``sad segment FILE -q`` (one process) and ``sad segment FILE -q -j W`` (W worker processes), interleaved,
   best of ``--repeats``, all writing to /dev/null. Ratios against the baseline measured in the same run, in
   wall time and in CPU time (user + system of the process and its workers: on a machine whose cores are
   busy with other work, wall time measures the scheduler more than the program).
2. ``distill data``: what ``sad distill`` does before its first optimizer step — ``prepare_data`` (read,
   check, tokenize, mask) + the per-example length list the batch sampler needs + the record-teacher count
   + the first padded micro-batch — with the embedded SmolLM2 tokenizer, max length 1024. ``first``: the
   token cache is empty (it is built); ``second``: the same command again (cache hit, memory-mapped).
   ``memory``: the same with ``--token-cache off`` (today's in-memory path), at ``--memory-records`` records
   (default N / 10) and at N when ``--memory-full`` is given, to show which peak grows with N.

Prints one JSON line per measurement and a summary. Run it at ``nice -n 10`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORDS = ("search look find the a river city film author born year capital country people number first "
         "answer think need check page result title which who when where album band").split()


def trajectory(i: int) -> dict:
    rng = random.Random(i)
    w = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
    steps = []
    for _ in range(rng.randint(1, 4)):
        steps.append({"reason": f"I {w(rng.randint(4, 10))}.", "action": f"search[{w(rng.randint(1, 3))}]",
                      "observation": w(rng.randint(5, 15)).capitalize() + "."})
    steps[-1]["action"] = f"finish[{w(2)}]"
    steps[-1]["observation"] = "Episode finished, reward = 1"
    return {"schema": 1, "id": f"syn-{i}", "task": w(rng.randint(6, 12)).capitalize() + "?", "steps": steps,
            "env": "synthetic", "teacher": "expert", "success": True}


def generate(path: str, n: int) -> None:
    from sadcli.jsonl import dumps_line

    with open(path, "wb") as fh:
        for i in range(n):
            fh.write(dumps_line(trajectory(i)))


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_segment import BASELINE  # noqa: E402  (the bare json.loads + json.dumps round trip, defined once)


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and every process it started, workers included)."""
    c0 = _cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        subprocess.run(cmd, stdout=devnull, check=True)
    return time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - c0


# --- the distill data-loading child ----------------------------------------------------------------

def load_child(path: str, cache: str | None) -> dict:
    """Runs in a fresh process: the data part of `sad distill` up to its first micro-batch."""
    t0 = time.perf_counter()
    from sadcli.distill.data import pad_batch
    from sadcli.distill.objective import provenance
    from sadcli.distill.pipeline import prepare_data
    from sadcli.models.spec import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    t_tok = time.perf_counter()
    cpu_tok = _cpu(resource.RUSAGE_SELF)
    p = prepare_data(path, tok, max_length=1024, token_cache=cache)
    t_prep = time.perf_counter()
    lengths = [len(ex.input_ids) for ex in p.examples]
    prov = provenance(p.examples, "smollm2-135m", "sad")
    batch = pad_batch([p.examples[i] for i in range(8)], tok.pad_token_id or 0)
    t_end = time.perf_counter()
    return {"examples": len(lengths), "tokens": int(sum(lengths)), "fingerprint": p.fingerprint,
            "teachers": prov["record_teachers"], "first_batch": list(batch["input_ids"].shape),
            "seconds": t_end - t_tok, "prepare_s": t_prep - t_tok, "after_prepare_s": t_end - t_prep,
            "imports_and_tokenizer_s": t_tok - t0, "cpu_s": _cpu(resource.RUSAGE_SELF) - cpu_tok,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(path: str, cache: str | None) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import json, sys; sys.path.insert(0, {here!r}); import bench_data_scale as b; "
            f"print(json.dumps(b.load_child({path!r}, {cache!r})))")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(p.stderr[-3000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--memory-records", type=int, default=None, help="in-memory path at this size (default N/10)")
    ap.add_argument("--memory-full", action="store_true", help="also run the in-memory path at N")
    ap.add_argument("--skip", choices=("segment", "distill"), action="append", default=[])
    ap.add_argument("--tmp", default=None, help="folder for the generated data and caches (default: a temp dir)")
    args = ap.parse_args()
    n = args.records
    results: dict = {"records": n, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        raw = os.path.join(tmp, "raw.jsonl")
        t0 = time.perf_counter()
        generate(raw, n)
        results["generate_s"] = round(time.perf_counter() - t0, 1)
        results["raw_mb"] = round(os.path.getsize(raw) / 1e6, 1)
        print(json.dumps({"generated": n, "mb": results["raw_mb"]}), flush=True)

        if "segment" not in args.skip:
            base_cmd = [sys.executable, "-c", BASELINE, raw]
            one_cmd = [sys.executable, "-m", "sadcli", "segment", raw, "-q"]
            par_cmd = one_cmd + ["-j", str(args.workers)]
            base, one, par = [], [], []
            for _ in range(args.repeats):  # interleaved, so load from other processes hits all alike
                base.append(timed(base_cmd))
                one.append(timed(one_cmd))
                par.append(timed(par_cmd))
                print(json.dumps({"bare_wall_cpu_s": base[-1], "segment_wall_cpu_s": one[-1],
                                  f"segment_j{args.workers}_wall_cpu_s": par[-1]}), flush=True)
            b, bc = min(w for w, _ in base), min(c for _, c in base)
            o, oc = min(w for w, _ in one), min(c for _, c in one)
            w_, wc = min(w for w, _ in par), min(c for _, c in par)
            results["segment"] = {"bare_s": round(b, 2), "sad_s": round(o, 2), "sad_workers_s": round(w_, 2),
                                  "workers": args.workers, "ratio": round(o / b, 2), "ratio_workers": round(w_ / b, 2),
                                  "bare_cpu_s": round(bc, 2), "sad_cpu_s": round(oc, 2),
                                  "sad_workers_cpu_s": round(wc, 2), "cpu_ratio": round(oc / bc, 2),
                                  "cpu_ratio_workers": round(wc / bc, 2), "runs": args.repeats}

        if "distill" not in args.skip:
            seg = os.path.join(tmp, "seg.jsonl")
            subprocess.run([sys.executable, "-m", "sadcli", "segment", raw, "-q", "-j", str(args.workers),
                            "-o", seg], check=True, cwd=ROOT)
            cache = os.path.join(tmp, "tokens")
            first = child(seg, cache)
            print(json.dumps({"first": first}), flush=True)
            second = child(seg, cache)
            print(json.dumps({"second": second}), flush=True)
            assert first["fingerprint"] == second["fingerprint"]
            m = args.memory_records or max(1, n // 10)
            small = os.path.join(tmp, "small.jsonl")
            with open(seg, "rb") as src, open(small, "wb") as dst:
                for i, line in enumerate(src):
                    if i >= m:
                        break
                    dst.write(line)
            mem_small = child(small, None)
            cached_small = child(small, os.path.join(tmp, "tokens-small"))
            print(json.dumps({"memory_small": mem_small, "cached_small_first": cached_small}), flush=True)
            mem_full = child(seg, None) if args.memory_full else None
            if mem_full:
                print(json.dumps({"memory_full": mem_full}), flush=True)
                assert mem_full["fingerprint"] == first["fingerprint"]
            cache_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache) for f in fs) / 1e6
            results["distill"] = {
                "examples": first["examples"], "tokens": first["tokens"], "cache_mb": round(cache_mb, 1),
                "first_s": round(first["seconds"], 2), "second_s": round(second["seconds"], 2),
                "speedup": round(first["seconds"] / second["seconds"], 1),
                "first_cpu_s": round(first.get("cpu_s", 0), 2), "second_cpu_s": round(second.get("cpu_s", 0), 2),
                "cpu_speedup": round(first.get("cpu_s", 0) / max(second.get("cpu_s", 0), 1e-9), 1),
                "first_peak_rss_mb": round(first["peak_rss_mb"]), "second_peak_rss_mb": round(second["peak_rss_mb"]),
                "second_prepare_s": round(second["prepare_s"], 2), "second_after_prepare_s":
                    round(second["after_prepare_s"], 2),
                f"cached_first_peak_rss_mb_at_{m}": round(cached_small["peak_rss_mb"]),
                f"in_memory_peak_rss_mb_at_{m}": round(mem_small["peak_rss_mb"]),
                "in_memory_peak_rss_mb_at_n": round(mem_full["peak_rss_mb"]) if mem_full else None,
            }
    results["load_avg_end"] = os.getloadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
