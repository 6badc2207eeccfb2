"""The ``sad`` command: one Typer app, one module per command under ``sadcli.commands``.

Nothing heavy is imported here: ``sad --help`` and shell completion stay instant.
"""

from __future__ import annotations

import typer

from sadcli import __version__

app = typer.Typer(
    name="sad",
    help="Structured Agent Distillation: segment teacher ReAct trajectories into [REASON]/[ACT]/[OBS] "
         "spans, build token masks, and distill a small student with span-specific KL losses.\n\n"
         "Every stage reads and writes JSONL, so they chain: "
         "sad collect | sad segment - | sad mask-check - | sad curriculum - | sad distill - -o out/",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Structured Agent Distillation toolkit."""


# --- commands (one module each; registered in pipeline order) -------------------------------
from sadcli.commands.collect import collect  # noqa: E402
from sadcli.commands.curriculum import curriculum  # noqa: E402
from sadcli.commands.distill import distill  # noqa: E402
from sadcli.commands.eval import eval_  # noqa: E402
from sadcli.commands.mask_check import mask_check  # noqa: E402
from sadcli.commands.segment import segment  # noqa: E402

app.command("collect")(collect)
app.command("segment")(segment)
app.command("mask-check")(mask_check)
app.command("curriculum")(curriculum)
app.command("distill")(distill)
app.command("eval")(eval_)


def main() -> None:
    app(prog_name="sad")
