#!/usr/bin/env python3
"""Reproduce the experiments of Structured Agent Distillation (Liu et al., AAMAS 2026) at small scale.

    python examples/reproduce/run.py examples/reproduce/tiny.toml [--workdir DIR] [--env NAME] [--jobs N]

Reads a grid file (TOML: environment(s), student sizes, objectives, λ ratios, curriculum, span vocabulary,
seeds, budgets) and runs, per environment, through the public ``sad`` command line only:

 1. expert trajectories on the train split        sad collect --teacher expert --only-success
 2. the teacher: the base model fine-tuned on them sad segment, sad distill --loss sft
 3. the teacher's own rollouts on train games      sad collect --teacher hf:TEACHER (successes kept, rate kept)
    and on held-out games (fidelity data)
 4. distillation data                               sad segment, sad mask-check --strict, sad curriculum,
                                                    sad distill --cache-teacher (once)
 5. students, one per objective / variant / seed    sad distill (--teacher-cache where the loss allows it)
 6. evaluation of every student, the teacher and   sad eval (rollouts on held-out games + teacher-forced
    the undistilled layer-cut student               fidelity on the teacher's held-out trajectories)

Models and data go under the work dir (default ``$SAD_HOME/reproduce``, outside the repository); small
result JSON files go to ``docs/results/<env>/<preset>/``; at the end ``render.py`` writes
``docs/results/<env>/README.md`` from those JSON files alone. Every stage is skipped when its output
exists, and an interrupted command is resumed (``--resume`` of collect, distill and eval), so the run can
be stopped and restarted, also on another machine that has only the JSON results.

Only the standard library and subprocess calls of ``sad`` here; statistics and plots are in render.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SAD = [shutil.which("sad") or str(Path(sys.executable).with_name("sad"))]
STARTED = time.time()

# Losses whose teacher signal a reason/act top-k cache holds (forward KL at the agent's positions, full
# vocabulary); token-kd (reverse KL), kd (observations too) and --span-vocab bucketed need the live teacher,
# seqkd needs no teacher at all.
CACHE_LOSSES = {"sad", "flat", "random-spans", "only-reason", "only-act"}


# --- logging --------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    el = int(time.time() - STARTED)
    print(f"[reproduce {el // 60:3d}m{el % 60:02d}s] {msg}", file=sys.stderr, flush=True)


def eta(done: int, total: int, spent: float) -> str:
    if not done:
        return ""
    left = (total - done) * spent / done
    return f"; ~{left / 60:.1f} min left for this stage (mean {spent / done:.0f} s per run)"


# --- running sad ----------------------------------------------------------------------------------------

class StageError(RuntimeError):
    pass


def sad(args: list[str], *, stdout=None, env_extra: dict | None = None) -> float:
    """Run ``sad ARGS``; stderr streams through; returns the wall-clock seconds. Fails loudly."""
    cmd = SAD + [str(a) for a in args]
    log("$ " + shlex.join(["sad"] + cmd[1:]))
    t0 = time.time()
    env = dict(os.environ, **(env_extra or {}))
    r = subprocess.run(cmd, stdout=stdout, env=env)
    if r.returncode != 0:
        raise StageError(f"`{shlex.join(['sad'] + cmd[1:])}` exited with {r.returncode}")
    return time.time() - t0


def shown(args: list[str]) -> str:
    """The command as the report shows it (work-dir paths kept: they name what was read and written)."""
    return shlex.join(["sad"] + [str(a) for a in args])


def done(marker: Path) -> bool:
    return marker.exists()


def mark(marker: Path, info: dict) -> None:
    write_json(marker, info)


def write_json(path: Path, obj) -> None:
    """Write atomically (temp file + rename): an interrupted run never leaves half a result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- the grid -------------------------------------------------------------------------------------------

