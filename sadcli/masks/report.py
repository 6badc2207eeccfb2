"""Totals of a mask audit: token counts per kind, span-length statistics, violations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sadcli.labels import ACT, KIND_TO_LABEL, KINDS, LABEL_TO_KIND, PROMPT, REASON
from sadcli.masks.audit import CHECKS, Violation
from sadcli.masks.types import MaskedExample

MAX_LISTED = 1000  # violations kept for listing; counts stay exact


def span_stats(lengths: list[int]) -> dict[str, float]:
    """``{"spans", "mean", "median", "p90", "max"}`` of span lengths (tokens); zeros when empty."""
    if not lengths:
        return {"spans": 0, "mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0}
    a = np.asarray(lengths, dtype=np.float64)
    return {"spans": len(lengths), "mean": float(a.mean()), "median": float(np.median(a)),
            "p90": float(np.percentile(a, 90)), "max": int(a.max())}


@dataclass
class MaskReport:
    """Accumulates examples and their violations; ``render_to(console)`` prints the report."""

    render: str = "text"
    examples: int = 0
    tokens: dict[int, int] = field(default_factory=lambda: {lab: 0 for lab in KIND_TO_LABEL.values()})
    template_tokens: int = 0          # chat-template tokens (part of PROMPT)
    eot_tokens: int = 0               # assistant end-of-turn tokens (part of ACT)
    span_lengths: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in KINDS})
    straddling: int = 0
    straddling_examples: int = 0
    truncated_examples: int = 0
    truncated_reason: int = 0
    truncated_act: int = 0
    by_check: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CHECKS})
    trajectories_by_check: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CHECKS})
    violations: list[Violation] = field(default_factory=list)
    rejected: int = 0
    unchecked_spans: int = 0          # records without ``steps``: span contents not checked
    records: int = 0                  # input records (examples = records + extra step windows)
    windowed_records: int = 0         # records cut into step windows (window="steps")
    windows: int = 0                  # examples those records became
    max_windows: int = 0
    context_tokens: int = 0           # unsupervised earlier-step context tokens in windows
    split_steps: int = 0              # steps longer than a window's budget, split

    @property
    def total_violations(self) -> int:
        return sum(self.by_check.values())

    def add(self, ex: MaskedExample, violations: list[Violation]) -> None:
        self.examples += 1
        w = ex.window
        first = w is None or w.index == 0
        self.records += first
        if w is not None:
            self.windowed_records += first
            self.windows += 1
            self.max_windows = max(self.max_windows, w.count)
            self.context_tokens += ex.stats.context_tokens
            self.split_steps += ex.stats.split_steps
        labels = np.asarray(ex.token_labels, dtype=np.int64)
        att = np.asarray(ex.attention_mask, dtype=np.int64) == 1
        for lab in self.tokens:
            self.tokens[lab] += int(((labels == lab) & att).sum())
        st = ex.stats
        self.straddling += st.straddling
        self.straddling_examples += st.straddling > 0
        if st.truncated_tokens:
            self.truncated_examples += 1
            self.truncated_reason += st.truncated_reason
            self.truncated_act += st.truncated_act
        a = ex.alignment
        if a is not None:
            r = a.rendered
            counts = np.bincount(a.token_span[a.token_span >= 0], minlength=len(r.starts))
            for j, src in enumerate(r.sources):
                if src >= 0 and first:
                    self.span_lengths[LABEL_TO_KIND[r.labels[j]]].append(int(counts[j]))
            kept_span = a.token_span[a.index()]
            template = np.isin(kept_span, [j for j, s in enumerate(r.sources) if s < 0 and r.labels[j] == PROMPT])
            self.template_tokens += int(template.sum())
            self.eot_tokens += int(np.isin(kept_span, r.eot).sum()) if r.eot else 0
        seen = set()
        for v in violations:
            self.by_check[v.check] = self.by_check.get(v.check, 0) + 1
            if v.check not in seen:
                self.trajectories_by_check[v.check] = self.trajectories_by_check.get(v.check, 0) + 1
                seen.add(v.check)
            if len(self.violations) < MAX_LISTED:
                self.violations.append(v)

    def summary(self) -> dict[str, Any]:
        """Plain numbers (what the tables show)."""
        total = sum(self.tokens.values())
        sup = self.tokens[REASON] + self.tokens[ACT]
        return {"examples": self.examples, "tokens": {LABEL_TO_KIND[k]: v for k, v in self.tokens.items()},
                "total_tokens": total, "supervised_share": sup / total if total else 0.0,
                "template_tokens": self.template_tokens, "eot_tokens": self.eot_tokens,
                "span_lengths": {k: span_stats(v) for k, v in self.span_lengths.items()},
                "straddling": self.straddling, "truncated_examples": self.truncated_examples,
                "truncated_reason": self.truncated_reason, "truncated_act": self.truncated_act,
                "violations": dict(self.by_check), "rejected": self.rejected,
                "records": self.records, "windows": {
                    "records": self.windowed_records, "examples": self.windows, "max_per_record": self.max_windows,
                    "per_record": (self.windows / self.windowed_records) if self.windowed_records else 0.0,
                    "context_tokens": self.context_tokens, "split_steps": self.split_steps},
                "unchecked_spans": self.unchecked_spans}

    def render_to(self, console: Any, *, max_listed: int = 50) -> None:
        from rich.table import Table

        s = self.summary()
        total = s["total_tokens"] or 1
        n = f"{self.records} trajectories" + (f", {self.examples} examples" if self.examples != self.records else "")
        t = Table(title=f"Tokens per kind ({n}, render={self.render})",
                  title_justify="left")
        for col in ("kind", "tokens", "share", "loss"):
            t.add_column(col, justify="left" if col in ("kind", "loss") else "right")
        loss = {"prompt": "none (m_o)", "reason": "L_CoT (m_r)", "act": "L_Act (m_a)", "obs": "none (m_o)"}
        for k in KINDS:
            n = s["tokens"][k]
            name = k
            if k == "prompt" and self.template_tokens:
                name += f" (template {self.template_tokens})"
            if k == "act" and self.eot_tokens:
                name += f" (end-of-turn {self.eot_tokens})"
            t.add_row(name, f"{n:,}", f"{n / total:.1%}", loss[k])
        t.add_row("supervised", f"{self.tokens[REASON] + self.tokens[ACT]:,}", f"{s['supervised_share']:.1%}", "")
        console.print(t)
        st = Table(title="Span lengths in tokens", title_justify="left")
        for col in ("kind", "spans", "mean", "median", "p90", "max"):
            st.add_column(col, justify="left" if col == "kind" else "right")
        for k in KINDS:
            d = s["span_lengths"][k]
            st.add_row(k, f"{d['spans']:,}", f"{d['mean']:.1f}", f"{d['median']:.1f}", f"{d['p90']:.1f}",
                       f"{d['max']}")
        console.print(st)
        ct = Table(title="Checks", title_justify="left")
        for col in ("check", "violations", "trajectories", "what it catches"):
            ct.add_column(col, justify="right" if col in ("violations", "trajectories") else "left")
        for c, what in CHECKS.items():
            n = self.by_check.get(c, 0)
            style = "red" if n else "green"
            ct.add_row(c, f"[{style}]{n}[/]", str(self.trajectories_by_check.get(c, 0)), what)
        console.print(ct)
        console.print(f"notes: {self.straddling} straddling token(s) in {self.straddling_examples} trajectories "
                      f"(labeled by their first non-space character); truncation cut "
                      f"{self.truncated_reason} reasoning and {self.truncated_act} action token(s) in "
                      f"{self.truncated_examples} trajectories"
                      + (f"; {self.rejected} record(s) rejected" if self.rejected else "")
                      + (f"; {self.windowed_records} record(s) longer than --max-length became {self.windows} step "
                         f"windows ({self.windows / self.windowed_records:.2f} per record, at most {self.max_windows}; "
                         f"{self.context_tokens} unsupervised context tokens; {self.split_steps} over-long step(s) "
                         "split)" if self.windowed_records else "")
                      + (f"; span contents of {self.unchecked_spans} record(s) not checked (no steps)"
                         if self.unchecked_spans else ""), highlight=False)
        for v in self.violations[:max_listed]:
            console.print(f"[red]{v.check}[/] {v.id}: {v.where()}: {v.detail}", highlight=False, soft_wrap=True)
        more = self.total_violations - min(len(self.violations), max_listed)
        if more > 0:
            console.print(f"... and {more} more violation(s)")
        if self.total_violations == 0:
            console.print("[green]masks clean:[/] every token in exactly one of m_r, m_a, m_o; no violations")
