"""Benchmark of `sad distill` steps against the bare model cost and against a naive loop, same batches.

Embedded teacher (smollm2-135m, 30 layers) and a 6-layer student made from it, on real segmented
FireAct trajectories (../shared/data). All variants run in one process on the same micro-batches,
interleaved step by step (rotating order, so load from other processes hits all alike), for --steps
timed steps after --warmup steps:

- ``online``: the real optimizer step of ``sad distill`` (``sadcli.distill.trainer.Loop.step``, built by
  ``pipeline.build_job`` + ``trainer.make_loop``), SAD loss, teacher in-process without gradients.
- ``cache``:  the same step reading the offline teacher cache (``--teacher-cache``), no teacher forward.
- ``bare``:   one teacher forward (no grad) + one student forward/backward with the model's own
  cross-entropy, nothing else — the floor every distillation step pays. Overhead = online / bare - 1.
- ``naive``:  a plain distillation loop: dense teacher and student logits at every position,
  ``log_softmax`` + ``torch.nn.functional.kl_div`` masked to reason/act tokens, same optimizer.

Peak memory of a step: on CUDA ``torch.cuda.max_memory_allocated`` above the allocation at its start;
on CPU the peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` before each step)
above the resident set at its start. Prints one JSON line with every figure and the ratios.

    python benchmarks/bench_distill.py                 # CPU, 6 timed steps
    python benchmarks/bench_distill.py --device cuda --steps 20 --batch-size 8 --max-length 1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "fireact_hotpotqa_messages.jsonl")


# --- memory -------------------------------------------------------------------------------------

def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Peak:
    """Peak memory of a code region: CUDA allocator stats, or CPU resident-set high-water mark."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def reset(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to the current RSS
            except OSError:
                pass
            self.base = _status("VmRSS")

    def read(self) -> int:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        return _status("VmHWM") - self.base


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --- the four variants, interleaved step by step in one process --------------------------------------

