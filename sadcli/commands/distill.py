"""``sad distill``: train a student on segmented teacher trajectories with the span-aware loss.

Thin command: parses options and calls :mod:`sadcli.distill.pipeline`. No torch at import time.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from sadcli.commands._common import Keep, QuietOpt, Render, Window, WindowOpt, cli_errors, setup
from sadcli.distill.config import TrainConfig


class LossName(str, Enum):
    sad = "sad"
    token_kd = "token-kd"
    kd = "kd"
    seqkd = "seqkd"
    sft = "sft"
    flat = "flat"
    only_reason = "only-reason"
    only_act = "only-act"
    random_spans = "random-spans"


class CurriculumMode(str, Enum):
    none = "none"
    sorted = "sorted"
    stages = "stages"
    competence = "competence"


class Divergence(str, Enum):
    auto = "auto"
    forward = "forward"
    reverse = "reverse"
    jsd = "jsd"


class Normalization(str, Enum):
    per_span = "per-span"
    sum = "sum"


class LayerPick(str, Enum):
    even = "even"
    influence = "influence"


class ActionVocab(str, Enum):
    full = "full"
    restricted = "restricted"


class SpanVocab(str, Enum):
    full = "full"
    bucketed = "bucketed"


def _h(name: str) -> str:
    return TrainConfig.help(name)


def distill(
    input: str = typer.Argument(..., help="Segmented JSONL (sad segment) or a Parquet/Arrow/save_to_disk dataset, "
                                          "or sad mask-check --emit output; - for stdin."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Output directory for the student "
                                         "(Hugging Face format) and its checkpoints.", show_default=False),
    teacher: str = typer.Option("smollm2-135m", "--teacher",
                                help="Teacher spec: local Hugging Face dir, hub id, or the embedded 'smollm2-135m'."),
    student: Optional[str] = typer.Option(None, "--student", help="Student spec (same forms as --teacher).",
                                          show_default=False),
    student_layers: Optional[str] = typer.Option(None, "--student-layers",
                                                 help="Student = these teacher layers: a count (6: evenly spaced, "
                                                      "first and last included) or a list (0,6,12,18,24,29). "
                                                      "Default when no student option is given: 6.",
                                                 show_default=False),
    layer_pick: LayerPick = typer.Option(LayerPick.even, "--layer-pick",
                                         help="With --student-layers N: which N teacher layers. even: evenly "
                                              "spaced; influence: the N of highest block influence on the "
                                              "training data (ShortGPT; one teacher pass over ~4k tokens of training examples)."),
    student_config: Optional[str] = typer.Option(None, "--student-config",
                                                 help="Student = a freshly initialized model from this Hugging "
                                                      "Face config.json.", show_default=False),
    loss: LossName = typer.Option(LossName.sad, "--loss", help="Objective: the SAD loss, a baseline/ablation (docs/losses.md), or sft (fine-tune a teacher, no teacher model)."),
    lambda_reason: float = typer.Option(1.0, "--lambda-reason", help="λ_r, weight of L_CoT."),
    lambda_act: float = typer.Option(1.0, "--lambda-act", help="λ_a, weight of L_Act."),
    divergence: Divergence = typer.Option(Divergence.auto, "--divergence",
                                          help="forward KL(T||S) (the paper), reverse KL, or generalized JSD; "
                                               "auto: reverse for token-kd (MiniLLM), forward otherwise."),
    beta: float = typer.Option(0.5, "--beta", help="β of the generalized JSD."),
    temperature: float = typer.Option(1.0, "--temperature", help="Softmax temperature τ (losses scaled by τ²)."),
    normalization: Normalization = typer.Option(Normalization.per_span, "--normalization",
                                                help="per-span: each term is a mean over its own global token "
                                                     "count; sum: the equations literally."),
    action_vocab: ActionVocab = typer.Option(ActionVocab.full, "--action-vocab",
                                             help="full vocabulary, or restricted to the token ids seen in "
                                                  "action spans (+ end-of-turn) for L_Act."),
    span_vocab: SpanVocab = typer.Option(SpanVocab.full, "--span-vocab",
                                         help="full vocabulary, or bucketed (paper Eq. 8): reasoning/action "
                                              "positions compared over their span kind's token domain plus one "
                                              "'other' bucket (span-aware losses; online teacher only)."),
    supervise: Optional[str] = typer.Option(None, "--supervise",
                                            help="Token kinds to train on, comma-separated: reason, act, obs "
                                                 "(every token after the task prompt the agent did not write), "
                                                 "prompt. Default: the loss's own set (docs/losses.md).",
                                            show_default=False),
    alpha: float = typer.Option(0.5, "--alpha", help="kd: weight of the cross-entropy term."),
    chunk_size: int = typer.Option(0, "--chunk-size", min=0,
                                   help="Supervised positions per logits chunk (memory vs speed); 0 = auto."),
    cache_teacher: Optional[str] = typer.Option(None, "--cache-teacher",
                                                help="Run the teacher once and write top-k log-probs of the "
                                                     "supervised positions to this new directory, then exit.",
                                                show_default=False),
    teacher_cache: Optional[str] = typer.Option(None, "--teacher-cache",
                                                help="Train from this teacher cache (no teacher in memory).",
                                                show_default=False),
    top_k: int = typer.Option(64, "--top-k", min=1, help="With --cache-teacher: token ids stored per position."),
    tail_samples: Optional[int] = typer.Option(None, "--tail-samples", min=0,
                                               help="With --cache-teacher: how many of the --top-k ids are drawn "
                                                    "from the teacher's tail instead of being the next most likely "
                                                    "(unbiased loss; 0 = pure top-k + one tail bucket). Default: all "
                                                    "but the top fifth (51 of 64: 149 bytes per position).",
                                               show_default=False),
    render: Render = typer.Option(Render.text, "--render", help="text: the linearized trajectory; chat: the "
                                  "tokenizer's chat template."),
    max_length: int = typer.Option(1024, "--max-length", min=8,
                                   help="Longest training sequence: longer trajectories become step windows "
                                        "(--window steps) or are truncated (counted)."),
    truncate: Keep = typer.Option(Keep.start, "--keep", help="With --window truncate: which part of a too-long "
                                  "sequence to keep."),
    window: Window = WindowOpt,
    curriculum: Optional[CurriculumMode] = typer.Option(
        None, "--curriculum", show_default=False,
        help="Pacing by the sad curriculum fields: none (shuffle), sorted (one pass easy -> hard per epoch), "
             "stages (baby steps: stage s joins after s/K of the run), competence (Platanios et al. 2019: draw "
             "from records with rank <= c(t)). Default: sorted when the records carry the fields, else none."),
    c0: float = typer.Option(0.1, "--c0", help="--curriculum competence: the share of the data open at step 0 "
                             "(0.1 is this project's choice for small data sets)."),
    curriculum_steps: int = typer.Option(0, "--curriculum-steps", min=0,
                                         help="--curriculum competence/stages: steps until all the data is open "
                                              "(0 = half the run for competence, the whole run for stages)."),
    config: Optional[str] = typer.Option(None, "--config", help="TOML file with hyperparameters (options "
                                         "given on the command line win).", show_default=False),
    lr: Optional[float] = typer.Option(None, "--lr", help=_h("lr") + " [default: 1e-4]", show_default=False),
    schedule: Optional[str] = typer.Option(None, "--schedule", help=_h("schedule") + " [default: cosine]",
                                           show_default=False),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help=_h("warmup_steps"), show_default=False),
    epochs: Optional[float] = typer.Option(None, "--epochs", help=_h("epochs") + " [default: 1]", show_default=False),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help=_h("max_steps"), show_default=False),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=_h("batch_size") + " [default: 4]",
                                             show_default=False),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help=_h("grad_accum") + " [default: 1]",
                                             show_default=False),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help=_h("weight_decay"), show_default=False),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help=_h("grad_clip") + " [default: 1.0]",
                                              show_default=False),
    seed: Optional[int] = typer.Option(None, "--seed", help=_h("seed") + " [default: 0]", show_default=False),
    log_every: Optional[int] = typer.Option(None, "--log-every", help=_h("log_every"), show_default=False),
    save_every: Optional[int] = typer.Option(None, "--save-every", help=_h("save_every"), show_default=False),
    mixed_precision: Optional[str] = typer.Option(None, "--mixed-precision", help=_h("mixed_precision"),
                                                  show_default=False),
    log: Optional[str] = typer.Option(None, "--log", help="Append one JSON line of metrics per logging step here.",
                                      show_default=False),
    report_to: Optional[list[str]] = typer.Option(None, "--report-to",
                                                  help="accelerate trackers (tensorboard, wandb...), if installed.",
                                                  show_default=False),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in -o (same "
                                "command otherwise)."),
    trust_spans: bool = typer.Option(False, "--trust-spans",
                                     help="Train on records without 'steps' (their spans cannot be checked "
                                          "against the step texts; records with steps are always checked)."),
    token_cache: str = typer.Option("auto", "--token-cache",
                                    help="Tokenized examples cached once per data + tokenizer + options and "
                                         "memory-mapped by later runs: auto ($SAD_HOME/tokens), a folder, or off "
                                         "(build in memory; stdin always is)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1... (default: best available; "
                                         "use accelerate launch for several GPUs).", show_default=False),
    fsdp: bool = typer.Option(False, "--fsdp", help="Several processes (torchrun / accelerate launch): shard the "
                              "student's weights, gradients and optimizer state with FSDP2 instead of DDP "
                              "(same loss and weights; the teacher is not sharded)."),
    quiet: bool = QuietOpt,
) -> None:
    """Distill a teacher agent into a student with the span-aware loss (or a baseline).

    sad distill seg.jsonl --teacher smollm2-135m --student-layers 6 --loss sad --max-steps 20 -o out/
    """
    setup(quiet)
    with cli_errors():
        from sadcli.distill.pipeline import DistillOptions, run

        if sum(x is not None for x in (student, student_layers, student_config)) > 1:
            raise typer.BadParameter("give only one of --student, --student-layers, --student-config")
        if cache_teacher and teacher_cache:
            raise typer.BadParameter("--cache-teacher builds a cache, --teacher-cache trains from one: pick one")
        if not cache_teacher and not output:
            raise typer.BadParameter("-o OUTDIR is required to train (or use --cache-teacher DIR)")
        opts = DistillOptions(
            input=input, output=output, teacher=teacher, student=student,
            student_layers=student_layers if student_layers is not None else
            (None if (student or student_config) else "6"),
            student_config=student_config, layer_pick=layer_pick.value,
            loss=dict(name=loss.value, lambda_reason=lambda_reason, lambda_act=lambda_act,
                      divergence=divergence.value, beta=beta, temperature=temperature,
                      normalization=normalization.value, action_vocab=action_vocab.value, alpha=alpha,
                      chunk_size=chunk_size, span_vocab=span_vocab.value, supervise=supervise or ""),
            cache_teacher=cache_teacher, teacher_cache=teacher_cache, top_k=top_k, tail_samples=tail_samples,
            render=render.value, max_length=max_length, truncate=truncate.value, window=window.value,
            token_cache=_token_cache_root(token_cache),
            curriculum=curriculum.value if curriculum is not None else None, c0=c0, curriculum_steps=curriculum_steps,
            config_file=config,
            overrides=dict(lr=lr, schedule=schedule, warmup_steps=warmup_steps, epochs=epochs, max_steps=max_steps,
                           batch_size=batch_size, grad_accum=grad_accum, weight_decay=weight_decay,
                           grad_clip=grad_clip, seed=seed, log_every=log_every, save_every=save_every,
                           mixed_precision=mixed_precision),
            log=log, report_to=tuple(report_to or ()), resume=resume, trust_spans=trust_spans, device=device, quiet=quiet,
            fsdp=fsdp)
        run(opts)


def _token_cache_root(value: str) -> Optional[str]:
    """``--token-cache``: auto -> $SAD_HOME/tokens, off -> None, else the folder given."""
    if value == "off":
        return None
    if value == "auto":
        from sadcli.distill.token_cache import default_root

        return default_root()
    return value
