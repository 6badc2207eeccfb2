"""``sad segment``: any trajectory format in, schema-v1 segmented JSONL out."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from sadcli.commands._common import (
    OnError,
    OnErrorOpt,
    OutputOpt,
    QuietOpt,
    RejectsOpt,
    check_outputs,
    cli_errors,
    setup,
)
from sadcli.console import console


class Format(str, Enum):
    auto = "auto"
    structured = "structured"
    messages = "messages"
    sharegpt = "sharegpt"
    react = "react"
    alfworld = "alfworld"
    tags = "tags"
    webshop = "webshop"
    template = "template"


class MarkerStyle(str, Enum):
    paper = "paper"
    native = "native"


class OutputFormat(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"


def segment(
    input: str = typer.Argument(..., help="Trajectory file (.jsonl, or .json array/object), - for stdin, or a "
                                          "datasets dataset: .parquet/.arrow file or folder, save_to_disk folder."),
    output: Optional[str] = OutputOpt,
    output_format: OutputFormat = typer.Option(OutputFormat.jsonl, "--output-format",
                                               help="jsonl (stdout or -o FILE), or parquet: --shards N Parquet "
                                                    "files in the folder -o DIR (written atomically)."),
    shards: int = typer.Option(1, "--shards", min=1,
                               help="With --output-format parquet: number of shards, equal row counts in input "
                                    "order. Use a multiple of the training world size."),
    workers: int = typer.Option(1, "--workers", "-j", min=1,
                                help="Worker processes (output order and error lines are those of one process)."),
    format: Format = typer.Option(Format.auto, "--format", "-f",
                                  help="Input format; auto detects it per record."),
    markers: MarkerStyle = typer.Option(MarkerStyle.paper, "--markers",
                                        help="paper: [REASON]/[ACT]/[OBS]; native: Thought:/Action:/Observation:."),
    template: Optional[str] = typer.Option(None, "--template",
                                           help="TOML file with marker regexes for a custom format.",
                                           show_default=False),
    show: bool = typer.Option(False, "--show", help="Preview trajectories in color on stderr."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=0,
                                        help="With --show/--html: preview only the first N.", show_default=False),
    html: Optional[str] = typer.Option(None, "--html", help="Save the preview as an HTML file.",
                                       show_default=False),
    on_error: OnError = OnErrorOpt,
    rejects: Optional[str] = RejectsOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Split teacher trajectories into prompt / reason / act / obs spans.

    Reads ReAct text (alpaca too), OpenAI messages (tool calls too), ShareGPT conversations,
    ALFWorld transcripts, <think>/<action> tags, WebShop think[...] actions and schema-v1 steps;
    writes each record back with text, spans, steps and format added (JSONL on stdout or -o, or
    Parquet shards with --output-format parquet --shards N -o DIR).
    """
    setup(quiet)
    with cli_errors():
        from sadcli.jsonl import Output
        from sadcli.records import read_lines
        from sadcli.segment.preview import Previewer
        from sadcli.segment.stats import SegmentStats
        from sadcli.segment.stream import segment_lines
        from sadcli.segment.template import load_template

        tpl = load_template(template) if template else None
        if format == Format.template and tpl is None:
            raise typer.BadParameter("--format template needs --template FILE")
        if rejects and on_error != OnError.skip:
            raise typer.BadParameter("--rejects needs --on-error skip")
        parquet = output_format == OutputFormat.parquet
        if parquet and output in (None, "-"):
            raise typer.BadParameter("--output-format parquet needs -o DIR (a folder for the shards)")
        if shards > 1 and not parquet:
            raise typer.BadParameter("--shards needs --output-format parquet")
        if parquet:
            from sadcli.records import ParquetWriter, check_output_dir

            check_output_dir(output, "-o")
            check_outputs(rejects=rejects, html=html)
        else:
            check_outputs(output=output, rejects=rejects, html=html)  # before anything is written
        stats = SegmentStats()
        preview = Previewer(console, limit=limit, show=show, html_path=html) if (show or html) else None
        main_out = ParquetWriter(output, shards) if parquet else Output(output)
        with Output(rejects, what="--rejects") if rejects else _null() as rej, main_out as out:
            def reject(line, err):
                stats.rejected += 1
                if not quiet:
                    console.print(f"[yellow]skipped[/] {err}", soft_wrap=True)
                if rej is not None:
                    rej.write_raw(line.raw)

            opts = dict(fmt=format.value, markers=markers.value, template=tpl, on_error=on_error.value,
                        reject=reject)
            if workers > 1:
                from sadcli.segment.stream import segment_parallel

                as_bytes = not parquet and preview is None  # workers write the JSON lines themselves
                for rec in segment_parallel(read_lines(input), workers=workers, stats=stats, as_bytes=as_bytes,
                                            **opts):
                    if as_bytes:
                        out.write_raw(rec)
                        continue
                    out.write(rec)
                    if preview is not None:
                        preview.add(rec)
            else:
                for rec in segment_lines(read_lines(input), **opts):
                    out.write(rec)
                    stats.add(rec)
                    if preview is not None:
                        preview.add(rec)
            if preview is not None:
                preview.close()  # --html written before -o is renamed into place: all or nothing
        if not quiet:
            table, line = stats.render()
            console.print(table)
            console.print(line)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return None