def students(grid: dict) -> list[dict]:
    """Every student of the grid: objectives at λ 1:1, curriculum on, span-vocab full, per size and seed; the
    main objectives also at the extra (smaller) sizes; the variants of ``sad`` (λ ratios, no curriculum,
    other span vocabularies) at the main sizes."""
    out = []

    def add(layers, loss, seed, lr=1, la=1, curriculum="sorted", span_vocab="full"):
        label = f"L{layers}-{loss}"
        if (lr, la) != (1, 1):
            label += f"-l{lr}to{la}"
        if curriculum != "sorted":
            label += f"-curr{curriculum}"
        if span_vocab != "full":
            label += f"-{span_vocab}"
        label += f"-s{seed}"
        out.append({"label": label, "layers": layers, "loss": loss, "seed": seed, "lambda_reason": lr,
                    "lambda_act": la, "curriculum": curriculum, "span_vocab": span_vocab})

    for seed in grid["seeds"]:
        for layers in grid["layers"]:
            for loss in grid["objectives"]:
                add(layers, loss, seed)
            for lr, la in grid.get("lambdas", []):
                add(layers, "sad", seed, lr=lr, la=la)
            if grid.get("curriculum_off"):
                add(layers, "sad", seed, curriculum="none")
            for sv in grid.get("span_vocab", []):
                add(layers, "sad", seed, span_vocab=sv)
        for layers in grid.get("extra_layers", []):
            for loss in grid["main_objectives"]:
                add(layers, loss, seed)
    return out


def budget_for(cfg: dict, env: dict) -> dict:
    """Preset budget, overridden by the environment block's own keys."""
    b = dict(cfg["budget"])
    b.update({k: v for k, v in env.items() if k in b or k in ("distill_args", "teacher_opts", "eval_args")})
    return b


# --- one environment ------------------------------------------------------------------------------------

