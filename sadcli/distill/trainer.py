"""The training loop, readable top to bottom (minGPT style), on accelerate.

One optimizer step:

1. take the next ``grad_accum`` micro-batches of this process (the schedule is a pure function of
   seed and epoch, so a resumed run takes exactly the same ones);
2. count supervised reasoning / action tokens over all of them and all-reduce across processes:
   those GLOBAL counts normalize the loss, so the gradient does not depend on how the effective
   batch is split over micro-batches or devices;
3. per micro-batch: student hidden states (with grad), teacher signal (online teacher hidden states
   without grad, or rows from the offline cache), loss, backward;
4. clip, optimizer step, scheduler step; log; checkpoint every ``save_every`` steps.

Checkpoints hold model, optimizer, scheduler, RNG states and the step; they are written to a temp
directory and renamed into place, so ``kill -9`` at any moment leaves the previous one usable.

FSDP (``fsdp=True``, several processes): the student is sharded with FSDP2 (``torch.distributed.fsdp.
fully_shard`` on every decoder layer, then on the root: embeddings, final norm and LM head) instead of
being wrapped in DDP; parameters, gradients and optimizer state live in shards, a layer's full weights
exist only while it computes. The root is not resharded after forward, so the loss (which applies the
LM head at supervised positions, outside the wrapped forward) reads the full head weight. Gradients are
reduce-scattered once per optimizer step (``set_requires_gradient_sync``). Saving gathers full tensors
on every process (a collective) and the main process writes them: the output is the same Hugging Face
folder as without FSDP; ``--resume`` cuts a checkpoint's full tensors back into shards. The teacher
(online) is never sharded: it runs whole in every process.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sadcli.console import console
from sadcli.distill.config import TrainConfig
from sadcli.distill.data import BatchSchedule, Curriculum, pad_batch
from sadcli.errors import InputError, SadError
from sadcli.fsutil import new_dir_mode, new_file_mode

CHECKPOINTS = "checkpoints"
STEP_SLEEP_ENV = "SAD_DISTILL_STEP_SLEEP"  # testing aid: seconds to sleep after each step


@dataclass
class DistillJob:
    """Everything a training run needs, already loaded."""

    student: Any                      # transformers causal LM (trainable)
    tokenizer: Any
    examples: Sequence[Any]           # objects with input_ids, token_labels (lists of ints)
    objective: Any                    # sadcli.distill.objective.Objective
    train: TrainConfig
    out_dir: str
    teacher: Any = None               # online teacher (no grad), or None
    cache: Any = None                 # TeacherCache, or None
    curriculum: Curriculum | None = None
    pacing: Any = None                # sadcli.distill.data.Pacing (None: sorted when a curriculum, else none)
    log_path: str | None = None
    resume: bool = False
    device: str | None = None
    report_to: Sequence[str] = ()
    run_config: dict[str, Any] = field(default_factory=dict)  # echoed into sad_config.json
    show_progress: bool = True
    fsdp: bool = False                # shard the student with FSDP2 over the processes (see the module doc)


def total_steps(cfg: TrainConfig, n_examples: int, world: int = 1) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    per_step = cfg.batch_size * cfg.grad_accum * world
    return max(1, math.ceil(cfg.epochs * n_examples / per_step))


def make_scheduler(optimizer: Any, cfg: TrainConfig, steps: int) -> Any:
    import torch

    warmup = cfg.warmup_steps or int(round(cfg.warmup_ratio * steps))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, steps - warmup)
        progress = min(1.0, max(0.0, progress))
        if cfg.schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model: Any, cfg: TrainConfig) -> Any:
    import torch

    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), foreach=False)


class HiddenStates:
    """Wraps a causal LM so that ``forward`` returns the final hidden states [B, T, H].

    The LM head is applied by the loss at supervised positions only; wrapping keeps DDP's forward
    hooks intact (accelerate prepares this module, not the bare decoder).
    """

    def __new__(cls, model: Any) -> Any:
        import torch

        class _Hidden(torch.nn.Module):
            def __init__(self, lm: Any):
                super().__init__()
                self.lm = lm

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                out = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
                return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

        return _Hidden(model)


# --- checkpoints ---------------------------------------------------------------------------

def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(out_dir: str) -> str | None:
    """The newest complete checkpoint directory (temp dirs of an interrupted write are ignored)."""
    root = os.path.join(out_dir, CHECKPOINTS)
    if not os.path.isdir(root):
        return None
    done = [d for d in os.listdir(root)
            if d.startswith("step-") and os.path.isfile(os.path.join(root, d, "trainer_state.json"))]
    return os.path.join(root, max(done, key=lambda d: int(d.split("-")[1]))) if done else None


def save_checkpoint(out_dir: str, step: int, model: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any], keep: int, full: tuple[dict, dict] | None = None) -> str:
    """Write checkpoints/step-N atomically (temp dir + rename) and prune old ones.

    ``full``: (model state, optimizer state) already gathered from FSDP shards (see :func:`gather_full`)."""
    import torch
    from safetensors.torch import save_file

    root = os.path.join(out_dir, CHECKPOINTS)
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-step-", dir=root)
    try:
        src = full[0] if full is not None else model.state_dict()
        sd = {k: v.detach().contiguous().clone() for k, v in src.items()}
        save_file(_untie(model, sd), os.path.join(tmp, "model.safetensors"))
        torch.save({"optimizer": full[1] if full is not None else optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": _rng_state()},
                   os.path.join(tmp, "training.pt"))
        with open(os.path.join(tmp, "trainer_state.json"), "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
    except BaseException:  # a full disk, Ctrl-C: no half checkpoint left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = os.path.join(root, f"step-{step:08d}")
    if os.path.exists(final):
        shutil.rmtree(final)
    os.chmod(tmp, new_dir_mode())  # mkdtemp makes 0700: give the checkpoint the usual permissions
    os.replace(tmp, final)
    done = sorted((d for d in os.listdir(root) if d.startswith("step-")), key=lambda d: int(d.split("-")[1]))
    for d in done[:-keep]:
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)
    for d in os.listdir(root):  # leftovers of writes killed half-way
        if d.startswith(".tmp-step-") and os.path.join(root, d) != tmp:
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)
    return final


def gather_full(root: Any, model: Any, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full (unsharded) model and optimizer state of an FSDP2-sharded ``model`` (inside ``root``, the module
    the optimizer was built on). A collective: every process must call it; all get the full tensors (CPU).
    Tied weights stay one tensor (so the untying on save sees them as shared)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    seen: dict[int, Any] = {}
    sd = {}
    for k, v in model.state_dict().items():
        if id(v) not in seen:
            t = v.full_tensor() if hasattr(v, "full_tensor") else v
            seen[id(v)] = t.detach().cpu()
        sd[k] = seen[id(v)]
    osd = get_optimizer_state_dict(root, optimizer, options=StateDictOptions(full_state_dict=True,
                                                                              cpu_offload=False))
    return sd, _plain(osd)


def _plain(x: Any) -> Any:
    """Nested containers of tensors with every DTensor made a full local tensor (for torch.save)."""
    if hasattr(x, "full_tensor"):
        return x.full_tensor().detach().cpu()
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    return x


def _untie(model: Any, sd: dict[str, Any]) -> dict[str, Any]:
    """safetensors refuses shared tensors: drop the tied copies (restored by tie_weights on load)."""
    out, seen = {}, {}
    for k, v in sd.items():
        key = (v.data_ptr(), tuple(v.shape))
        if key in seen:
            continue
        seen[key] = k
        out[k] = v
    return out


def load_checkpoint(path: str, model: Any, optimizer: Any, scheduler: Any, fsdp_root: Any = None) -> dict[str, Any]:
    """Restore a checkpoint into ``model``, ``optimizer``, ``scheduler`` and the RNGs; returns trainer_state.

    ``fsdp_root``: the FSDP2-sharded module ``model`` lives in (as ``.lm``): the full tensors of the files are
    cut into this process's shards (``torch.distributed.checkpoint.state_dict``)."""
    from safetensors.torch import load_file

    sd = load_file(os.path.join(path, "model.safetensors"))
    if fsdp_root is not None:
        return _load_checkpoint_fsdp(path, sd, fsdp_root, optimizer, scheduler)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    tied = {k for k, v in model.state_dict().items() if k in missing}
    if unexpected or any(k for k in tied if not _is_tied(model, k)):
        raise InputError(f"checkpoint {path} does not match the model (missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]})", hint="resume with the same student options")
    training = _load_training_state(os.path.join(path, "training.pt"))
    optimizer.load_state_dict(training["optimizer"])
    scheduler.load_state_dict(training["scheduler"])
    _set_rng_state(training["rng"])
    with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
        return json.load(f)


