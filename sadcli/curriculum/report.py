"""What ``sad curriculum --show`` prints (Rich, stderr) and ``--plot`` draws (matplotlib)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sadcli.curriculum.order import Scored
from sadcli.errors import SadError


def _steps(rec: dict[str, Any]) -> int:
    if isinstance(rec.get("steps"), list):
        return len(rec["steps"])
    return len({sp.get("step") for sp in rec.get("spans", []) if sp.get("step", -1) >= 0})


def _fmt(x: float | None, nd: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{nd}f}"


def render_to(console: Any, s: Scored, *, limit: int = 5) -> None:
    """Score distribution per stage (count, score C min/median/max, mean len_r, len_a, H), then the easiest
    and hardest ``limit`` trajectories."""
    from rich.table import Table

    o = s.options
    n = len(s.records)
    title = (f"Complexity C = {o.alpha:g}·len_r + {o.beta:g}·len_a + {o.gamma:g}·H  (scale {o.scale}; {n} "
             f"trajectories, {s.examples} examples; entropy: {s.entropy_source or 'not used (gamma 0)'})")
    t = Table(title=title, title_justify="left")
    for col in ("stage", "n", "C min", "C median", "C max", "len_r", "len_a", "H"):
        t.add_column(col, justify="right")
    for k in range(o.stages):
        m = s.stage == k
        if not m.any():
            t.add_row(str(k), "0", "", "", "", "", "", "")
            continue
        sc = s.score[m]
        t.add_row(str(k), str(int(m.sum())), f"{sc.min():.3f}", f"{np.median(sc):.3f}", f"{sc.max():.3f}",
                  f"{s.len_reason[m].mean():.1f}", f"{s.len_act[m].mean():.1f}",
                  _fmt(None if s.entropy is None else float(s.entropy[m].mean()), 3))
    console.print(t)
    for name, idx in (("Easiest", range(min(limit, n))), ("Hardest", range(n - 1, max(n - limit, 0) - 1, -1))):
        tt = Table(title=f"{name} {min(limit, n)}", title_justify="left")
        for col in ("id", "steps", "len_r", "len_a", "H", "score", "rank", "stage"):
            tt.add_column(col, justify="left" if col == "id" else "right")
        for i in idx:
            r = s.records[i]
            tt.add_row(str(r.get("id", i)), str(_steps(r)), str(int(s.len_reason[i])), str(int(s.len_act[i])),
                       _fmt(None if s.entropy is None else float(s.entropy[i]), 3), f"{s.score[i]:.3f}",
                       f"{s.rank[i]:.3f}", str(int(s.stage[i])))
        console.print(tt)


def plot(s: Scored, path: str) -> None:
    """Histograms of reasoning length, action length, entropy and score (stacked by stage), saved atomically."""
    try:
        import matplotlib
    except ImportError:
        raise SadError("--plot needs matplotlib", hint="pip install 'sad-distill[plot]' (or matplotlib)") from None

    matplotlib.use("Agg")
    import io
    import os

    import matplotlib.pyplot as plt

    from sadcli.fsutil import atomic_write_bytes

    panels = [("reasoning tokens (len_r)", s.len_reason), ("action tokens (len_a)", s.len_act)]
    if s.entropy is not None:
        panels.append(("teacher entropy H (nats/token)", s.entropy))
    panels.append((f"complexity score ({s.options.scale})", s.score))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    k = s.options.stages
    for ax, (name, values) in zip(np.atleast_1d(axes), panels, strict=False):
        data = [np.asarray(values, dtype=float)[s.stage == j] for j in range(k)]
        ax.hist(data, bins=20, stacked=True, label=[f"stage {j}" for j in range(k)])
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("trajectories")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    fig.suptitle(f"sad curriculum: {len(s.records)} trajectories, {k} stages")
    fig.tight_layout()
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    fmt = ext if ext in fig.canvas.get_supported_filetypes() else "png"
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=100, format=fmt)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), what="--plot")