class EnvRun:
    def __init__(self, cfg: dict, env: dict, workdir: Path, results: Path, jobs: int, device: str | None):
        self.cfg, self.env, self.jobs, self.device = cfg, env, jobs, device
        self.b = budget_for(cfg, env)
        self.w = workdir / cfg["preset"] / env["name"]
        self.r = results / env["name"] / cfg["preset"]
        self.w.mkdir(parents=True, exist_ok=True)
        self.pipeline_file = self.r / "pipeline.json"
        self.pipeline = json.loads(self.pipeline_file.read_text()) if self.pipeline_file.exists() else {
            "preset": cfg["preset"], "env": env, "budget": self.b, "grid": cfg["grid"],
            "base_model": cfg["base_model"], "stages": {}}

    # helpers
    def envargs(self) -> list[str]:
        return ["--env", self.env["env"], *self.env.get("args", [])]

    def dev(self) -> list[str]:
        return ["--device", self.device] if self.device else []

    def record(self, stage: str, info: dict) -> None:
        self.pipeline["stages"][stage] = info
        write_json(self.pipeline_file, self.pipeline)

    def marker(self, stage: str) -> Path:
        return self.w / ".done" / f"{stage}.json"

    def teacher_opts(self) -> list[str]:
        # the teacher was fine-tuned on the bare ReAct text (native markers, text render, no few-shot examples):
        # prompt it with exactly that in collect
        opts = ["examples=false", "chat=no", f"max_new_tokens={self.b['max_new_tokens']}",
                *self.b.get("teacher_opts", [])]
        return [x for o in opts for x in ("--teacher-opt", o)]

    # stages
    def expert(self) -> None:
        m = self.marker("expert")
        if done(m):
            return
        out = self.w / "expert.jsonl"
        args = ["collect", *self.envargs(), "--split", self.env["train_split"], "--teacher", "expert",
                "--only-success", "-n", self.b["expert_episodes"], "--max-steps", self.b["expert_max_steps"],
                "--parallel", self.b["parallel"], "-o", out, "--resume", "-q"]
        t = sad(args)
        seg = ["segment", out, "--markers", "native", "-q", "-o", self.w / "expert.seg.jsonl"]
        t += sad(seg)
        n = len(read_jsonl(out))
        info = {"commands": [shown(args), shown(seg)], "episodes_played": self.b["expert_episodes"],
                "successes_kept": n, "seconds": round(t, 1)}
        self.record("expert", info)
        mark(m, info)

    def teacher(self) -> Path:
        out = self.w / "teacher"
        m = self.marker("teacher")
        if done(m):
            return out
        args = ["distill", self.w / "expert.seg.jsonl", "--loss", "sft", "--student", self.cfg["base_model"],
                "--max-steps", self.b["teacher_steps"], "--batch-size", self.b["batch_size"],
                "--max-length", self.b["max_length"], "--lr", self.b["lr"], "--seed", 0,
                "--log", self.w / "teacher.log.jsonl", "--resume", "-q", *self.dev(),
                *self.b.get("distill_args", []), "-o", out]
        t = sad(args)
        info = {"command": shown(args), "steps": self.b["teacher_steps"], "seconds": round(t, 1),
                "curve": curve(self.w / "teacher.log.jsonl")}
        self.record("teacher", info)
        mark(m, info)
        return out

    def teacher_rollouts(self, teacher: Path) -> None:
        """The teacher plays train games (its successes: the distillation data) and held-out games (the
        fidelity data, won or not: they are the teacher's own text)."""
        heldout_split = self.env.get("heldout_split", self.env["eval_split"])
        heldout_offset = self.env.get("heldout_offset", self.b["eval_episodes"])
        for stage, split, n, offset in (("teacher_train", self.env["train_split"], self.b["teacher_episodes"],
                                         self.b["expert_episodes"]),
                                        ("teacher_heldout", heldout_split, self.b["heldout_episodes"], heldout_offset)):
            m = self.marker(stage)
            if done(m):
                continue
            out = self.w / f"{stage}.jsonl"
            # train: games after the expert's, so the teacher plays games it was not fine-tuned on;
            # held-out: games after the evaluation games (or heldout_split), so fidelity data and rollouts
            # do not overlap
            args = ["collect", *self.envargs(), "--split", split, "--teacher", f"hf:{teacher}", "-n", n,
                    "--offset", offset, "--max-steps", self.b["teacher_max_steps"], "--parallel",
                    self.b["parallel"], *self.teacher_opts(), "-o", out, "--resume", "-q"]
            t = sad(args)
            eps = read_jsonl(out)
            won = [e for e in eps if e.get("success")]
            info = {"command": shown(args), "episodes": len(eps), "successes": len(won), "seconds": round(t, 1)}
            if stage == "teacher_train":
                keep_all = len(won) < self.b["min_teacher_successes"]
                info["kept"] = "all episodes (too few successes)" if keep_all else "successes"
                kept = eps if keep_all else won
                with open(self.w / "teacher.jsonl", "w", encoding="utf-8") as f:
                    f.writelines(json.dumps(e) + "\n" for e in kept)
                info["kept_episodes"] = len(kept)
                if not kept:
                    raise StageError("the teacher played no episode: nothing to distill")
            self.record(stage, info)
            mark(m, info)

    def data(self, teacher: Path) -> Path:
        ordered = self.w / "ordered.jsonl"
        m = self.marker("data")
        if done(m):
            return ordered
        seg = ["segment", self.w / "teacher.jsonl", "--markers", "native", "-q", "-o", self.w / "distill.seg.jsonl"]
        held = ["segment", self.w / "teacher_heldout.jsonl", "--markers", "native", "-q", "-o",
                self.w / "heldout.seg.jsonl"]
        check = ["mask-check", self.w / "distill.seg.jsonl", "--strict", "--tokenizer", teacher, "--max-length",
                 self.b["max_length"], "-q"]
        curr = ["curriculum", self.w / "distill.seg.jsonl", "--teacher", teacher, "--gamma",
                self.b["curriculum_gamma"], "--max-length", self.b["max_length"], *self.dev(), "-q", "-o", ordered]
        t = sad(seg) + sad(held)
        with open(os.devnull, "wb") as null:
            t += sad(check, stdout=null)
        t += sad(curr)
        info = {"commands": [shown(seg), shown(held), shown(check) + " > /dev/null", shown(curr)],
                "records": len(read_jsonl(ordered)), "heldout_records": len(read_jsonl(self.w / "heldout.seg.jsonl")),
                "seconds": round(t, 1)}
        self.record("data", info)
        mark(m, info)
        return ordered

    def cache(self, teacher: Path, ordered: Path) -> Path:
        out = self.w / "cache"
        m = self.marker("cache")
        if done(m):
            return out
        if out.exists():  # a half-built cache from an interrupted run: the command refuses an existing dir
            shutil.rmtree(out)
        args = ["distill", ordered, "--teacher", teacher, "--cache-teacher", out, "--max-length",
                self.b["max_length"], "-q", *self.dev()]
        t = sad(args)
        info = {"command": shown(args), "seconds": round(t, 1)}
        self.record("cache", info)
        mark(m, info)
        return out

    def student_args(self, s: dict, teacher: Path, ordered: Path, cache: Path) -> list[str]:
        args = ["distill", ordered, "--teacher", teacher, "--student-layers", s["layers"], "--loss", s["loss"],
                "--lambda-reason", s["lambda_reason"], "--lambda-act", s["lambda_act"], "--span-vocab",
                s["span_vocab"], "--curriculum", s["curriculum"], "--seed", s["seed"], "--max-steps",
                self.b["student_steps"], "--batch-size", self.b["batch_size"], "--max-length",
                self.b["max_length"], "--lr", self.b["lr"]]
        if s["loss"] in CACHE_LOSSES and s["span_vocab"] == "full":
            args += ["--teacher-cache", cache]
        return args + ["--log", self.w / "students" / f"{s['label']}.log.jsonl", "--resume", "-q", *self.dev(),
                       *self.b.get("distill_args", []), "-o", self.w / "students" / s["label"]]

    def eval_args(self, label: str, spec: str, teacher: Path) -> list[str]:
        args = ["eval", "-m", f"{label}={spec}", *self.envargs(), "--split", self.env["eval_split"], "-n",
                self.b["eval_episodes"], "--seeds", "0", "--parallel", self.b["parallel"], "--max-new-tokens",
                self.b["max_new_tokens"], "--data", self.w / "heldout.seg.jsonl", "--teacher", teacher,
                "-o", self.w / "eval" / f"{label}.jsonl", "--resume", "--report",
                self.w / "eval" / f"{label}.report.json", "-q", *self.dev(), *self.b.get("eval_args", [])]
        if self.b["eval_max_steps"]:
            args[args.index("--parallel"):args.index("--parallel")] = ["--max-steps", self.b["eval_max_steps"]]
        return args

    def run(self) -> None:
        plan = students(self.cfg["grid"])
        # the shipped base model, prompted as `collect --teacher hf:` prompts it (instruction + the
        # environment's few-shot ReAct examples): what the fine-tuned teacher has to beat
        models = [{"label": "teacher", "kind": "teacher"}, {"label": "base", "kind": "base"}]
        for layers in sorted({s["layers"] for s in plan}, reverse=True):
            models.append({"label": f"L{layers}-undistilled", "kind": "undistilled", "layers": layers})
        models += [{**s, "kind": "student"} for s in plan]
        pending = [mo for mo in models if not (self.r / "eval" / f"{mo['label']}.json").exists()]
        log(f"{self.env['name']} / {self.cfg['preset']}: {len(plan)} students, {len(models)} models to evaluate, "
            f"{len(pending)} not evaluated yet; work dir {self.w}")
        if not pending:
            return
        self.expert()
        teacher = self.teacher()
        self.teacher_rollouts(teacher)
        ordered = self.data(teacher)
        cache = self.cache(teacher, ordered)

        # students (only those whose evaluation is missing), `jobs` at once
        # (`init:STUDENT` of the undistilled model reads the first student of its size)
        first = {}
        for s in plan:
            first.setdefault(s["layers"], s)
        labels = {p["label"] for p in pending}
        labels |= {first[p["layers"]]["label"] for p in pending if p["kind"] == "undistilled"}
        self.parallel("train", [s for s in plan if s["label"] in labels],
                      lambda s: self.train_one(s, teacher, ordered, cache))

        # evaluations
        for mo in pending:
            if mo["kind"] == "teacher":
                mo["spec"] = str(teacher)
            elif mo["kind"] == "base":
                mo["spec"] = self.cfg["base_model"]
            elif mo["kind"] == "undistilled":
                mo["spec"] = f"init:{self.w / 'students' / first[mo['layers']]['label']}"
            else:
                mo["spec"] = str(self.w / "students" / mo["label"])
        self.parallel("eval", pending, lambda mo: self.eval_one(mo, teacher))

    def parallel(self, what: str, items: list[dict], fn) -> None:
        spent, n = 0.0, 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            futures = [pool.submit(fn, it) for it in items]
            for fut in concurrent.futures.as_completed(futures):
                spent += fut.result()
                n += 1
                log(f"{self.env['name']}: {what} {n}/{len(items)} done{eta(n, len(items), spent / self.jobs)}")

    def train_one(self, s: dict, teacher: Path, ordered: Path, cache: Path) -> float:
        m = self.marker(f"student-{s['label']}")
        if done(m):
            return 0.0
        args = self.student_args(s, teacher, ordered, cache)
        t = sad(args)
        info = {**s, "command": shown(args), "seconds": round(t, 1),
                "curve": curve(self.w / "students" / f"{s['label']}.log.jsonl")}
        write_json(self.r / "train" / f"{s['label']}.json", info)
        mark(m, info)
        return t

    def eval_one(self, mo: dict, teacher: Path) -> float:
        (self.w / "eval").mkdir(exist_ok=True)
        args = self.eval_args(mo["label"], mo["spec"], teacher)
        t = sad(args)
        report = json.loads((self.w / "eval" / f"{mo['label']}.report.json").read_text())
        episodes = [{"id": e.get("id"), "seed": e.get("seed"), "success": bool(e.get("success")),
                     "steps": len(e.get("steps") or []), "termination": e.get("termination")}
                    for e in read_jsonl(self.w / "eval" / f"{mo['label']}.jsonl")]
        summary = report["rollouts"]["summary"]["models"][mo["label"]]
        fidelity = ((report.get("fidelity") or {}).get("models") or {}).get(mo["label"])
        info = {k: v for k, v in mo.items() if k != "spec"}
        info.update({"command": shown(args), "seconds": round(t, 1), "env": report["rollouts"]["env"],
                     "split": report["rollouts"]["split"], "step_cap": report["rollouts"]["step_cap"],
                     "rollouts": summary, "fidelity": fidelity, "episodes": episodes,
                     "fidelity_data": {k: (report.get("fidelity") or {}).get(k) for k in ("examples", "steps")},
                     "git": report.get("git"), "machine": report.get("machine"), "versions": report.get("versions")})
        write_json(self.r / "eval" / f"{mo['label']}.json", info)
        return t