def _load_checkpoint_fsdp(path: str, sd: dict[str, Any], root: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    params = root.state_dict(keep_vars=True)
    full = {f"lm.{k}": v for k, v in sd.items()}
    unexpected = sorted(set(full) - set(params))
    tied = {k for k, v in params.items() if any(k2 != k and v2 is v for k2, v2 in params.items())}
    missing = sorted(k for k in set(params) - set(full) if k not in tied)
    if unexpected or missing:
        raise InputError(f"checkpoint {path} does not match the model (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]})", hint="resume with the same student options")
    set_model_state_dict(root, full, options=StateDictOptions(full_state_dict=True, strict=False))
    training = _load_training_state(os.path.join(path, "training.pt"))
    set_optimizer_state_dict(root, optimizer, training["optimizer"], options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(training["scheduler"])
    _set_rng_state(training["rng"])
    with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
        return json.load(f)


def _load_training_state(path: str) -> dict[str, Any]:
    """Optimizer, scheduler and RNG state, unpickled with ``weights_only=True``: tensors and plain data
    only, so a crafted checkpoint cannot run code. Anything else is refused."""
    import pickle

    import torch

    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, ValueError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"refusing to load {os.path.basename(path)}: it does not load as tensors and plain data "
                         f"(weights_only=True: {first[:160]})", file=path,
                         hint="it was written by another program or an older sad, or tampered with; delete the "
                              "checkpoint folder and run without --resume") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler", "rng"} <= set(state):
        raise InputError("not a sad training state (expected optimizer, scheduler and rng)", file=path,
                         hint="delete the checkpoint folder and run without --resume")
    return state


def clean_stale_temps(out_dir: str) -> list[str]:
    """Remove temp directories left by a run killed while saving (``.tmp-final-*``, ``checkpoints/.tmp-step-*``)."""
    removed = []
    for root, prefix in ((out_dir, ".tmp-final-"), (os.path.join(out_dir, CHECKPOINTS), ".tmp-step-")):
        if not os.path.isdir(root):
            continue
        for d in os.listdir(root):
            if d.startswith(prefix):
                shutil.rmtree(os.path.join(root, d), ignore_errors=True)
                removed.append(os.path.join(root, d))
    return removed


def _is_tied(model: Any, key: str) -> bool:
    sd = model.state_dict()
    ptr = sd[key].data_ptr()
    return any(k != key and v.data_ptr() == ptr for k, v in sd.items())


# --- final output ----------------------------------------------------------------------------

def save_final(out_dir: str, model: Any, tokenizer: Any, sad_config: dict[str, Any],
               state_dict: dict[str, Any] | None = None) -> None:
    """Hugging Face format (safetensors + config + generation config + tokenizer) + sad_config.json.

    Written into a temp dir inside ``out_dir`` and moved into place file by file. ``state_dict``: the
    weights to write instead of the model's own (the full tensors of an FSDP-sharded model).
    """
    os.makedirs(out_dir, exist_ok=True)
    for d in os.listdir(out_dir):  # leftovers of a final save killed half-way
        if d.startswith(".tmp-final-"):
            shutil.rmtree(os.path.join(out_dir, d), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-final-", dir=out_dir)
    try:
        if state_dict is not None:
            model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        with open(os.path.join(tmp, "sad_config.json"), "w", encoding="utf-8") as f:
            json.dump(sad_config, f, indent=2, default=str)
        for name in os.listdir(tmp):
            src = os.path.join(tmp, name)
            if os.path.isfile(src):
                os.chmod(src, new_file_mode())
            os.replace(src, os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- the loop --------------------------------------------------------------------------------

def _oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def _oom_error(cfg: TrainConfig, step: int, max_len: int) -> SadError:
    return SadError(f"out of memory at step {step} (batch size {cfg.batch_size}, longest sequence {max_len})",
                    hint="lower --batch-size (raise --grad-accum to keep the effective batch) or --max-length; "
                         "--teacher-cache DIR frees the teacher's memory")


def _mixed_precision(choice: str, device: str | None) -> str:
    import torch

    if choice != "auto":
        return choice
    if (device is None or device.startswith("cuda")) and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


@dataclass
class Loop:
    """Everything one optimizer step needs; ``step(k)`` runs the k-th step (see the module docstring)."""

    cfg: TrainConfig
    accelerator: Any
    hidden: Any              # HiddenStates(student), prepared by accelerate (DDP-wrapped when distributed)
    optimizer: Any
    scheduler: Any
    schedule: BatchSchedule
    examples: Sequence[Any]
    pad_id: int
    objective: Any
    lm_head: Any
    teacher_hidden: Any = None
    teacher_head: Any = None
    cache: Any = None
    world: int = 1
    rank: int = 0
    fsdp: bool = False
    resumed: dict[str, Any] = field(default_factory=dict)  # trainer_state.json of the resumed checkpoint

    def step(self, step: int) -> dict[str, Any]:
        """One optimizer step; returns its metrics (global loss terms, counts and tokens)."""
        import torch

        cfg, acc, world, objective = self.cfg, self.accelerator, self.world, self.objective
        # 1. this process's micro-batches for the step
        base = step * cfg.grad_accum * world
        micro = [self.schedule[base + j * world + self.rank] for j in range(cfg.grad_accum)]
        batches = [pad_batch([self.examples[i] for i in idx], self.pad_id) for _, idx in micro]
        # 2. global supervised-token counts (all micro-batches, all processes)
        counts = torch.tensor([objective.counts(b["token_labels"], b["input_ids"]) for b in batches],
                              dtype=torch.float64).sum(0).to(acc.device)
        counts = acc.reduce(counts, reduction="sum") if world > 1 else counts
        num = tuple(float(c) for c in counts.tolist())
        lr = float(self.optimizer.param_groups[0]["lr"])  # the rate this step uses (logged as such)
        if not any(num):
            # every position of the step is masked: nothing to learn; no optimizer or scheduler step
            # (AdamW would still decay weights and move momentum), counted as skipped
            return {"epoch": micro[0][0], "loss": 0.0, "loss_cot": 0.0, "loss_act": 0.0, "n_reason": num[0],
                    "n_act": num[1], "tokens": 0, "max_len": max(b["input_ids"].shape[1] for b in batches),
                    "grad_norm": None, "lr": lr, "skipped": True}
        # 3. forward/backward per micro-batch
        totals = torch.zeros(3, dtype=torch.float64)
        for j, (b, (_, idx)) in enumerate(zip(batches, micro, strict=True)):
            b = {k: v.to(acc.device) for k, v in b.items()}
            last_micro = j == len(batches) - 1
            if self.fsdp:  # FSDP2: reduce-scatter the gradients once, after the last micro-batch
                self.hidden.set_requires_gradient_sync(last_micro)
                ctx = _null()
            else:
                ctx = acc.no_sync(self.hidden) if not last_micro and world > 1 else _null()
            with ctx:
                if self.fsdp:  # not wrapped by accelerate's prepare: its mixed-precision autocast, here
                    with acc.autocast():
                        h = self.hidden(b["input_ids"], b["attention_mask"])
                else:
                    h = self.hidden(b["input_ids"], b["attention_mask"])
                teacher = None
                if self.teacher_hidden is not None and objective.needs_teacher:
                    with torch.no_grad():
                        teacher = ("hidden", self.teacher_hidden(b["input_ids"], b["attention_mask"]),
                                   self.teacher_head)
                elif self.cache is not None and objective.needs_teacher:
                    teacher = ("cache", self.cache.rows_for(idx))
                out = objective.loss(h, self.lm_head, b["input_ids"], b["token_labels"], teacher, num,
                                     step=step, micro=j)
                # DDP averages gradients over processes; the loss is already globally
                # normalized, so scale by the world size to get the global sum back.
                acc.backward(out.total * world)
            totals += torch.tensor([out.total.item(), out.cot.item(), out.act.item()], dtype=torch.float64) * world
        # 4. update
        grad_norm = acc.clip_grad_norm_(self.hidden.parameters(), cfg.grad_clip) if cfg.grad_clip else None
        if grad_norm is not None and hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = torch.tensor([float(sum(int(b["attention_mask"].sum()) for b in batches))], dtype=torch.float64)
        if world > 1:
            totals = acc.reduce(totals.to(acc.device), reduction="sum").cpu() / world
            tokens = acc.reduce(tokens.to(acc.device), reduction="sum").cpu()
        return {"epoch": micro[0][0], "loss": totals[0].item(), "loss_cot": totals[1].item(),
                "loss_act": totals[2].item(), "n_reason": num[0], "n_act": num[1],
                "tokens": int(tokens.item()),  # all processes
                "max_len": max(b["input_ids"].shape[1] for b in batches),
                "grad_norm": None if grad_norm is None else float(grad_norm), "lr": lr, "skipped": False}


def make_loop(job: DistillJob) -> tuple[Loop, int, int, int]:
    """Accelerator, optimizer, scheduler, data schedule (+ resume). Returns (loop, steps, start, tokens_seen)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    cfg = job.train
    _check_trackers(job.report_to)
    cpu = job.device == "cpu" or (job.device is None and not torch.cuda.is_available())
    accelerator = Accelerator(cpu=cpu, mixed_precision=_mixed_precision(cfg.mixed_precision, job.device),
                              log_with=list(job.report_to) or None,
                              project_dir=job.out_dir if job.report_to else None)
    if job.device and not cpu and job.device not in ("cuda", str(accelerator.device)):
        console.print(f"[yellow]note:[/] accelerate placed the model on {accelerator.device}")
    world, rank = accelerator.num_processes, accelerator.process_index
    set_seed(cfg.seed)
    steps = total_steps(cfg, len(job.examples), world)
    lengths = [len(ex.input_ids) for ex in job.examples]
    schedule = BatchSchedule(lengths, cfg.batch_size, seed=cfg.seed, length_group=cfg.length_group,
                             curriculum=job.curriculum, pacing=job.pacing, micro_per_step=cfg.grad_accum * world,
                             total_steps=steps)
    student = job.student
    student.train()
    fsdp = job.fsdp and world > 1
    if job.fsdp and world == 1:
        console.print("[yellow]note:[/] --fsdp with one process: nothing to shard (launch several with torchrun "
                      "or accelerate launch)")
    if fsdp:
        hidden = shard_fsdp(HiddenStates(student.to(accelerator.device)))
    optimizer = make_optimizer(student, cfg)  # after sharding: FSDP replaces the parameters by DTensor shards
    scheduler = make_scheduler(optimizer, cfg, steps)
    start_step, tokens_seen = 0, 0
    resumed: dict[str, Any] = {}
    os.makedirs(job.out_dir, exist_ok=True)
    if job.resume:
        stale = clean_stale_temps(job.out_dir)
        if stale:
            console.print(f"[yellow]removed {len(stale)} temp folder(s) of an interrupted save[/]")
        ckpt = latest_checkpoint(job.out_dir)
        if ckpt is None:
            console.print("[yellow]--resume: no checkpoint yet, starting from the beginning[/]")
        else:
            st = load_checkpoint(ckpt, student, optimizer, scheduler, fsdp_root=hidden if fsdp else None)
            if st.get("fingerprint") != job.run_config.get("fingerprint"):
                raise InputError(f"checkpoint {ckpt} was made with other data or options",
                                 hint="resume with exactly the same command, or use a new -o directory")
            start_step, tokens_seen = st["step"], st.get("tokens_seen", 0)
            _check_sampler(st.get("sampler"), schedule, start_step, ckpt)
            resumed = st
            console.print(f"resuming from {ckpt} (step {start_step}/{steps})")
    if fsdp:  # already sharded: accelerate must not wrap it in DDP
        optimizer = accelerator.prepare_optimizer(optimizer)
    else:
        hidden, optimizer = accelerator.prepare(HiddenStates(student), optimizer)
    loop = Loop(cfg=cfg, accelerator=accelerator, hidden=hidden, optimizer=optimizer, scheduler=scheduler,
                schedule=schedule, examples=job.examples, objective=job.objective,
                pad_id=job.tokenizer.pad_token_id if job.tokenizer.pad_token_id is not None else 0,
                lm_head=student.get_output_embeddings(), cache=job.cache, world=world, rank=rank, fsdp=fsdp)
    if job.teacher is not None:
        job.teacher.eval().requires_grad_(False).to(accelerator.device)
        loop.teacher_hidden = HiddenStates(job.teacher)
        loop.teacher_head = job.teacher.get_output_embeddings()
    loop.resumed = resumed
    return loop, steps, start_step, tokens_seen


def _open_log(path: str, resume: bool, start_step: int) -> Any:
    """The ``--log`` file: new (atomically emptied) for a fresh run; on resume, the lines of steps after
    the checkpoint (logged before the run was killed, about to be redone) are dropped first, so every
    step appears once."""
    from sadcli.fsutil import atomic_write_text, os_error

    kept = []
    if resume and os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for raw in f:
                try:
                    step = json.loads(raw).get("step")
                except (ValueError, AttributeError):
                    continue  # a half-written last line
                if isinstance(step, int) and step <= start_step:
                    kept.append(raw if raw.endswith("\n") else raw + "\n")
    try:
        if os.path.isfile(path) or not os.path.exists(path):
            atomic_write_text(path, "".join(kept), what="--log")
        return open(path, "a", encoding="utf-8")
    except OSError as e:
        raise os_error(e, path, "cannot write --log") from None


def _state(step: int, tokens_seen: int, skipped: int, job: DistillJob, first: Any, last: Any,
           schedule: BatchSchedule | None = None) -> dict[str, Any]:
    out = {"step": step, "tokens_seen": tokens_seen, "skipped_steps": skipped,
           "fingerprint": job.run_config.get("fingerprint"), "first": first, "last": last}
    if schedule is not None:  # the data sampler: where it stands (it is a pure function of seed and index)
        out["sampler"] = schedule.state(step * schedule.micro_per_step)
    return out


def _check_sampler(saved: dict[str, Any] | None, schedule: BatchSchedule, step: int, ckpt: str) -> None:
    """A checkpoint's sampler state must be what this run's schedule gives at that step."""
    if saved is None:
        return  # a checkpoint from before the sampler was recorded
    now = schedule.state(step * schedule.micro_per_step)
    diff = sorted(k for k in now if k in saved and saved[k] != now[k] and k != "competence") + \
        (["competence"] if "competence" in now and abs(saved.get("competence", -1) - now["competence"]) > 1e-12
         else [])
    if diff:
        raise InputError(f"checkpoint {ckpt} was made with another data sampler ({', '.join(diff)} differ: "
                         f"{ {k: saved.get(k) for k in diff} } vs { {k: now[k] for k in diff} })",
                         hint="resume with the same --curriculum, --c0, --curriculum-steps, --seed, --batch-size, "
                              "--grad-accum and number of processes")


def train(job: DistillJob, on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a distillation job; returns the summary (also in sad_config.json)."""
    created = not os.path.exists(job.out_dir)
    try:
        return _train(job, on_log)
    except BaseException:
        # interrupted before anything was saved: leave no empty output directory behind
        if created and os.path.isdir(job.out_dir):
            _remove_if_empty(job.out_dir)
        raise


def _remove_if_empty(path: str) -> None:
    for sub in (os.path.join(path, CHECKPOINTS), path):
        try:
            os.rmdir(sub)
        except OSError:
            pass


def shard_fsdp(hidden: Any) -> Any:
    """FSDP2 over the default process group: ``fully_shard`` every decoder layer, then the root (``hidden``:
    the :class:`HiddenStates` wrapper, so embeddings, final norm and the tied/untied LM head are one group
    that stays unsharded from forward to backward — the loss reads the head weight outside the forward)."""
    from torch.distributed.fsdp import fully_shard

    layers = getattr(hidden.lm.get_decoder(), "layers", None)
    if layers is None:
        raise InputError(f"--fsdp: cannot find the decoder layers of {type(hidden.lm).__name__}",
                         hint="use a Llama-style student (model.layers), or train without --fsdp")
    for layer in layers:
        fully_shard(layer)
    fully_shard(hidden, reshard_after_forward=False)
    return hidden


def _save_state(loop: Loop, model: Any) -> tuple[dict, dict] | None:
    """FSDP: the full model/optimizer state, gathered on every process (collective); else None."""
    return gather_full(loop.hidden, model, loop.optimizer.optimizer if hasattr(loop.optimizer, "optimizer")
                       else loop.optimizer) if loop.fsdp else None


def _train(job: DistillJob, on_log: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    cfg = job.train
    loop, steps, start_step, tokens_seen = make_loop(job)
    accelerator, world = loop.accelerator, loop.world
    if job.report_to and accelerator.is_main_process:
        accelerator.init_trackers("sad-distill", config=cfg.to_dict())
    log_file = _open_log(job.log_path, job.resume, start_step) \
        if job.log_path and accelerator.is_main_process else None
    sleep = float(os.environ.get(STEP_SLEEP_ENV, "0") or 0)
    history: list[dict[str, Any]] = []
    skipped = int(loop.resumed.get("skipped_steps", 0))
    first = loop.resumed.get("first")
    progress = _progress(job.show_progress and accelerator.is_main_process)
    task = progress.add_task("distill", total=steps, completed=start_step, info="")
    t_start = time.perf_counter()
    tokens_run, step = 0, start_step
    try:
        with progress:
            for step in range(start_step, steps):
                m = loop.step(step)
                tokens_run += m["tokens"]
                tokens_seen += m["tokens"]
                skipped += bool(m.get("skipped"))
                done = step + 1
                elapsed = time.perf_counter() - t_start
                rec = {"step": done, "epoch": m["epoch"], "loss": m["loss"], "loss_cot": m["loss_cot"],
                       "loss_act": m["loss_act"], "lr": m.get("lr", loop.scheduler.get_last_lr()[0]),
                       "n_reason": m["n_reason"], "n_act": m["n_act"], "tokens_seen": tokens_seen,
                       "tokens_per_s": tokens_run / elapsed if elapsed > 0 else 0.0}
                if m["grad_norm"] is not None:
                    rec["grad_norm"] = m["grad_norm"]
                if m.get("skipped"):
                    rec["skipped"] = True
                if loop.schedule.pacing.mode in ("stages", "competence"):
                    rec["competence"] = loop.schedule.competence_at(step)   # share of the data open at this step
                history.append(rec)
                if first is None:
                    first = rec
                if done % cfg.log_every == 0 or done == steps:
                    if log_file:
                        log_file.write(json.dumps(rec) + "\n")
                        log_file.flush()
                    if job.report_to:
                        accelerator.log({k: v for k, v in rec.items() if k != "step"}, step=done)
                    if on_log:
                        on_log(rec)
                progress.update(task, completed=done,
                                info=f"ep {rec['epoch']} L {rec['loss']:.4f} cot {rec['loss_cot']:.4f} "
                                     f"act {rec['loss_act']:.4f} {rec['tokens_per_s']:.0f} tok/s")
                if cfg.save_every and done % cfg.save_every == 0 and done < steps:
                    accelerator.wait_for_everyone()
                    lm = accelerator.unwrap_model(loop.hidden).lm
                    full = _save_state(loop, lm)
                    if accelerator.is_main_process:
                        save_checkpoint(job.out_dir, done, lm, loop.optimizer,
                                        loop.scheduler, _state(done, tokens_seen, skipped, job, first, rec, loop.schedule),
                                        cfg.keep_checkpoints, full=full)
                if sleep:
                    time.sleep(sleep)
    except RuntimeError as e:
        if _oom(e):
            raise _oom_error(cfg, step + 1, _longest(loop, step)) from None
        raise
    except OSError as e:
        from sadcli.fsutil import os_error

        raise os_error(e, job.out_dir, "cannot write") from None
    except Exception as e:
        raise _save_error(e, job.out_dir) or e from None
    finally:
        if log_file:
            log_file.close()
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(loop.hidden).lm
    full = _save_state(loop, model)
    last = history[-1] if history else loop.resumed.get("last")
    if skipped:
        console.print(f"[yellow]note:[/] {skipped} step(s) had no supervised token (every position masked) "
                      "and were skipped: no optimizer or scheduler step")
    summary = {"steps": steps, "resumed_from": start_step, "tokens_seen": tokens_seen,
               "first": first, "last": last, "skipped_steps": skipped,
               "seconds": time.perf_counter() - t_start, "processes": world,
               "mixed_precision": accelerator.mixed_precision, "device": str(accelerator.device),
               "sharding": "fsdp2" if loop.fsdp else ("ddp" if world > 1 else "none")}
    if accelerator.is_main_process:
        try:
            save_checkpoint(job.out_dir, steps, model, loop.optimizer, loop.scheduler,
                            _state(steps, tokens_seen, skipped, job, first, last, loop.schedule), cfg.keep_checkpoints,
                            full=full)
            save_final(job.out_dir, model, job.tokenizer, {**job.run_config, "summary": summary},
                       state_dict=full[0] if full is not None else None)
        except OSError as e:
            from sadcli.fsutil import os_error

            raise os_error(e, job.out_dir, "cannot save the student") from None
        except Exception as e:
            raise _save_error(e, job.out_dir) or e from None
    if job.report_to:
        accelerator.end_training()
    return summary


def _save_error(e: Exception, out_dir: str) -> SadError | None:
    """safetensors reports a full disk or an unwritable file as its own error type: an Error line too."""
    if type(e).__name__ != "SafetensorError":
        return None
    text = str(e).strip().splitlines()[0] if str(e).strip() else "write failed"
    hint = "free some space or write somewhere else" if "No space left" in text else "check the output folder"
    return SadError(f"cannot save the student: {text}", hint=hint, file=out_dir)


def _longest(loop: Loop, step: int) -> int:
    """Longest sequence of this process's micro-batches at ``step`` (for the out-of-memory message)."""
    base = step * loop.cfg.grad_accum * loop.world
    idx = [i for j in range(loop.cfg.grad_accum) for i in loop.schedule[base + j * loop.world + loop.rank][1]]
    return max(len(loop.examples[i].input_ids) for i in idx)


def _check_trackers(names: Sequence[str]) -> None:
    """--report-to: each tracker must be installed (a clear error instead of accelerate's traceback)."""
    import importlib.util

    modules = {"tensorboard": "tensorboard", "wandb": "wandb", "comet_ml": "comet_ml", "mlflow": "mlflow",
               "aim": "aim", "clearml": "clearml", "dvclive": "dvclive"}
    for name in names:
        if name not in modules:
            raise InputError(f"unknown tracker {name!r}", hint="use one of: " + ", ".join(modules))
        if importlib.util.find_spec(modules[name]) is None:
            raise InputError(f"--report-to {name}: the {modules[name]} package is not installed",
                             hint=f"pip install {modules[name]}")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _progress(enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), console=console, disable=not enabled, transient=False)
