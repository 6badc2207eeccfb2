"""The one shared stderr console. stdout carries data only."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False)


def set_quiet(quiet: bool) -> None:
    """Silence everything a person reads (errors are still printed by the CLI)."""
    console.quiet = quiet
