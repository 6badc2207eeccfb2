"""``sad mask-check``: build token masks from spans and audit them before any GPU time is spent."""

from __future__ import annotations

from typing import Optional

import typer

from sadcli.commands._common import (
    Keep,
    OnError,
    OnErrorOpt,
    OutputOpt,
    QuietOpt,
    RejectsOpt,
    Render,
    TokenizerOpt,
    Window,
    WindowOpt,
    check_outputs,
    cli_errors,
    setup,
)
from sadcli.console import console


def mask_check(
    input: str = typer.Argument(..., help="Segmented JSONL (from `sad segment`), - for stdin, or a datasets "
                                          "dataset (.parquet/.arrow file or folder, save_to_disk folder)."),
    output: Optional[str] = OutputOpt,
    tokenizer: str = TokenizerOpt,
    render: Render = typer.Option(Render.text, "--render",
                                  help="text: tokenize the linearized text (base models). chat: render turns "
                                       "with the tokenizer's chat template (chat models)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=1,
                                             help="Cut trajectories to this many tokens.", show_default=False),
    keep: Keep = typer.Option(Keep.start, "--keep", help="With --max-length: keep the start or the end."),
    window: Window = WindowOpt,
    show: bool = typer.Option(False, "--show", help="Print token-level colored previews on stderr."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=0,
                                        help="With --show: preview only the first N.", show_default=False),
    emit: bool = typer.Option(False, "--emit",
                              help="Write input_ids + token_labels JSONL (for `sad distill`) instead of "
                                   "passing the input records through."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Save reason/act span-length histograms (PNG).",
                                       show_default=False),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any violation is found (a CI gate)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Records per tokenizer batch."),
    on_error: OnError = OnErrorOpt,
    rejects: Optional[str] = RejectsOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Build token masks from spans and audit them.

    Checks every token is in exactly one of m_r (reasoning), m_a (action), m_o (prompt/observation),
    that every span got tokens, decoded span tokens match the span text, special and padding tokens are
    never supervised, the chat end-of-turn token is, and what truncation cuts. Prints token counts,
    span-length statistics and every violation on stderr. Input records pass through to stdout
    unchanged (or, with --emit, token ids and labels are written).
    """
    setup(quiet)
    with cli_errors():
        if rejects and on_error != OnError.skip:
            raise typer.BadParameter("--rejects needs --on-error skip")
        check_outputs(output=output, rejects=rejects, plot=plot)  # before any work or output
        from sadcli.errors import SadError
        from sadcli.jsonl import Line, Output, parse_line
        from sadcli.labels import ACT
        from sadcli.masks.audit import Auditor, span_violations
        from sadcli.masks.build import build_examples, check_tokenizer
        from sadcli.masks.emit import to_emit_record
        from sadcli.masks.report import MaskReport
        from sadcli.masks.show import LEGEND, plot_span_lengths
        from sadcli.masks.show import show as show_example
        from sadcli.masks.spancheck import has_steps
        from sadcli.models import load_tokenizer
        from sadcli.records import read_lines

        tok = load_tokenizer(tokenizer)
        check_tokenizer(tok)
        auditor = Auditor(tok, render=render.value)
        report = MaskReport(render=render.value)
        # records handed to build_examples, by the index it gives them (parsed records only: a line
        # that is not JSON never reaches it, so line numbers and example indices differ)
        pending: dict[int, tuple[Line, dict]] = {}
        shown = 0

        with Output(rejects, what="--rejects") if rejects else _null() as rej, Output(output) as out:
            def reject(line: Line, err: SadError) -> None:
                if on_error == OnError.stop:
                    raise err.located(line.file, line.line)
                report.rejected += 1
                console.print(f"[yellow]skipped[/] {err.located(line.file, line.line)}", soft_wrap=True)
                if rej is not None:
                    rej.write_raw(line.raw)

            def records():
                index = 0
                for line in read_lines(input):
                    try:
                        rec = parse_line(line)
                    except SadError as e:
                        reject(line, e)
                        continue
                    pending[index] = (line, rec)
                    index += 1
                    yield rec

            def on_bad(index: int, rec: dict, err: SadError) -> None:
                reject(pending.pop(index)[0], err)

            for ex in build_examples(records(), tok, render=render.value, max_length=max_length,
                                     keep=keep.value, batch_size=batch_size, keep_alignment=True,
                                     on_error=on_bad, window=window.value):
                # a record cut into step windows yields several examples: its line goes once, after the last
                first = ex.window is None or ex.window.index == 0
                last = ex.window is None or ex.window.index == ex.window.count - 1
                line, rec = pending.pop(ex.index) if last else pending[ex.index]
                violations = auditor.check(ex)
                if not first:
                    pass
                elif has_steps(rec):
                    violations += span_violations(rec, ex.id)
                else:
                    report.unchecked_spans += 1
                report.add(ex, violations)
                if ex.stats.truncated_act and ACT not in ex.token_labels:
                    console.print(f"[yellow]warning:[/] {line.file}:{line.line}: {ex.id}: truncation to "
                                  f"{max_length} tokens cut every action token", soft_wrap=True)
                if show and (limit is None or shown < limit):
                    if shown == 0:
                        console.print(LEGEND, style="dim")
                    show_example(console, ex, tok)
                    shown += 1
                if emit:
                    out.write(to_emit_record(ex, tokenizer=tokenizer, render=render.value,
                                             max_length=max_length, keep=keep.value, window=window.value))
                elif last:
                    out.write_raw(line.raw)
                ex.alignment = None  # keep memory flat on long streams
            # side outputs and the verdict come before -o is renamed into place: a failed --plot or a
            # failed --strict leaves no output file (and an existing one untouched)
            if plot:
                plot_span_lengths(report.span_lengths, plot, title=f"{tokenizer}, render={render.value}")
                console.print(f"saved span-length histograms to {plot}")
            report.render_to(console)
            if strict and report.total_violations:
                console.quiet = False
                console.print(f"[red]--strict:[/] {report.total_violations} violation(s)"
                              + ("; no output written" if output not in (None, "-") else ""))
                raise typer.Exit(1)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return None