def curve(log_file: Path) -> list[dict]:
    """step, loss, L_CoT, L_Act of every logged optimizer step (the training curves of the report)."""
    if not log_file.exists():
        return []
    keys = ("step", "loss", "loss_cot", "loss_act")
    return [{k: row.get(k) for k in keys} for row in read_jsonl(log_file) if not row.get("skipped")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", help="grid file: examples/reproduce/{tiny,cpu,gpu}.toml")
    ap.add_argument("--workdir", help="models and data (default: $SAD_HOME/reproduce, else ~/.cache/sad/reproduce)")
    ap.add_argument("--results", default=str(REPO / "docs" / "results"), help="result JSON + README root")
    ap.add_argument("--env", action="append", help="only this environment block (by name); repeatable")
    ap.add_argument("--jobs", type=int, help="trainings / evaluations at once (default: the grid's)")
    ap.add_argument("--device", help="cpu, cuda... for distill, curriculum and eval (default: the grid's)")
    ap.add_argument("--render-only", action="store_true", help="only re-render the README(s) from the JSON")
    a = ap.parse_args(argv)

    with open(a.grid, "rb") as f:
        cfg = tomllib.load(f)
    home = Path(os.environ.get("SAD_HOME") or Path.home() / ".cache" / "sad")
    workdir = Path(a.workdir) if a.workdir else home / "reproduce"
    results = Path(a.results)
    envs = [e for e in cfg["env"] if not a.env or e["name"] in a.env]
    if not envs:
        print(f"Error: {a.grid}: no [[env]] block named {a.env} — names: {[e['name'] for e in cfg['env']]}",
              file=sys.stderr)
        return 1
    failed = []
    if not a.render_only:
        for env in envs:
            run = EnvRun(cfg, env, workdir.resolve(), results, a.jobs or cfg.get("jobs", 1),
                         a.device or cfg.get("device"))
            try:
                run.run()
            except StageError as e:
                log(f"{env['name']}: stopped: {e} (fix it and run the same command again: finished stages are kept)")
                failed.append(env["name"])
    for env in envs:
        r = subprocess.run([sys.executable, str(HERE / "render.py"), str(results / env["name"])])
        if r.returncode != 0:
            failed.append(f"{env['name']} (render)")
        else:
            log(f"wrote {results / env['name'] / 'README.md'}")
    log(f"finished in {(time.time() - STARTED) / 60:.1f} min" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
