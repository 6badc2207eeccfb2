"""What batching can buy on this machine: one decode forward of the embedded 135M model, 1 row vs N rows.

Continuous batching (``bench_rollouts.py``) speeds rollouts up by decoding the rows of several episodes in
one forward. Its ceiling is set by the hardware: if a forward of 8 rows costs as much as one of 1 row (a
GPU, or a memory-bound CPU), 8 slots decode 8x faster; if it costs 2.5x, no scheduler gets more than 3.2x
out of the decode. This benchmark measures that cost directly: the SmolLM2-135M model (our CPU weight layout,
:func:`sadcli.teachers.hf.gemm_friendly_layout`), every row holding a ``--context`` (600) token KV cache,
one new token per row per forward; median of ``--repeats`` forwards after a warm-up.

Prints one JSON line: ms per forward for each row count, its ratio to one row, and the decode speed-up
batching gives at that row count (rows / ratio), with the machine.

    python benchmarks/bench_decode_rows.py                 # rows 1,2,4,8,16
    python benchmarks/bench_decode_rows.py --rows 1,8 --threads 1
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


def run(rows: list[int], context: int, repeats: int, threads: int, device: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sadcli.models.spec import load_model
    from sadcli.teachers.hf import gemm_friendly_layout

    model = load_model("smollm2-135m", device=device).eval()
    if device == "cpu":
        gemm_friendly_layout(model)
    vocab = model.config.vocab_size
    import inspect

    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    gen = torch.Generator().manual_seed(0)
    ms = {}
    for n in rows:
        ids = torch.randint(0, vocab, (n, context), generator=gen).to(device)
        with torch.inference_mode():
            cache = model(input_ids=ids, use_cache=True).past_key_values
            nxt = torch.randint(0, vocab, (n, 1), generator=gen).to(device)
            times = []
            for _ in range(repeats + 2):
                t0 = time.perf_counter()
                model(input_ids=nxt, use_cache=True, **{cache_arg: cache})
                if device != "cpu":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                cache.crop(-1)  # drop the token just fed: every forward sees the same context length
        ms[n] = 1000 * sorted(times[2:])[len(times[2:]) // 2]
    base = ms[rows[0]]
    return {
        "ms_per_forward": {n: round(v, 1) for n, v in ms.items()},
        "cost_vs_first": {n: round(v / base, 2) for n, v in ms.items()},
        "decode_speedup": {n: round(n / rows[0] / (v / base), 2) for n, v in ms.items()},
        "config": {"rows": rows, "context": context, "repeats": repeats, "threads": threads, "device": device,
                   "model": "smollm2-135m", "dtype": "float32"},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="1,2,4,8,16", help="comma-separated row counts (the first is the baseline)")
    ap.add_argument("--context", type=int, default=600, help="KV-cache length of every row")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = [int(r) for r in a.rows.split(",") if r.strip()]
    print(json.dumps(run(rows, a.context, a.repeats, a.threads, a.device)))


if __name__ == "__main__":
    main()
