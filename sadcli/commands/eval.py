"""``sad eval``: policies side by side — rollouts in an environment and teacher-forced fidelity.

Thin command: parses options and calls :mod:`sadcli.eval`. No torch at import time.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from typing import Optional

import typer

from sadcli.commands._common import QuietOpt, Render, cli_errors, setup
from sadcli.console import console
from sadcli.envs.registry import BUILTIN as _ENVS

_MODEL_HELP = ("[label=]SPEC, repeatable: a `sad distill` output folder (prompted as it was distilled), "
               "init:DIR (that student before distillation), teacher:DIR (its teacher, same format), a local "
               "Hugging Face dir or smollm2-135m (the environment's ReAct prompt), expert, or "
               "openai:<base-url>#<model>.")


def _seeds(value: str, samples: int) -> list[int]:
    if samples:
        return list(range(samples))
    try:
        seeds = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds must be comma-separated integers, got {value!r}") from None
    if not seeds:
        raise typer.BadParameter("--seeds is empty")
    return list(dict.fromkeys(seeds))


def _episodes(value: str) -> int:
    if value.strip().lower() == "all":
        return 0
    try:
        n = int(value)
    except ValueError:
        raise typer.BadParameter(f"--episodes must be a number or 'all', got {value!r}") from None
    if n < 0:
        raise typer.BadParameter("--episodes must be >= 0")
    return n


def eval_(
    model: list[str] = typer.Option(..., "--model", "-m", help=_MODEL_HELP, show_default=False),
    env: Optional[str] = typer.Option(None, "--env", "-e", help="Play episodes in this environment (as in "
                                      f"`sad collect`: {', '.join(_ENVS)}, or module:factory).",
                                      show_default=False),
    split: Optional[str] = typer.Option(None, "--split", "-s", help="Environment split (default: the "
                                        "environment's; alfworld valid_unseen).", show_default=False),
    episodes: str = typer.Option("10", "--episodes", "-n", help="First N episodes of the split, or 'all'."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip the first K episodes of the split."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: play only this machine's share (0 <= I < N) "
                                        "of the episodes, by a hash of each episode id (as in `sad collect`).",
                                        show_default=False),
    seeds: str = typer.Option("0", "--seeds", help="Run seeds, comma-separated (sampling seeds; with greedy "
                              "decoding and deterministic environments they repeat the same episodes)."),
    samples: int = typer.Option(0, "--samples", min=0, help="pass@k: N sampled runs per episode (seeds 0..N-1; "
                                "needs --temperature > 0)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Episodes JSONL (schema v1 + eval fields), "
                                         "one flushed line per finished episode.", show_default=False),
    resume: bool = typer.Option(False, "--resume", help="Keep the episodes already in -o FILE, play the rest."),
    parallel: int = typer.Option(8, "--parallel", "-p", min=1, help="Episodes at once (one batch for a model)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Step cap (default: the field's "
                                            "convention: alfworld 50, wikiqa 7, webshop 15, twx twc 50, scienceworld 100).",
                                            show_default=False),
    data: Optional[str] = typer.Option(None, "--data", help="Held-out segmented trajectories (sad segment) for "
                                       "teacher-forced fidelity.", show_default=False),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher for fidelity (model spec; default: "
                                          "the teacher in the first student's sad_config.json).",
                                          show_default=False),
    teacher_cache: Optional[str] = typer.Option(None, "--teacher-cache", help="Fidelity: the teacher's top-k "
                                                "log-probs from `sad distill HELDOUT --cache-teacher DIR` built "
                                                "from the --data file, instead of a live teacher (KL estimated as "
                                                "distill's cache loss does; --reference teacher is refused: a "
                                                "cache holds no teacher generations).", show_default=False),
    reference: str = typer.Option("data", "--reference", help="Fidelity references: data (the held-out "
                                  "trajectories' reasoning and actions) or teacher (the teacher's greedy outputs)."),
    cot_threshold: float = typer.Option(0.5, "--cot-threshold", min=0.0, max=1.0,
                                        help="CoT match: ROUGE-L F1 at least this (our definition)."),
    render: Optional[Render] = typer.Option(None, "--render", help="Fidelity tokenization (default: the "
                                            "student's sad_config.json, else text).", show_default=False),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=8, help="Fidelity: cut trajectories "
                                             "to this many tokens (default: none).", show_default=False),
    no_generate: bool = typer.Option(False, "--no-generate", help="Fidelity: token metrics only (no action/"
                                     "CoT match)."),
    report: Optional[str] = typer.Option(None, "--report", help="Write the JSON report here (config, versions, "
                                         "git hash, every number).", show_default=False),
    markdown: Optional[str] = typer.Option(None, "--markdown", help="Write the tables as Markdown here.",
                                           show_default=False),
    plot: Optional[str] = typer.Option(None, "--plot", help="Bar chart with 95% CI (PNG/SVG/PDF).",
                                       show_default=False),
    max_new_tokens: int = typer.Option(96, "--max-new-tokens", min=1, help="Tokens a model may write per step."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0: greedy."),
    batch_size: int = typer.Option(0, "--batch-size", min=0, help="Rows per forward pass (0: all active)."),
    examples: bool = typer.Option(True, "--examples/--no-examples", help="ReAct-prompted models: include the "
                                  "environment's few-shot examples."),
    env_opt: Optional[list[str]] = typer.Option(None, "--env-opt", help="KEY=VALUE for the environment.",
                                                show_default=False),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="alfworld: data folder.", show_default=False),
    game: Optional[str] = typer.Option(None, "--game", help="twx game / scienceworld task(s).", show_default=False),
    task_type: Optional[str] = typer.Option(None, "--task-type", help="alfworld task types.", show_default=False),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="wikiqa corpus.", show_default=False),
    questions: Optional[str] = typer.Option(None, "--questions", help="wikiqa questions.", show_default=False),
    step_timeout: float = typer.Option(300.0, "--step-timeout", min=1.0, help="Seconds per environment step."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: best available).",
                                         show_default=False),
    from_report: Optional[str] = typer.Option(None, "--from-report", help="Only re-render a JSON report "
                                              "(tables, --markdown, --plot); no model is run.",
                                              show_default=False),
    quiet: bool = QuietOpt,
) -> None:
    """Evaluate models side by side: success in an environment (--env) with 95% intervals and paired
    tests, and fidelity to the teacher on held-out trajectories (--data).

    Episodes (schema-v1 trajectories with success, reward, termination, latency_s, generated_tokens,
    model, seed) go to -o FILE, resumable with --resume; the summary goes to stderr, --report,
    --markdown and --plot.
    """
    setup(quiet)
    with cli_errors():
        from sadcli.eval import report as rp

        if from_report:
            import json

            try:
                with open(from_report, encoding="utf-8") as fh:
                    doc = json.load(fh)
            except (OSError, ValueError) as e:
                from sadcli.errors import InputError

                raise InputError(f"cannot read the report: {e}", file=from_report) from None
            _emit(doc, report=None, markdown=markdown, plot=plot)
            return
        if not env and not data:
            raise typer.BadParameter("give --env (rollouts) and/or --data (teacher-forced fidelity)")
        if samples and temperature <= 0:
            raise typer.BadParameter("--samples needs --temperature > 0 (greedy runs are all the same)")
        if resume and not output:
            raise typer.BadParameter("--resume needs -o FILE")
        from sadcli.eval.policies import EvalGen, parse_model
        from sadcli.shards import parse_shard

        part = parse_shard(shard)
        refs = [parse_model(m) for m in model]
        labels = [r.label for r in refs]
        if any(r.is_model for r in refs):
            _quiet_hf()
        if len(set(labels)) != len(labels):
            raise typer.BadParameter(f"two models share a label ({', '.join(labels)}); name them label=SPEC")
        gen = EvalGen(max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size,
                      device=device, examples=examples)
        config = {"command": _command_line(),
                  "models": [{"label": r.label, "spec": r.spec, "kind": r.kind,
                              "format": r.fmt.name if r.fmt else ("react" if r.is_model else r.kind)} for r in refs],
                  "generation": gen.__dict__, "seeds": _seeds(seeds, samples)}
        if part is not None:
            config["shard"] = str(part)
        ro = _rollouts(refs, gen, env, split, _episodes(episodes), offset, config["seeds"], output, resume,
                       parallel, max_steps, env_opt, data_dir, game, task_type, corpus, questions, step_timeout,
                       quiet, part) if env else None
        if teacher_cache and not data:
            raise typer.BadParameter("--teacher-cache needs --data (the held-out file the cache was built from)")
        if teacher_cache and teacher:
            raise typer.BadParameter("give --teacher (a live teacher) or --teacher-cache DIR, not both")
        fi = _fidelity(refs, data, teacher, reference, cot_threshold, render, max_length, not no_generate,
                       max_new_tokens, device, teacher_cache) if data else None
        doc = rp.build_report(config, ro, fi)
        _emit(doc, report=report, markdown=markdown, plot=plot)


def _quiet_hf() -> None:
    """No transformers progress bars: our own output goes to stderr through the shared console."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def _command_line() -> str | None:
    args = sys.argv[1:]
    if not args or args[0] != "eval":
        return None
    return "sad " + " ".join(shlex.quote(a) for a in args)


