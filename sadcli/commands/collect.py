"""``sad collect``: run a teacher policy in an environment, write schema-v1 trajectories (JSONL)."""

from __future__ import annotations

import contextlib
import os
from typing import Optional

import typer

from sadcli.commands._common import QuietOpt, cli_errors, setup
from sadcli.console import console

_ENV_HELP = ("alfworld (ALFWorld text games; data from --data-dir or ALFWORLD_DATA), twx (TextWorldExpress), "
             "scienceworld, wikiqa (HotPotQA-style search over --corpus; --corpus hotpotqa --data-dir DIR for "
             "HotPotQA's distractor files), webshop (WebShop's 1,000 products, --data-dir DIR), or "
             "module:factory / file.py:factory for your own environment.")


def _env_options(env: str, data_dir, game, task_type, corpus, questions, env_opt) -> dict:
    from sadcli.envs.registry import parse_env_opts

    opts = parse_env_opts(env_opt)
    given = {"--data-dir": data_dir, "--game": game, "--task-type": task_type,
             "--corpus": corpus, "--questions": questions}
    accepted = {"alfworld": {"--data-dir": "data_dir", "--task-type": "task_types"},
                "twx": {"--game": "game"},
                "scienceworld": {"--game": "task"},
                "wikiqa": {"--corpus": "corpus", "--questions": "questions", "--data-dir": "data_dir"},
                "webshop": {"--data-dir": "data_dir"}}.get(env, {})
    for flag, value in given.items():
        if value is None:
            continue
        if flag not in accepted:
            raise typer.BadParameter(f"{flag} does not apply to --env {env}; use --env-opt KEY=VALUE")
        opts.setdefault(accepted[flag], value)
    return opts


def collect(
    env: str = typer.Option(..., "--env", "-e", help=_ENV_HELP, show_default=False),
    split: Optional[str] = typer.Option(None, "--split", "-s",
                                        help="alfworld: train | valid_seen | valid_unseen (default); "
                                             "twx, scienceworld: train (default) | dev | test; wikiqa: dev; "
                                             "wikiqa --corpus hotpotqa: train (default) | dev; webshop: train "
                                             "(default) | test.",
                                        show_default=False),
    teacher: str = typer.Option("expert", "--teacher", "-t",
                                help="expert | hf:<model spec> | openai:<base-url>#<model> | "
                                     "expert+rationalize:<model spec>."),
    episodes: int = typer.Option(10, "--episodes", "-n", min=0,
                                 help="Play the first N episodes of the split (0: all)."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip the first K episodes of the split."),
    shard: Optional[str] = typer.Option(None, "--shard",
                                        help="I/N: play only this machine's share (0 <= I < N) of the selected "
                                             "episodes, by a hash of each episode id; N machines with I = "
                                             "0..N-1 write files whose cat is a single run's episodes.",
                                        show_default=False),
    output: Optional[str] = typer.Option(None, "--output", "-o",
                                         help="Write JSONL here, one flushed line per finished episode "
                                              "(default: stdout). Replaced unless --resume.",
                                         show_default=False),
    resume: bool = typer.Option(False, "--resume",
                                help="Keep the episodes already in -o FILE and play only the missing ones."),
    force: bool = typer.Option(False, "--force",
                               help="Replace a non-empty -o FILE (without it, an existing file is refused "
                                    "unless --resume)."),
    only_success: bool = typer.Option(False, "--only-success",
                                      help="Write only successful episodes (the usual teacher data)."),
    parallel: int = typer.Option(1, "--parallel", "-p", min=1,
                                 help="Episodes at once: environments step in worker processes, "
                                      "a model teacher generates for all of them in one batch."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1,
                                            help="Step budget per episode (default: the environment's; "
                                                 "alfworld 50, twx/scienceworld 100, wikiqa 7, webshop 15); "
                                                 "longer episodes are cut and counted as truncated.",
                                            show_default=False),
    max_repeats: Optional[int] = typer.Option(None, "--max-repeats", min=1,
                                              help="Drop an episode in which one action is taken more than "
                                                   "N times (expert loops); counted in the summary.",
                                              show_default=False),
    data_dir: Optional[str] = typer.Option(None, "--data-dir",
                                           help="alfworld: the data folder (json_2.1.1/ inside; default "
                                                "$ALFWORLD_DATA); webshop: products_1k_processed.jsonl and "
                                                "items_ins_v2_1000.json (default $WEBSHOP_DATA); wikiqa "
                                                "--corpus hotpotqa: the distractor files (default "
                                                "$HOTPOTQA_DATA).", show_default=False),
    game: Optional[str] = typer.Option(None, "--game",
                                       help="twx: twc (default), cookingworld, coin, ...; "
                                            "scienceworld: task name(s) or numbers.", show_default=False),
    task_type: Optional[str] = typer.Option(None, "--task-type",
                                            help="alfworld: only these task types (put, clean, heat, cool, "
                                                 "examine, puttwo; comma-separated).", show_default=False),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="wikiqa: {title, text} JSONL corpus, or "
                                         "'hotpotqa' (HotPotQA's distractor paragraphs, with --data-dir).",
                                         show_default=False),
    questions: Optional[str] = typer.Option(None, "--questions", help="wikiqa: {question, answer} file.",
                                            show_default=False),
    env_opt: Optional[list[str]] = typer.Option(None, "--env-opt",
                                                help="KEY=VALUE passed to the environment (repeatable).",
                                                show_default=False),
    teacher_opt: Optional[list[str]] = typer.Option(None, "--teacher-opt",
                                                    help="KEY=VALUE teacher setting (repeatable), e.g. "
                                                         "temperature=0.7, max_new_tokens=128, logprobs=5, "
                                                         "api_key_env=MY_KEY.", show_default=False),
    step_timeout: float = typer.Option(300.0, "--step-timeout", min=1.0,
                                       help="Seconds an environment may take for one reset/step before its "
                                            "worker is restarted and the episode recorded as failed."),
    quiet: bool = QuietOpt,
) -> None:
    """Run a teacher in an environment and write its ReAct trajectories as schema-v1 JSONL.

    One line per finished episode, flushed as it finishes (stdout, or -o FILE). Ids are stable
    (env/split/game/seed), so --resume continues a killed run without duplicates. Pipe the output into
    `sad segment -` to get spans.
    """
    setup(quiet)
    with cli_errors():
        from sadcli.agent.collect import CollectStats, open_pool, read_done_ids, repair_tail, select_tasks
        from sadcli.agent.collect import collect as run_collect
        from sadcli.envs.registry import parse_env_opts
        from sadcli.jsonl import Output
        from sadcli.shards import parse_shard, shard_tasks
        from sadcli.teachers import make_teacher

        part = parse_shard(shard)
        out_path = None if output in (None, "-") else output
        if resume and out_path is None:
            raise typer.BadParameter("--resume needs -o FILE (the file to continue)")
        if resume and force:
            raise typer.BadParameter("--resume keeps the episodes in -o FILE, --force replaces them: pick one")
        _check_output(out_path, resume=resume, force=force)
        env_options = _env_options(env, data_dir, game, task_type, corpus, questions, env_opt)
        policy = make_teacher(teacher, **parse_env_opts(teacher_opt))

        done_ids: set[str] = set()
        if resume and out_path and os.path.isfile(out_path):
            cut = repair_tail(out_path)
            if cut:
                console.print(f"[yellow]removed a half-written last line ({cut} bytes) from {out_path}[/]")
            done_ids = read_done_ids(out_path)

        stats = CollectStats()
        with open_pool(env, env_options, parallel=1, timeout=step_timeout) as pool:
            split_name = split or pool.info.default_split or "train"
            tasks = select_tasks(pool.tasks(split_name), episodes, offset)
            if not tasks:
                raise typer.BadParameter(f"the {split_name} split of {env} has no episodes "
                                         f"(after --offset {offset})")
            if part is not None:
                n_all, tasks = len(tasks), shard_tasks(tasks, part)
                console.print(f"shard {part}: {len(tasks)} of the {n_all} selected episodes")
            if out_path and not resume:
                _start_output(out_path)  # options and environment are valid: now the file may change
            # no more workers than episodes left to play
            pool.resize(min(parallel, sum(t.id not in done_ids for t in tasks)))
            progress = _progress(quiet)
            with progress as bar, Output(out_path, append=True) as out:
                tid = bar.add_task("collect", total=len(tasks), success="", speed="") if bar else None

                def update(s: CollectStats) -> None:
                    if bar is not None:
                        bar.update(tid, completed=s.skipped + s.done,
                                   success=f"success {s.success}/{s.done}" if s.done else "",
                                   speed=f"{s.steps_per_s:.1f} steps/s")

                resumed = set(done_ids)
                for rec in run_collect(pool, tasks, policy, done_ids=resumed, only_success=only_success,
                                       max_steps=max_steps, max_repeats=max_repeats, on_step=update,
                                       stats=stats):
                    out.write(rec)
                    out.flush()
            restarts = pool.restarts
        _summary(stats, env, split_name, out_path, only_success, restarts)
    close = getattr(policy, "close", None)
    if callable(close):
        close()


