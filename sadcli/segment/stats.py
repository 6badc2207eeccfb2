"""Counting what segmentation produced, for the summary on stderr."""

from __future__ import annotations

from dataclasses import dataclass, field

from sadcli.labels import KINDS


@dataclass
class SegmentStats:
    trajectories: int = 0
    steps: int = 0
    with_warnings: int = 0
    rejected: int = 0
    spans: dict = field(default_factory=lambda: {k: 0 for k in KINDS})
    chars: dict = field(default_factory=lambda: {k: 0 for k in KINDS})
    formats: dict = field(default_factory=dict)

    def add(self, rec: dict) -> None:
        self.trajectories += 1
        self.steps += len(rec.get("steps") or ())
        if rec.get("segment_warnings"):
            self.with_warnings += 1
        fmt = rec.get("format", "?")
        self.formats[fmt] = self.formats.get(fmt, 0) + 1
        spans, chars = self.spans, self.chars
        for sp in rec["spans"]:
            k = sp["kind"]
            spans[k] += 1
            chars[k] += sp["end"] - sp["start"]

    def render(self):
        from rich.table import Table

        t = Table(title="sad segment", title_justify="left", show_edge=False)
        t.add_column("")
        for k in KINDS:
            t.add_column(k, justify="right")
        t.add_row("spans", *(f"{self.spans[k]:,}" for k in KINDS))
        t.add_row("characters", *(f"{self.chars[k]:,}" for k in KINDS))
        fmts = ", ".join(f"{k} {v:,}" for k, v in sorted(self.formats.items()))
        lines = (f"{self.trajectories:,} trajectories, {self.steps:,} steps; formats: {fmts or '-'}; "
                 f"{self.with_warnings:,} with warnings")
        if self.rejected:
            lines += f"; {self.rejected:,} rejected"
        return t, lines