def _emit(doc: dict, *, report, markdown, plot) -> None:
    from sadcli.eval import report as rp
    from sadcli.fsutil import atomic_write_text

    for t in rp.tables(doc):
        console.print(t)
    if report:
        import json

        atomic_write_text(report, json.dumps(doc, indent=2, default=str, allow_nan=True) + "\n", what="report")
        console.print(f"report: {report}")
    if markdown:
        atomic_write_text(markdown, rp.markdown(doc), what="Markdown report")
        console.print(f"markdown: {markdown}")
    if plot:
        rp.plot(doc, plot)
        console.print(f"plot: {plot}")


def _rollouts(refs, gen, env, split, n_episodes, offset, seeds, output, resume, parallel, max_steps, env_opt,
              data_dir, game, task_type, corpus, questions, step_timeout, quiet, part=None) -> dict:
    from sadcli.agent.collect import open_pool, select_tasks
    from sadcli.commands.collect import _env_options
    from sadcli.eval.policies import make_policy
    from sadcli.eval.rollouts import RolloutPlan, canonical, key, read_episodes, run_rollouts, step_cap
    from sadcli.eval.summary import summarize
    from sadcli.jsonl import Output, dumps_line

    env_options = _env_options(env, data_dir, game, task_type, corpus, questions, env_opt)
    out_path = None if output in (None, "-") else output
    done: dict = {}
    if resume and out_path and os.path.exists(out_path):
        for rec in read_episodes(out_path):
            done[key(rec)] = rec
    elif out_path:
        from sadcli.fsutil import atomic_write_bytes

        atomic_write_bytes(out_path, b"", what="episodes file")
    with open_pool(env, env_options, parallel=1, timeout=step_timeout) as pool:
        split_name = split or pool.info.default_split or "train"
        tasks = select_tasks(pool.tasks(split_name), n_episodes, offset)
        if not tasks:
            raise typer.BadParameter(f"the {split_name} split of {env} has no episodes (after --offset {offset})")
        if part is not None:
            from sadcli.shards import shard_tasks

            n_all, tasks = len(tasks), shard_tasks(tasks, part)
            console.print(f"shard {part}: {len(tasks)} of the {n_all} selected episodes")
        cap = max_steps or step_cap(pool.info.name, env_options, pool.info.max_steps)
        plan = RolloutPlan(tasks, seeds, cap, done)
        labels = [r.label for r in refs]
        todo = sum(len(plan.todo(m, s)) for m in labels for s in seeds)
        console.print(f"eval: {len(refs)} model(s) x {len(tasks)} {env}/{split_name} episodes x {len(seeds)} seed(s), "
                      f"step cap {cap}" + (f"; {len(done)} already in {out_path} (--resume)" if done else ""))
        pool.resize(min(parallel, max(1, len(tasks))))
        bar = _progress(quiet)
        with bar as b, Output(out_path, append=True) as out:
            tid = b.add_task("eval", total=todo) if b is not None else None

            def write(rec: dict) -> None:
                out.write(rec)
                out.flush()

            def on_episode(rec: dict) -> None:
                if b is not None:
                    b.update(tid, advance=1, description=f"eval {rec['model']}")

            records = run_rollouts(pool, plan, [(r.label, _maker(r, gen, make_policy)) for r in refs],
                                   write=write, on_episode=on_episode)
    ordered = canonical(records, labels, plan)
    if out_path:  # the canonical order: a resumed run ends with the same file as an uninterrupted one
        from sadcli.fsutil import atomic_write_bytes

        atomic_write_bytes(out_path, b"".join(dumps_line(r) for r in ordered), what="episodes file")
    counter = _token_counter(refs)
    summary = summarize(ordered, labels, counter)
    return {"env": pool.info.name, "split": split_name, "episodes": len(tasks), "offset": offset, "seeds": seeds,
            **({"shard": str(part)} if part is not None else {}),
            "step_cap": cap, "env_options": env_options, "episodes_file": out_path, "summary": summary}


