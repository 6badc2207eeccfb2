"""Colored previews of segmented trajectories (Rich), on the terminal or saved as HTML."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

STYLES = {
    "prompt": "dim",
    "reason": "cyan",
    "act": "bold green",
    "obs": "magenta",
}
LABELS = {"prompt": "PROMPT", "reason": "REASON", "act": "ACT", "obs": "OBS"}


def legend() -> Text:
    t = Text("legend: ")
    for k, style in STYLES.items():
        t.append(f" {LABELS[k]} ", style=f"reverse {style}")
        t.append(" ")
    return t


def render_record(rec: dict, *, max_chars: int | None = 4000) -> Panel:
    text = rec["text"]
    body = Text()
    counts = {k: 0 for k in STYLES}
    for sp in rec["spans"]:
        counts[sp["kind"]] += 1
        body.append(text[sp["start"]: sp["end"]], style=STYLES[sp["kind"]])
    if max_chars is not None and len(body) > max_chars:
        body = body[:max_chars]
        body.append(f"\n… ({len(text) - max_chars:,} more characters)", style="italic")
    title = f"{rec.get('id', '?')}  [{rec.get('format', '?')}]"
    subtitle = "  ".join(f"{LABELS[k]} {v}" for k, v in counts.items())
    warns = rec.get("segment_warnings") or []
    parts = [body]
    if warns:
        w = Text()
        for x in warns[:5]:
            w.append(f"! {x['message']}\n", style="yellow")
        if len(warns) > 5:
            w.append(f"! … {len(warns) - 5} more warnings\n", style="yellow")
        parts.append(w)
    return Panel(Group(*parts), title=title, subtitle=subtitle, title_align="left", subtitle_align="right")


class Previewer:
    """Shows the first ``limit`` records on ``console`` and, with ``html_path``, saves them as HTML."""

    def __init__(self, console: Console, *, limit: int | None, show: bool, html_path: str | None):
        self.console, self.limit, self.show, self.html_path = console, limit, show, html_path
        self.shown = 0
        self._html = Console(record=True, width=110, file=open_devnull(), force_terminal=True) if html_path else None
        self._legend_done = False

    def add(self, rec: dict) -> None:
        if self.limit is not None and self.shown >= self.limit:
            return
        panel = render_record(rec)
        if not self._legend_done:
            if self.show:
                self.console.print(legend())
            if self._html:
                self._html.print(legend())
            self._legend_done = True
        if self.show:
            self.console.print(panel)
        if self._html:
            self._html.print(panel)
        self.shown += 1

    def close(self) -> None:
        if self._html and self.html_path:
            from sadcli.fsutil import atomic_write_text

            atomic_write_text(self.html_path, self._html.export_html(inline_styles=True), what="--html")


def open_devnull():
    import os

    return open(os.devnull, "w")
