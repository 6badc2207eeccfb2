"""Benchmark: `sad segment` vs a bare json.loads + json.dumps round trip of the same file, same run.

    python benchmarks/bench_segment.py [--records 100000] [--repeats 3] [--workers 2]

Builds a large JSONL by repeating FireAct's 500 HotPotQA trajectories (../shared/data), then times, as
subprocesses writing to /dev/null, (a) the bare round trip, (b) `sad segment FILE -q` and, with
``--workers W`` > 1, (c) `sad segment FILE -q -j W`. Prints the best-of-N times and the ratios (target:
<= 3x in one process; <= 2x with workers, issue #15). Both sides pay interpreter start-up.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "fireact_hotpotqa_messages.jsonl"

BASELINE = (
    "import json, sys\n"
    "out = sys.stdout\n"
    "with open(sys.argv[1], encoding='utf-8') as fh:\n"
    "    for line in fh:\n"
    "        if line.strip():\n"
    "            out.write(json.dumps(json.loads(line)) + '\\n')\n"
)


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        subprocess.run(cmd, stdout=devnull, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--workers", type=int, default=1, help="also time `sad segment -j W` (W > 1)")
    args = ap.parse_args()
    if not os.path.exists(args.data):
        sys.exit(f"reference data {args.data} is absent (../shared/data beside the checkout)")
    lines = [ln for ln in open(args.data, encoding="utf-8") if ln.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "big.jsonl")
        with open(big, "w", encoding="utf-8") as fh:
            for i in range(args.records):
                fh.write(lines[i % len(lines)])
        size = os.path.getsize(big) / 1e6
        base_cmd = [sys.executable, "-c", BASELINE, big]
        sad_cmd = [sys.executable, "-m", "sadcli", "segment", big, "-q"]
        base, sad, par = [], [], []
        for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
            base.append(timed(base_cmd))
            sad.append(timed(sad_cmd))
            if args.workers > 1:
                par.append(timed(sad_cmd + ["-j", str(args.workers)]))
    b, s = min(base), min(sad)
    print(f"records: {args.records:,} ({size:.0f} MB)")
    print(f"bare json round trip: {b:.2f} s   ({args.records / b:,.0f} records/s)")
    print(f"sad segment:          {s:.2f} s   ({args.records / s:,.0f} records/s)")
    print(f"ratio sad/bare: {s / b:.2f}x   (target <= 3x)")
    if par:
        w = min(par)
        print(f"sad segment -j {args.workers}:    {w:.2f} s   ({args.records / w:,.0f} records/s)")
        print(f"ratio sad -j {args.workers}/bare: {w / b:.2f}x   (target <= 2x)")


if __name__ == "__main__":
    main()