def _maker(ref, gen, make_policy):
    return lambda seed: make_policy(ref, gen, seed)


def _token_counter(refs):
    """Reasoning length in the student's tokens (the first model's tokenizer, else smollm2-135m's)."""
    try:
        from sadcli.models.spec import load_tokenizer

        spec = next((r.path for r in refs if r.is_model and r.path), "smollm2-135m")
        tok = load_tokenizer(spec)
        return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
    except Exception:  # noqa: BLE001 - no tokenizer available: words
        return None


def _fidelity(refs, data, teacher, reference, cot_threshold, render, max_length, generate, max_new_tokens,
              device, teacher_cache=None) -> dict:
    from sadcli.errors import InputError
    from sadcli.eval.fidelity import FidelityModel, evaluate_fidelity, paired_action_tests
    from sadcli.eval.policies import ModelRef, load_lm
    from sadcli.records import read_records
    from sadcli.schema import validate_segmented

    models = [r for r in refs if r.is_model]
    skipped = [r.label for r in refs if not r.is_model]
    if skipped:
        console.print(f"[yellow]fidelity: {', '.join(skipped)} skipped (needs a local model's logits)[/]")
    if not models:
        raise InputError("--data needs at least one local model (--model DIR or a model spec)")
    records = []
    for line, rec in read_records(data):
        try:
            validate_segmented(rec)
        except InputError as e:
            raise e.located(line.file, line.line) from None
        records.append(rec)
    if not records:
        raise InputError(f"{data}: no records", hint="give segmented JSONL (sad segment FILE -o heldout.seg.jsonl)")
    if teacher_cache:
        return _fidelity_from_cache(models, records, data, teacher_cache, reference, cot_threshold, render,
                                    max_length, generate, max_new_tokens, device)
    if teacher is None:
        teacher = next(((r.config or {}).get("teacher", {}).get("spec") for r in models
                        if (r.config or {}).get("teacher", {}).get("spec")), None)
        if teacher is None:
            raise InputError("no teacher for fidelity", hint="give --teacher SPEC")
    fmts = {r.fmt.render for r in models if r.fmt is not None}
    rend = render.value if render is not None else (fmts.pop() if len(fmts) == 1 else "text")
    if len(fmts) > 1 and render is None:
        raise InputError("the students were distilled with different renders", hint="give --render text|chat")
    t_model, t_tok = load_lm(ModelRef("teacher", teacher, "hf", teacher), device=device)
    loaded = []
    for r in models:  # the teacher itself, when it is one of the models, is loaded once
        m, tok = (t_model, t_tok) if r.kind in ("teacher", "hf") and r.path == teacher else load_lm(r, device=device)
        loaded.append(FidelityModel(r.label, m, tok))
    console.print(f"fidelity: {len(records)} held-out trajectories from {data}, teacher {teacher}, render {rend}, "
                  f"reference {reference}")
    res = evaluate_fidelity(records, loaded, FidelityModel("teacher", t_model, t_tok), render=rend,
                            max_length=max_length, reference=reference, threshold=cot_threshold,
                            max_new_tokens=max_new_tokens, generate=generate, device=device,
                            on_progress=lambda msg: console.print(f"fidelity: {msg}"))
    any_model = next(iter(res.values()))
    return {"data": data, "teacher": teacher, "reference": reference, "render": rend, "cot_threshold": cot_threshold,
            "examples": any_model.get("examples"), "steps": any_model.get("steps"), "models": res,
            "action_pairs": paired_action_tests(res)}