def _check_output(out_path: Optional[str], *, resume: bool, force: bool) -> None:
    """Refuse a bad -o before anything runs: a directory, an unwritable place, or (without --resume or
    --force) a non-empty file that would be lost."""
    from sadcli.errors import SadError
    from sadcli.fsutil import check_output

    if out_path is None:
        return
    check_output(out_path, what="-o")
    if not resume and not force and os.path.isfile(out_path) and os.path.getsize(out_path) > 0:
        raise SadError("output file exists and is not empty", file=out_path,
                       hint="add --resume to continue it, --force to replace it, or give another -o")


def _start_output(out_path: str) -> None:
    """Empty a regular -o file (a new run; --force) — a FIFO or device is left as it is."""
    from sadcli.fsutil import is_stream_path, os_error

    if is_stream_path(out_path):
        return
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        open(out_path, "w", encoding="utf-8").close()
    except OSError as e:
        raise os_error(e, out_path, "cannot write -o") from None


def _progress(quiet: bool):
    if quiet or not console.is_terminal:
        return contextlib.nullcontext()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[success]}"), TextColumn("{task.fields[speed]}"),
                    TimeElapsedColumn(), console=console, transient=False)


def _summary(s, env: str, split: str, out_path, only_success: bool, restarts: int) -> None:
    rate = f"{100 * s.success_rate:.0f}%" if s.done else "n/a"
    msg = (f"{env}/{split}: {s.done} episodes played, {s.success} successful ({rate}), "
           f"{s.steps} steps at {s.steps_per_s:.1f} steps/s; {s.written} written")
    if out_path:
        msg += f" to {out_path}"
    if s.skipped:
        msg += f"; {s.skipped} already there (--resume)"
    if s.truncated:
        msg += f"; {s.truncated} reached the step budget (--max-steps)"
    if only_success:
        msg += f"; {s.filtered} unsuccessful filtered out (--only-success)"
    if s.repeated:
        msg += f"; {s.repeated} dropped for an action repeated more than --max-repeats times"
    if s.failed:
        msg += f"; {s.failed} failed with an error (see meta.error)"
    if restarts:
        msg += f"; {restarts} environment worker restart(s)"
    console.print(msg, soft_wrap=True)
