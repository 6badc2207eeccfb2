"""Benchmark: the SAD loss (chunked, supervised positions only) vs the naive loss, same inputs, same run.

Naive = dense teacher and student logits for every position ([T, V] each), fp32 log-softmax,
``torch.nn.functional.kl_div``, then the span masks and per-span means. Ours = ``sadcli.losses.compute_loss``
(``sad``, forward KL, per-span). Both compute the same objective; the script checks the values agree.

Measured per variant, forward + backward:

- peak memory of the loss: on CUDA ``torch.cuda.max_memory_allocated`` minus what was allocated before
  the loss; on CPU the peak resident set size above the pre-loss level, in a **fresh subprocess per
  variant** (the kernel's high-water mark ``VmHWM`` is reset through ``/proc/self/clear_refs`` right
  before the loss; if that is not possible, a 1 ms sampler of ``VmRSS`` is used and the output says so).
  ``tracemalloc`` does not see torch's allocations, so it is not used.
- time: both variants run alternately in one process on the same inputs, ``--repeats`` rounds after one
  warm-up each; the time ratio is the median of the per-round ratios (robust to load changes on a
  shared machine).

Defaults follow the issue: T = 2048, V = 49,152, H = 576, half the tokens observations, the rest split
between reasoning and action. Typical run: ``python benchmarks/bench_loss.py`` (about a minute on 2 cores);
``--device cuda`` on a GPU machine; ``--quick`` for a small smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


# --------------------------------------------------------------------------------------------- inputs
def make_inputs(args, torch, device):
    g = torch.Generator().manual_seed(args.seed)
    T, V, H = args.T, args.V, args.H
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    # span layout: per step [reason, act, obs], obs = half of every step
    labels = torch.empty(1, T, dtype=torch.long)
    step = max(4, args.step)
    r, a = step // 4, step // 4
    for s in range(0, T, step):
        labels[0, s:s + r] = 1
        labels[0, s + r:s + r + a] = 2
        labels[0, s + r + a:s + step] = 3
    labels[0, 0] = 0
    ids = torch.randint(0, V, (1, T), generator=g)
    h = (torch.randn(1, T, H, generator=g)).to(device=device, dtype=dt).requires_grad_(True)
    W = torch.nn.Parameter((torch.randn(V, H, generator=g) / H ** 0.5).to(device=device, dtype=dt))
    th = torch.randn(1, T, H, generator=g).to(device=device, dtype=dt)
    tW = (torch.randn(V, H, generator=g) / H ** 0.5).to(device=device, dtype=dt)
    t_logits = None
    if args.teacher == "logits":
        with torch.no_grad():
            t_logits = (th @ tW.T).contiguous()
    return dict(ids=ids.to(device), labels=labels.to(device), h=h, W=W, th=th, tW=tW, t_logits=t_logits)


# --------------------------------------------------------------------------------------------- losses
def naive_loss(x, torch):
    """Dense [T, V] student and teacher logits, fp32 log-softmax, F.kl_div, per-span masked means."""
    F = torch.nn.functional
    s_logits = x["h"][0] @ x["W"].T                                       # [T, V]
    with torch.no_grad():
        t_logits = x["t_logits"][0] if x["t_logits"] is not None else x["th"][0] @ x["tW"].T
    ls = F.log_softmax(s_logits.float(), dim=-1)
    lt = F.log_softmax(t_logits.float(), dim=-1)
    kl = F.kl_div(ls, lt, reduction="none", log_target=True).sum(-1)     # [T]: KL(teacher || student)
    nxt = x["labels"][0, 1:]
    kl = kl[:-1]
    m_r, m_a = (nxt == 1).float(), (nxt == 2).float()
    return (kl * m_r).sum() / m_r.sum().clamp(min=1) + (kl * m_a).sum() / m_a.sum().clamp(min=1)


def sad_loss(x, torch, chunk_size, path):
    from sadcli.losses import HiddenTeacher, LossConfig, compute_loss

    teacher = x["t_logits"] if x["t_logits"] is not None else HiddenTeacher(x["th"], x["tW"])
    # an opaque identity transform routes every chunk through the general per-chunk autograd path (the one
    # sparse teachers and custom transforms use); same objective
    transform = (lambda z: z * 1.0) if path == "autograd" else None
    out = compute_loss(LossConfig(name="sad", chunk_size=chunk_size), input_ids=x["ids"], token_labels=x["labels"],
                       student_hidden=x["h"], lm_head=x["W"], teacher=teacher, student_transform=transform)
    return out.total


# --------------------------------------------------------------------------------------------- memory
def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


class _RssPeak:
    """Peak RSS above the current level during a block: VmHWM reset via clear_refs, else a 1 ms sampler."""

    def __enter__(self):
        self.base = _status_kb("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.method = "VmHWM (reset via /proc/self/clear_refs)"
            self.sampler = None
        except OSError:
            self.method = "VmRSS sampled every 1 ms"
            self.peak = self.base
            self.stop = False
            self.sampler = threading.Thread(target=self._sample, daemon=True)
            self.sampler.start()
        return self

    def _sample(self):
        while not self.stop:
            self.peak = max(self.peak, _status_kb("VmRSS"))
            time.sleep(0.001)

    def __exit__(self, *exc):
        if self.sampler is None:
            self.peak = _status_kb("VmHWM")
        else:
            self.stop = True
            self.sampler.join()
        self.delta_bytes = (self.peak - self.base) * 1024


def _loss_fn(variant, args, torch):
    if variant == "naive":
        return lambda x: naive_loss(x, torch)
    return lambda x: sad_loss(x, torch, args.chunk_size, args.path)


def worker(args):
    """Memory worker (``--worker naive|sad``): one forward + backward in a fresh process.
    Timing worker (``--worker timing``): both variants on the same inputs, alternating, ``repeats`` rounds."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    variants = ["naive", "sad"] if args.worker == "timing" else [args.worker]
    fns = {v: _loss_fn(v, args, torch) for v in variants}

    # warm up the libraries on a tiny problem (thread pools, kernels) so they are not billed to the loss
    small = argparse.Namespace(**{**vars(args), "T": 64, "V": 512, "H": 32})
    xs = make_inputs(small, torch, device)
    for fn in fns.values():
        fn(xs).backward()
    del xs
    x = make_inputs(args, torch, device)
    if cuda:
        torch.cuda.synchronize()

    def step(fn):
        x["h"].grad = None
        x["W"].grad = None
        loss = fn(x)
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        return float(loss.detach())

    if args.worker != "timing":
        fn = fns[args.worker]
        if cuda:
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            loss = step(fn)
            peak = torch.cuda.max_memory_allocated() - base
            method = "torch.cuda.max_memory_allocated"
        else:
            with _RssPeak() as m:
                loss = step(fn)
            peak, method = m.delta_bytes, m.method
        print(json.dumps({"variant": args.worker, "loss": loss, "peak_bytes": peak, "memory_method": method}))
        return 0
    times = {v: [] for v in variants}
    for v in variants:                        # warm-up at full size (not timed)
        step(fns[v])
    for _ in range(args.repeats):
        for v in variants:                    # alternate, so a load change on a shared machine hits both
            t0 = time.perf_counter()
            step(fns[v])
            times[v].append(time.perf_counter() - t0)
    print(json.dumps({"times": times}))
    return 0


