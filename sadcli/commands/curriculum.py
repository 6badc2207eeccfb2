"""``sad curriculum``: order segmented trajectories easy -> hard by the paper's complexity score.

Thin command: parses options and calls :mod:`sadcli.curriculum`. No torch at import time.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from sadcli.commands._common import OutputOpt, QuietOpt, Render, check_outputs, cli_errors, setup
from sadcli.console import console


class Scale(str, Enum):
    cdf = "cdf"
    zscore = "zscore"
    raw = "raw"


def curriculum(
    input: str = typer.Argument(..., help="Segmented JSONL (from `sad segment`), - for stdin, or a datasets "
                                          "dataset (.parquet/.arrow file or folder, save_to_disk folder)."),
    output: Optional[str] = OutputOpt,
    teacher: str = typer.Option("smollm2-135m", "--teacher",
                                help="Teacher spec for the entropy term (a forward pass over the data): local "
                                     "Hugging Face dir, hub id, or the embedded 'smollm2-135m'."),
    teacher_cache: Optional[str] = typer.Option(None, "--teacher-cache",
                                                help="Read the entropy from this `sad distill --cache-teacher` "
                                                     "directory (built from the same records) instead: no model.",
                                                show_default=False),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", show_default=False,
                                            help="Distillation tokenizer for the lengths (default: the teacher's)."),
    alpha: float = typer.Option(1.0, "--alpha", help="α: weight of the reasoning length len_r."),
    beta: float = typer.Option(1.0, "--beta", help="β: weight of the action length len_a."),
    gamma: float = typer.Option(1.0, "--gamma", help="γ: weight of the teacher entropy H (0: no teacher needed)."),
    scale: Scale = typer.Option(Scale.cdf, "--scale",
                                help="Map each component before weighting: cdf (empirical CDF in (0, 1], so α, "
                                     "β, γ are comparable), zscore, or raw (tokens and nats)."),
    stages: int = typer.Option(4, "--stages", min=1, help="K: equal-count buckets written as curriculum_stage."),
    render: Render = typer.Option(Render.text, "--render", help="How the tokenizer sees a trajectory: text or "
                                  "chat (use what sad distill will use)."),
    max_length: int = typer.Option(1024, "--max-length", min=8,
                                   help="Teacher forward: longer trajectories are scored in step windows "
                                        "(each token once, with earlier steps in view)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Sequences per teacher forward."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1... (default: best available).",
                                         show_default=False),
    show: bool = typer.Option(False, "--show", help="Print the score distribution per stage and the easiest and "
                              "hardest trajectories on stderr."),
    limit: int = typer.Option(5, "--limit", "-n", min=1, help="With --show: trajectories listed at each end."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Save histograms of len_r, len_a, H and the score "
                                       "per stage (PNG).", show_default=False),
    quiet: bool = QuietOpt,
) -> None:
    """Order trajectories easy -> hard by complexity C = α·len_r + β·len_a + γ·H (paper Eq. 13).

    Adds curriculum {len_reason, len_act, entropy, score}, curriculum_rank (empirical CDF of the score)
    and curriculum_stage to every record and writes them sorted; `sad distill` paces training by them.

    sad segment traj.jsonl | sad curriculum - --teacher smollm2-135m --show -o ordered.jsonl
    """
    setup(quiet)
    with cli_errors():
        check_outputs(output=output, plot=plot)
        from sadcli.curriculum import CurriculumOptions, score_records
        from sadcli.curriculum.report import plot as save_plot
        from sadcli.curriculum.report import render_to
        from sadcli.errors import InputError, SadError
        from sadcli.jsonl import Output
        from sadcli.masks.build import check_tokenizer
        from sadcli.models import load_tokenizer
        from sadcli.records import read_records

        opts = CurriculumOptions(alpha=alpha, beta=beta, gamma=gamma, scale=scale.value, stages=stages,
                                 render=render.value, max_length=max_length, batch_size=batch_size).validate()
        records, where = [], []
        for line, rec in read_records(input):
            if "spans" not in rec or "text" not in rec:
                raise InputError("record has no \"spans\" (not segmented)", file=line.file, line=line.line,
                                 hint="run `sad segment` first and pipe its output here")
            records.append(rec)
            where.append((line.file, line.line))

        def located(index: int, rec: dict, err: SadError) -> None:
            raise err.located(*where[index])

        tok_spec = tokenizer or (_cache_teacher_spec(teacher_cache) if teacher_cache else teacher)
        tok = load_tokenizer(tok_spec)
        check_tokenizer(tok)
        model = None
        if gamma and not teacher_cache and records:
            from transformers.utils import logging as hf_logging

            from sadcli.models.spec import load_model

            hf_logging.disable_progress_bar()  # our own progress goes to stderr through the shared console
            model = load_model(teacher, dtype="float32", device=device or None)
        progress = None
        if model is not None and not quiet:
            from sadcli.distill.trainer import _progress

            progress = _progress(True)
        if progress is not None:
            with progress:
                task = progress.add_task("teacher entropy", total=None, info="")
                scored = score_records(records, tok, opts, teacher=model, teacher_cache=teacher_cache,
                                       device=device, located=located,
                                       on_batch=lambda done, total: progress.update(
                                           task, completed=done, total=total, info="examples"))
        else:
            scored = score_records(records, tok, opts, teacher=model, teacher_cache=teacher_cache, device=device,
                                   located=located)
        with Output(output) as out:
            for rec in scored.records:
                out.write(rec)
            if plot:
                save_plot(scored, plot)
                console.print(f"saved curriculum histograms to {plot}")
        if show:
            render_to(console, scored, limit=limit)
        console.print(f"curriculum: {len(scored.records)} trajectories ordered easy -> hard in {opts.stages} stages "
                      f"(entropy: {scored.entropy_source or 'not used, --gamma 0'})", highlight=False)


def _cache_teacher_spec(path: str) -> str:
    """The teacher a cache was built with (its spec names the tokenizer), else the embedded model."""
    from sadcli.distill.teacher_cache import TeacherCache

    spec = (TeacherCache.open(path).manifest.get("teacher") or {}).get("spec")
    return spec or "smollm2-135m"
