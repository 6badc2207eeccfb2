"""Mask building vs the same tokenizer's plain batch encode, same texts, same run.

    .venv/bin/python benchmarks/bench_masks.py [--repeat 40] [--runs 3] [--tokenizer smollm2-135m]

The FireAct HotPotQA trajectories (../shared/data) are segmented with ``sad segment``'s library and
repeated to at least 20,000. Baseline: ``tokenizer(texts)`` (input_ids + attention_mask) in batches of
the same size. Measured: ``build_examples(records, tokenizer)`` for ``--render text`` (offsets, labels,
``labels`` with -100, stats) and ``--render chat`` (chat template + span location on top). The chat
ratios are against the plain encode of the already-rendered strings, and against
``apply_chat_template`` + encode (what chat tokenization costs without masks). Best of ``--runs``, runs interleaved.
Target: text mask building <= 2x the plain encode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("SAD_SHARED_DATA", ROOT.parent / "shared" / "data")) / "fireact_hotpotqa_messages.jsonl"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=40, help="copies of the 500 trajectories (40 -> 20,000)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--tokenizer", default="smollm2-135m")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"reference data {DATA} is absent (it lives in ../shared/data beside the checkout)", file=sys.stderr)
        return 1

    from sadcli.masks import build_examples
    from sadcli.masks.render import ChatRenderer, _turns
    from sadcli.models import load_tokenizer
    from sadcli.segment import segment_record

    tok = load_tokenizer(args.tokenizer)
    base = [segment_record(json.loads(line)) for line in DATA.open(encoding="utf-8") if line.strip()]
    records = [dict(r, id=f"{k}-{i}") for k in range(args.repeat) for i, r in enumerate(base)]
    texts = [r["text"] for r in records]
    chat = ChatRenderer(tok)
    chat_texts = [chat(r).text for r in records]
    messages = [[{"role": role, "content": "".join(p[0] for p in pieces)} for role, pieces in _turns(r)]
                for r in records]
    bs = args.batch_size

    def plain(ts: list[str], special: bool) -> int:
        n = 0
        for i in range(0, len(ts), bs):
            n += sum(len(x) for x in tok(ts[i:i + bs], add_special_tokens=special)["input_ids"])
        return n

    def render_and_encode() -> int:
        n = 0
        for i in range(0, len(messages), bs):
            ts = [tok.apply_chat_template(m, tokenize=False) for m in messages[i:i + bs]]
            n += sum(len(x) for x in tok(ts, add_special_tokens=False)["input_ids"])
        return n

    def masks(render: str) -> int:
        return sum(len(ex) for ex in build_examples(records, tok, render=render, batch_size=bs))

    jobs = {
        "plain encode (text)": lambda: plain(texts, True),
        "build_examples text": lambda: masks("text"),
        "plain encode (chat-rendered)": lambda: plain(chat_texts, False),
        "apply_chat_template + encode": render_and_encode,
        "build_examples chat": lambda: masks("chat"),
    }
    best = {k: float("inf") for k in jobs}
    tokens = {}
    for _ in range(args.runs):
        for name, fn in jobs.items():
            t0 = time.perf_counter()
            tokens[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    assert tokens["plain encode (text)"] == tokens["build_examples text"], "token counts differ"
    assert tokens["plain encode (chat-rendered)"] == tokens["build_examples chat"], "token counts differ"
    assert tokens["apply_chat_template + encode"] == tokens["build_examples chat"], "token counts differ"
    print(f"{len(records):,} trajectories, {tokens['build_examples text']:,} tokens (text), "
          f"tokenizer {args.tokenizer}, batch {bs}, best of {args.runs}; "
          f"{platform.machine()} {os.cpu_count()} cpu, TOKENIZERS_PARALLELISM="
          f"{os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}")
    for name, t in best.items():
        print(f"  {name:30s} {t:7.2f} s")
    rt = best["build_examples text"] / best["plain encode (text)"]
    rc = best["build_examples chat"] / best["plain encode (chat-rendered)"]
    print(f"ratio text: {rt:.2f}x plain encode (target <= 2x)")
    rr = best["build_examples chat"] / best["apply_chat_template + encode"]
    print(f"ratio chat: {rc:.2f}x plain encode of the already-rendered strings, "
          f"{rr:.2f}x apply_chat_template + encode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