class Variants:
    """Holds the models of every variant; ``run(name, k)`` runs step k of that variant."""

    def __init__(self, a: argparse.Namespace, cache: str, tmp: str):
        import torch

        from sadcli.distill.config import make_config
        from sadcli.distill.data import pad_batch
        from sadcli.distill.pipeline import DistillOptions, build_job
        from sadcli.distill.students import parse_layers, student_from_teacher
        from sadcli.distill.trainer import make_loop, make_optimizer

        torch.set_num_threads(a.threads)
        self.a = a
        common = dict(input=a.seg, teacher=a.teacher, student_layers=str(a.student_layers), loss={"name": "sad"},
                      max_length=a.max_length, device=a.device, quiet=True,
                      overrides={"max_steps": a.warmup + a.steps, "batch_size": a.batch_size, "seed": 0,
                                 "grad_clip": 1.0, "mixed_precision": "no"})
        job_on = build_job(DistillOptions(output=os.path.join(tmp, "on"), **common))
        job_ca = build_job(DistillOptions(output=os.path.join(tmp, "ca"), teacher_cache=cache, **common))
        self.loops = {"online": make_loop(job_on)[0], "cache": make_loop(job_ca)[0]}
        sched = self.loops["online"].schedule
        pad = job_on.tokenizer.pad_token_id
        self.batches = [pad_batch([job_on.examples[i] for i in sched[k][1]], pad) for k in range(a.warmup + a.steps)]
        self.teacher = job_on.teacher  # shared by every variant that runs a teacher (eval, no grad)
        layers = parse_layers(str(a.student_layers))
        self.bare_student = student_from_teacher(self.teacher, layers)[0].to(a.device).train()
        self.naive_student = student_from_teacher(self.teacher, layers)[0].to(a.device).train()
        self.naive_opt = make_optimizer(self.naive_student, make_config(lr=1e-4))
        self.first_loss: dict[str, float] = {}
        self.tokens = [int(b["attention_mask"].sum()) for b in self.batches]

    def run(self, name: str, k: int) -> None:
        if name in self.loops:
            m = self.loops[name].step(k)
            self.first_loss.setdefault(name, m["loss"])
        else:
            getattr(self, name)(k)

    def _batch(self, k: int) -> dict:
        return {key: v.to(self.a.device) for key, v in self.batches[k].items()}

    def bare(self, k: int) -> None:
        """One teacher forward (no grad) + one student forward/backward with the model's own CE."""
        import torch

        from sadcli.labels import ACT, IGNORE_INDEX, REASON

        b = self._batch(k)
        labels = torch.where((b["token_labels"] == REASON) | (b["token_labels"] == ACT), b["input_ids"],
                             torch.full_like(b["input_ids"], IGNORE_INDEX))
        with torch.no_grad():
            self.teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        self.bare_student(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=labels).loss.backward()
        self.bare_student.zero_grad(set_to_none=True)

    def naive(self, k: int) -> None:
        """Dense logits at every position + F.kl_div masked to reason/act, per-span means; AdamW + clip."""
        import torch
        import torch.nn.functional as F

        from sadcli.labels import ACT, REASON

        b = self._batch(k)
        with torch.no_grad():
            t_logits = self.teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        s_logits = self.naive_student(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        t_lp = F.log_softmax(t_logits[:, :-1].float(), -1)
        s_lp = F.log_softmax(s_logits[:, :-1].float(), -1)
        kl = F.kl_div(s_lp, t_lp, log_target=True, reduction="none").sum(-1)          # [B, T-1]
        nxt = b["token_labels"][:, 1:]
        m_r, m_a = (nxt == REASON).float(), (nxt == ACT).float()
        loss = (kl * m_r).sum() / m_r.sum().clamp(min=1) + (kl * m_a).sum() / m_a.sum().clamp(min=1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.naive_student.parameters(), 1.0)
        self.naive_opt.step()
        self.naive_opt.zero_grad(set_to_none=True)
        self.first_loss.setdefault("naive", loss.item())


NAMES = ("bare", "online", "cache", "naive")


def measure(a: argparse.Namespace, cache: str, tmp: str) -> dict:
    """Round-robin over the variants at every step (the order rotates), so that load from other
    processes on a shared machine hits all of them alike; per-variant time and peak memory."""
    v = Variants(a, cache, tmp)
    peak = Peak(a.device)
    times = {n: [] for n in NAMES}
    mem = {n: 0 for n in NAMES}
    for k in range(a.warmup + a.steps):
        order = NAMES[k % 4:] + NAMES[:k % 4]
        for n in order:
            peak.reset()
            _sync(a.device)
            t = time.perf_counter()
            v.run(n, k)
            _sync(a.device)
            if k >= a.warmup:
                times[n].append(time.perf_counter() - t)
                mem[n] = max(mem[n], peak.read())
    timed_tokens = sum(v.tokens[a.warmup:])
    return {"s_per_step": {n: sum(t) / len(t) for n, t in times.items()},
            "peak_bytes": mem, "first_loss": v.first_loss,
            "tokens_per_s": {n: timed_tokens / sum(times[n]) for n in NAMES}}


# --- driver ---------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA, help="FireAct messages JSONL (segmented here with sad segment)")
    ap.add_argument("--records", type=int, default=64, help="trajectories to use")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=6, help="timed optimizer steps per variant")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--student-layers", default="6")
    ap.add_argument("--teacher", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    a = ap.parse_args()
    if not os.path.exists(a.data):
        sys.exit(f"reference data {a.data} is absent (it lives in ../shared/data beside the checkout)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sadcli.jsonl import read_records
    from sadcli.segment import segment_record

    with tempfile.TemporaryDirectory() as tmp:
        a.seg = os.path.join(tmp, "seg.jsonl")
        with open(a.seg, "w", encoding="utf-8") as f:
            for i, (_, rec) in enumerate(read_records(a.data)):
                if i >= a.records:
                    break
                f.write(json.dumps(segment_record(rec)) + "\n")
        # the offline cache, built once (timed)
        cache = os.path.join(tmp, "cache")
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "sadcli", "distill", a.seg, "--teacher", a.teacher,
                            "--cache-teacher", cache, "--max-length", str(a.max_length), "--batch-size",
                            str(a.batch_size), "--device", a.device, "-q"], cwd=ROOT, capture_output=True,
                           text=True)
        if p.returncode != 0:
            sys.exit(p.stderr)
        cache_s = time.perf_counter() - t
        with open(os.path.join(cache, "cache.json")) as f:
            mf = json.load(f)
        res = measure(a, cache, tmp)

    import platform

    import torch

    device = a.device
    if device.startswith("cuda"):
        device += f" ({torch.cuda.get_device_name()})"
    else:
        device += f" ({platform.processor() or platform.machine()}, {a.threads} threads)"
    sec, mem = res["s_per_step"], res["peak_bytes"]
    out = {
        "device": device, "steps": a.steps, "batch_size": a.batch_size, "max_length": a.max_length,
        "records": a.records, "student_layers": a.student_layers,
        "s_per_step": {k: round(x, 4) for k, x in sec.items()},
        "peak_mib": {k: round(x / 2**20, 1) for k, x in mem.items()},
        "overhead_vs_bare": round(sec["online"] / sec["bare"] - 1, 4),
        "cache_speedup_vs_online": round(sec["online"] / sec["cache"], 3),
        "naive_time_ratio": round(sec["naive"] / sec["online"], 3),
        "naive_peak_memory_ratio": round(mem["naive"] / max(1, mem["online"]), 3),
        "tokens_per_s": {k: round(x, 1) for k, x in res["tokens_per_s"].items()},
        "cache": {"rows": mf["rows"], "bytes_per_row": mf["bytes_per_row"],
                  "bytes_on_disk_per_token": round(mf["bytes_on_disk_per_token"], 2),
                  "k": mf["k"], "tail_samples": mf["samples"], "build_seconds": round(cache_s, 1)},
        "loss_first_step": res["first_loss"],
    }
    print(json.dumps(out))
    print(f"on {device}: distill step {sec['online']:.3f}s vs bare teacher fwd + student fwd/bwd "
          f"{sec['bare']:.3f}s -> overhead {out['overhead_vs_bare']:+.1%}; teacher cache "
          f"{out['cache_speedup_vs_online']:.2f}x faster than online; naive dense loop "
          f"{out['naive_time_ratio']:.2f}x the time and {out['naive_peak_memory_ratio']:.2f}x the peak memory",
          file=sys.stderr)


if __name__ == "__main__":
    main()
