"""`sad curriculum` entropy scoring vs a bare teacher forward over the same batches, same run.

    .venv/bin/python benchmarks/bench_curriculum.py [--records 32] [--runs 3] [--batch-size 8] [--device cpu]

Data: the FireAct HotPotQA trajectories (../shared/data), segmented with `sad segment`'s library; examples
built as `sad curriculum` builds them (step windows of --max-length tokens). Teacher: the embedded
SmolLM2-135M-Instruct (fp32).

- baseline: ``model(input_ids, attention_mask)`` — the bare forward (logits at every position) over
  the length-sorted batches the scorer uses;
- live scoring: :func:`sadcli.curriculum.signals.teacher_entropy` over the same batches (decoder, LM
  head at supervised positions only, log-softmax, entropy, per-record sums); target <= 1.1x;
- cache read: :func:`sadcli.curriculum.entropy_from_cache` on a `sad distill --cache-teacher` directory
  built beforehand from the same records (fingerprint check + reading the stored per-row entropy +
  aggregation); target <= 5% of the bare forward.

Runs are interleaved; the best of --runs of each is reported, with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("SAD_SHARED_DATA", ROOT.parent / "shared" / "data")) / "fireact_hotpotqa_messages.jsonl"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"reference data {DATA} is absent (it lives in ../shared/data beside the checkout)", file=sys.stderr)
        return 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from sadcli.curriculum import CurriculumOptions, build, entropy_from_cache
    from sadcli.curriculum.signals import batches, teacher_entropy
    from sadcli.distill.pipeline import DistillOptions, run
    from sadcli.models.spec import load_model, load_tokenizer
    from sadcli.segment import segment_record

    records = []
    for line in DATA.open(encoding="utf-8"):
        if line.strip():
            records.append(segment_record(json.loads(line)))
        if len(records) >= args.records:
            break
    tok = load_tokenizer("smollm2-135m")
    opts = CurriculumOptions(max_length=args.max_length, batch_size=args.batch_size)
    examples = build(records, tok, opts)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    model = load_model("smollm2-135m", dtype="float32", device=args.device)
    dev = torch.device(args.device)
    fixed = [(idx, {k: v.to(dev) for k, v in b.items()}) for idx, b in batches(examples, args.batch_size, pad)]
    tokens = sum(len(ex.input_ids) for ex in examples)

    def bare() -> None:
        with torch.no_grad():
            for _, b in fixed:
                model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.sum().item()

    def live() -> None:
        teacher_entropy(examples, model, len(records), batch_size=args.batch_size, pad_id=pad, device=dev)

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "seg.jsonl")
        with open(data, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        t = time.perf_counter()
        run(DistillOptions(input=data, teacher="smollm2-135m", max_length=args.max_length, quiet=True,
                           cache_teacher=os.path.join(tmp, "cache"), device=args.device,
                           overrides={"batch_size": args.batch_size}))
        build_cache_s = time.perf_counter() - t

        def cached() -> None:
            entropy_from_cache(os.path.join(tmp, "cache"), records, tok, examples=examples)

        bare()  # warm-up
        live()
        best = {"bare": float("inf"), "live": float("inf"), "cache": float("inf")}
        for _ in range(args.runs):
            for name, fn in (("bare", bare), ("live", live), ("cache", cached)):
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                fn()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                best[name] = min(best[name], time.perf_counter() - t)
    out = {"records": len(records), "examples": len(examples), "tokens": tokens, "batch_size": args.batch_size,
           "device": str(dev), "threads": torch.get_num_threads(), "machine": platform.machine(),
           "bare_forward_s": round(best["bare"], 4), "live_scoring_s": round(best["live"], 4),
           "cache_read_s": round(best["cache"], 4), "cache_build_s": round(build_cache_s, 2),
           "live_ratio": round(best["live"] / best["bare"], 3), "cache_ratio": round(best["cache"] / best["bare"], 6),
           "targets": {"live_ratio": "<= 1.1", "cache_ratio": "<= 0.05"}}
    print(json.dumps(out, indent=2))
    print(f"live scoring {out['live_ratio']:.3f}x the bare forward (target <= 1.1x); cache read "
          f"{100 * out['cache_ratio']:.2f}% of it (target <= 5%); {len(records)} records, {tokens} tokens, "
          f"best of {args.runs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