def _fidelity_from_cache(models, records, data, cache_dir, reference, cot_threshold, render, max_length, generate,
                         max_new_tokens, device) -> dict:
    from sadcli.errors import InputError
    from sadcli.eval.fidelity import CACHE_NO_GENERATIONS, FidelityModel, evaluate_fidelity, paired_action_tests
    from sadcli.eval.policies import load_lm

    if reference == "teacher":  # before any model is loaded
        raise InputError(CACHE_NO_GENERATIONS, hint="use --reference data, or a live teacher (--teacher SPEC)")
    from sadcli.eval.fidelity import open_teacher_cache
    from sadcli.models.spec import load_tokenizer

    src = open_teacher_cache(cache_dir, records, load_tokenizer(models[0].path), source=data,  # before the models
                             render=render.value if render is not None else None, max_length=max_length)
    loaded = []
    for r in models:
        m, tok = load_lm(r, device=device)
        loaded.append(FidelityModel(r.label, m, tok))
    console.print(f"fidelity: {len(records)} held-out trajectories from {data}, teacher cache {cache_dir}, "
                  f"reference {reference}")
    res = evaluate_fidelity(records, loaded, None, render=render.value if render is not None else None,
                            max_length=max_length, reference=reference, threshold=cot_threshold,
                            max_new_tokens=max_new_tokens, generate=generate, device=device,
                            teacher_cache=src, source=data,
                            on_progress=lambda msg: console.print(f"fidelity: {msg}"))
    manifest = src.cache.manifest
    spec = (manifest.get("teacher") or {}).get("spec", "?")
    any_model = next(iter(res.values()))
    return {"data": data, "teacher": f"{spec} (cache {cache_dir})", "teacher_cache": cache_dir,
            "kl_estimate": any_model.get("kl_estimate"), "reference": reference,
            "render": manifest.get("data", {}).get("render"), "cot_threshold": cot_threshold,
            "examples": len(records), "cached_examples": any_model.get("examples"), "steps": any_model.get("steps"),
            "models": res, "action_pairs": paired_action_tests(res)}


def _progress(quiet: bool):
    if quiet or not console.is_terminal:
        return contextlib.nullcontext()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)