# --------------------------------------------------------------------------------------------- driver
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--T", type=int, default=2048, help="sequence length")
    p.add_argument("--V", type=int, default=49152, help="vocabulary size")
    p.add_argument("--H", type=int, default=576, help="hidden size")
    p.add_argument("--step", type=int, default=256, help="tokens per agent step: 1/4 reason, 1/4 act, 1/2 obs")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--teacher", default="hidden", choices=["hidden", "logits"],
                   help="teacher given as hidden states + LM head, or as precomputed [T, V] logits")
    p.add_argument("--chunk-size", type=int, default=0, help="rows per chunk (0 = the library's auto choice)")
    p.add_argument("--path", default="auto", choices=["auto", "autograd"],
                   help="auto: closed-form gradients where possible (forward/reverse KL); autograd: force the "
                        "general per-chunk autograd path")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per variant (median reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--worker", choices=["naive", "sad", "timing"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.T, args.V, args.H, args.step, args.repeats = 512, 8192, 128, 64, 1
    if args.worker:
        return worker(args)

    passthrough = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--json"]

    def sub(worker_name):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", worker_name] + passthrough
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(res.stderr)
            raise SystemExit(f"{worker_name} run failed")
        return json.loads(res.stdout.strip().splitlines()[-1])

    n, s = sub("naive"), sub("sad")               # memory: one fresh process per variant
    times = sub("timing")["times"]                # time: both variants alternating in one process
    n["times"], s["times"] = times["naive"], times["sad"]
    n["time_s"], s["time_s"] = statistics.median(n["times"]), statistics.median(s["times"])
    mem_ratio = s["peak_bytes"] / n["peak_bytes"]
    time_ratio = statistics.median(a / b for a, b in zip(s["times"], n["times"], strict=True))
    summary = {"device": _device_name(args.device), "T": args.T, "V": args.V, "H": args.H, "dtype": args.dtype,
               "teacher": args.teacher, "chunk_size": args.chunk_size, "path": args.path, "threads": args.threads,
               "naive": n, "sad": s, "memory_ratio": mem_ratio, "time_ratio": time_ratio,
               "loss_abs_diff": abs(n["loss"] - s["loss"])}
    if args.json:
        print(json.dumps(summary))
    err = sys.stderr
    err.write(f"device {summary['device']}, T={args.T} V={args.V} H={args.H} {args.dtype}, teacher={args.teacher}, "
              f"chunk={args.chunk_size}, path={args.path}, threads={args.threads}\n")
    err.write(f"memory method: {n['memory_method']}\n")
    for name, r in (("naive", n), ("sad", s)):
        err.write(f"  {name:5s}  loss {r['loss']:.6f}  peak {r['peak_bytes'] / 2**20:9.1f} MiB  "
                  f"time {r['time_s'] * 1000:8.1f} ms (median of {len(r['times'])}, alternating)\n")
    err.write(f"  ratio sad/naive: memory {mem_ratio:.3f} (target <= 0.25), time {time_ratio:.3f} (median of the "
              f"per-round ratios; target <= 1.0); "
              f"|loss difference| {summary['loss_abs_diff']:.2e}\n")
    return 0


def _device_name(device):
    if device.startswith("cuda"):
        import torch
        return torch.cuda.get_device_name(0)
    import platform
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU ({name}, {os.cpu_count()} cores visible)"


if __name__ == "__main__":
    sys.exit(main())
