"""Size and loss error of teacher-cache encodings against the dense (online) teacher, same batch.

Embedded teacher (smollm2-135m) and a fresh 6-layer student made from it, on real segmented FireAct
trajectories (../shared/data). For each encoding (``k`` ids per row, ``s`` of them drawn from the tail):
take the rows ``sad distill --cache-teacher`` writes (``Objective.teacher_rows`` on one teacher forward),
encode them to the on-disk format and decode them, and compute the loss of the same student on the same
batch from them and from the online teacher; report bytes per supervised token (the row size; one real
cache built for the first encoding gives the size on disk, .npy headers included), the relative loss
error per loss (sad, flat, kd) over ``--seeds`` cache seeds (the draws are random: mean and the largest
error), and the cosine between the cached and the dense gradient with respect to the student's hidden
states (1.0 = same direction). Prints a Markdown table and one JSON line.

    python benchmarks/bench_teacher_cache.py --records 8 --max-length 256 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "fireact_hotpotqa_messages.jsonl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--records", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--student-layers", type=int, default=6)
    ap.add_argument("--teacher", default="smollm2-135m")
    ap.add_argument("--seeds", type=int, default=3, help="cache seeds per encoding (tail draws)")
    ap.add_argument("--encodings", default="64/51,64/16,64/0", help="k/s pairs, comma-separated (the first: also built on disk)")
    ap.add_argument("--losses", default="sad,flat,kd")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not os.path.exists(a.data):
        sys.exit(f"reference data {a.data} is absent (it lives in ../shared/data beside the checkout)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(a.threads)
    from sadcli.distill.data import pad_batch
    from sadcli.distill.objective import Objective
    from sadcli.distill.pipeline import build_teacher_cache, prepare_data
    from sadcli.distill.students import student_from_teacher, vocab_size
    from sadcli.distill.teacher_cache import decode, encode
    from sadcli.distill.trainer import HiddenStates
    from sadcli.jsonl import read_records
    from sadcli.models.spec import load_model, load_tokenizer
    from sadcli.segment import segment_record

    encodings = [tuple(int(x) for x in e.split("/")) for e in a.encodings.split(",")]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        seg = os.path.join(tmp, "seg.jsonl")
        with open(seg, "w", encoding="utf-8") as f:
            for i, (_, rec) in enumerate(read_records(a.data)):
                if i >= a.records:
                    break
                f.write(json.dumps(segment_record(rec)) + "\n")
        tok = load_tokenizer(a.teacher)
        teacher = load_model(a.teacher, device="cpu")
        torch.manual_seed(0)
        student, _ = student_from_teacher(teacher, a.student_layers)
        prep = prepare_data(seg, tok, max_length=a.max_length)
        b = pad_batch(prep.examples, tok.pad_token_id)
        head = student.get_output_embeddings()
        vocab = vocab_size(teacher)
        with torch.no_grad():
            h_t = HiddenStates(teacher)(b["input_ids"], b["attention_mask"])
            h_s0 = HiddenStates(student)(b["input_ids"], b["attention_mask"])
        for loss in a.losses.split(","):
            obj = Objective.from_options({"name": loss}, examples=prep.examples, eos_id=tok.eos_token_id)
            obj.bind_teacher(teacher)
            num = obj.counts(b["token_labels"])

            def run(teacher_arg, obj=obj, num=num):
                h = h_s0.clone().requires_grad_(True)
                out = obj.loss(h, head, b["input_ids"], b["token_labels"], teacher_arg, num)
                (g,) = torch.autograd.grad(out.total, h)
                return out.total.item(), g.flatten()

            dense, g_dense = run(("hidden", h_t, teacher.get_output_embeddings()))
            res = results.setdefault(loss, {"dense": dense, "rows": int(sum(num)), "encodings": {}})
            for k, s in encodings:
                errs, coss = [], []
                for seed in range(a.seeds if s else 1):
                    # the rows --cache-teacher writes (same function), through the on-disk encoding and back
                    rows, _ = obj.teacher_rows(h_t, teacher, b["token_labels"], b["input_ids"], k, s,
                                               torch.Generator().manual_seed(seed))
                    enc = encode(rows, vocab)
                    val, g = run(("cache", decode(enc)))
                    errs.append((val - dense) / dense)
                    coss.append(torch.nn.functional.cosine_similarity(g, g_dense, dim=0).item())
                res["encodings"][f"{k}/{s}"] = {
                    "bytes_per_row": enc.dtype.itemsize,
                    "rel_error_mean": sum(errs) / len(errs), "rel_error_max_abs": max(abs(e) for e in errs),
                    "grad_cosine_min": min(coss), "seeds": len(errs)}
                print(f"{loss} k={k} s={s}: {res['encodings'][f'{k}/{s}']}", file=sys.stderr, flush=True)
        # one real cache through `sad distill --cache-teacher`'s code path: bytes on disk (npy headers included)
        obj = Objective.from_options({"name": "sad"}, examples=prep.examples, eos_id=tok.eos_token_id)
        k, s = encodings[0]
        mf = build_teacher_cache(prep, teacher, tok, os.path.join(tmp, "cache"), objective=obj, k=k, samples=s,
                                 batch_size=4, show_progress=False)
        on_disk = {"encoding": f"{k}/{s}", "rows": mf["rows"], "bytes_per_row": mf["bytes_per_row"],
                   "bytes_on_disk_per_token": round(mf["bytes_on_disk_per_token"], 2)}
    print("| encoding (k/s) | bytes / row | loss | rel. error (mean, max |.| over seeds) | grad cosine (min) |")
    print("|---|---|---|---|---|")
    for loss, res in results.items():
        for enc, r in res["encodings"].items():
            print(f"| {enc} | {r['bytes_per_row']} | {loss} | "
                  f"{100 * r['rel_error_mean']:+.3f}%, {100 * r['rel_error_max_abs']:.3f}% | "
                  f"{r['grad_cosine_min']:.4f} |")
    import platform

    print(json.dumps({"records": a.records, "max_length": a.max_length, "student_layers": a.student_layers,
                      "seeds": a.seeds, "on_disk": on_disk, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                      f"{a.threads} threads", "results": results}))


if __name__ == "__main__":
    main()
