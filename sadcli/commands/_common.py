"""What every command shares: options defined once, and the error boundary.

``cli_errors()`` turns library errors into ``Error: FILE:LINE: what — hint`` on stderr with
exit 1 (no traceback), Ctrl-C into exit 130, and a closed stdout pipe into a quiet exit. An
``OSError`` that escapes the library (a full disk, a read-only folder) becomes ``Error: PATH: what — hint``
too. ``check_outputs()`` validates every output location before a command writes anything.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from enum import Enum
from typing import Optional

import typer

from sadcli.console import console, set_quiet
from sadcli.errors import SadError


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    with _cli_errors():
        try:
            yield
        except BaseException:
            from sadcli.fsutil import discard_pending

            discard_pending()  # temp files of writes that did not finish (see sadcli.fsutil)
            raise


@contextlib.contextmanager
def _cli_errors() -> Iterator[None]:
    try:
        yield
    except SadError as e:
        console.quiet = False
        console.print(f"[bold red]Error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.quiet = False
        console.print("Interrupted.", style="yellow")
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # the reader went away (`sad segment x | head`): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        raise typer.Exit(0) from None
    except OSError as e:
        from sadcli.fsutil import os_error

        console.quiet = False
        console.print(f"[bold red]Error:[/] {os_error(e)}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def check_outputs(**paths: Optional[str]) -> None:
    """Validate every output path (``what=path``; None and ``-`` skipped) before anything is written.

    Raises :class:`SadError` for a directory, an unwritable folder, a path under a file. Two options
    naming the same file are refused too.
    """
    from sadcli.fsutil import check_output, is_stream_path

    seen: dict[str, str] = {}
    for what, path in paths.items():
        if path is None or path == "-":
            continue
        name = "--" + what.replace("_", "-")
        check_output(path, what=name if what != "output" else "-o")
        real = os.path.realpath(path)
        if real in seen and not is_stream_path(path):
            raise SadError(f"{seen[real]} and {name} name the same file", hint="give each its own path",
                           file=path)
        seen[real] = name


class Render(str, Enum):
    """How a trajectory becomes tokens: the linearized text, or the tokenizer's chat template."""

    text = "text"
    chat = "chat"


class Keep(str, Enum):
    """Which part of a sequence longer than --max-length survives."""

    start = "start"
    end = "end"


class Window(str, Enum):
    """What happens to a trajectory longer than --max-length."""

    steps = "steps"
    truncate = "truncate"
    none = "none"


WindowOpt = typer.Option(Window.steps, "--window",
                         help="A trajectory longer than --max-length: steps = several examples, each the task "
                              "prompt + whole earlier steps as unsupervised context + the steps it supervises "
                              "(every reasoning/action token supervised exactly once); truncate (or none) = one "
                              "example, cut (--keep).")


class OnError(str, Enum):
    stop = "stop"
    skip = "skip"


# Options defined once and reused by the commands.
QuietOpt = typer.Option(False, "--quiet", "-q", help="Print nothing but errors on stderr.")
OutputOpt = typer.Option(None, "--output", "-o", help="Write JSONL here (atomically) instead of stdout.",
                         show_default=False)
OnErrorOpt = typer.Option(OnError.stop, "--on-error",
                          help="stop: the first bad record stops the run (exit 1, no output file). "
                               "skip: bad records go to --rejects and are counted.")
RejectsOpt = typer.Option(None, "--rejects", help="With --on-error skip: write bad input lines here, verbatim.",
                          show_default=False)
TokenizerOpt = typer.Option("smollm2-135m", "--tokenizer",
                            help="Tokenizer spec: local Hugging Face dir, hub id, or the embedded 'smollm2-135m'.")
SeedOpt = typer.Option(0, "--seed", help="Random seed.")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps... (default: best available).",
                         show_default=False)


def setup(quiet: bool) -> None:
    set_quiet(quiet)


def opt_path(value: Optional[str]) -> Optional[str]:
    return None if value in (None, "-") else value
