"""Shell completion scripts generated from the CLI (``completions/`` holds the current ones).

Regenerate with ``python -m sadcli.completions`` (``make completions``); a test fails when they are stale.
"""

from __future__ import annotations

import pathlib
import sys

FILES = {"bash": "sad.bash", "zsh": "_sad", "fish": "sad.fish"}


def completion_script(shell: str) -> str:
    """The script ``sad --show-completion SHELL`` prints (Typer's, calling back into ``sad``)."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="sad", complete_var="_SAD_COMPLETE", shell=shell).rstrip("\n") + "\n"


def write_all(folder: str | pathlib.Path = "completions") -> None:
    folder = pathlib.Path(folder)
    folder.mkdir(exist_ok=True)
    for shell, name in FILES.items():
        (folder / name).write_text(completion_script(shell))


if __name__ == "__main__":
    write_all(sys.argv[1] if len(sys.argv) > 1 else "completions")
