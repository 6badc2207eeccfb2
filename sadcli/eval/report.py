"""The evaluation report: one JSON document, and the tables / Markdown / plot rendered from it alone.

``build_report(...)`` records the configuration, package versions and the code's git hash beside the
results; :func:`tables` (Rich, for stderr), :func:`markdown` and :func:`plot` read nothing but that
document, so ``sad eval --from-report report.json`` regenerates them.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from typing import Any

COLUMNS_ROLLOUT = ("model", "success (micro)", "95% CI", "macro", "seeds mean ± sd", "reward", "invalid %",
                   "terminations")
COLUMNS_COST = ("model", "steps all / won", "reason tok/span", "reason tok/episode", "latency s/episode",
                "generated tok/s")
COLUMNS_FIDELITY = ("model", "KL reason", "KL act", "NLL reason", "NLL act", "top-1 agree r/a", "top-1 acc r/a")
COLUMNS_MATCH = ("model", "action match", "95% CI", "CoT match", "95% CI", "ROUGE-L F1", "free action", "95% CI")


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("sad-distill", "torch", "transformers", "scipy", "rouge-score", "numpy", "textworld-express",
                "alfworld", "scienceworld"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_hash() -> str | None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        r = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return r.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def build_report(config: dict, rollouts: dict | None = None, fidelity: dict | None = None) -> dict:
    return {"sad_eval_report": 1, "config": config, "versions": versions(), "git": git_hash(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "rollouts": rollouts, "fidelity": fidelity}


# --- formatting ---------------------------------------------------------------------------------

def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _rate(r: dict | None) -> str:
    if not r or not r.get("n"):
        return "–"
    return f"{r['k']}/{r['n']} ({_pct(r['rate'])})"


def _ci(r: dict | None) -> str:
    if not r or not r.get("n"):
        return "–"
    lo, hi = r["ci95"]
    return f"[{_pct(lo)}, {_pct(hi)}]"


def _models(report: dict) -> dict:
    return ((report.get("rollouts") or {}).get("summary") or {}).get("models", {})


def rollout_rows(report: dict) -> list[list[str]]:
    rows = []
    for m, s in _models(report).items():
        seeds = s["seeds"]
        sd = f" ± {_pct(seeds['sd'])}" if seeds["n"] > 1 else " (1 seed)"
        reward = _num(s["reward_mean"]) + "".join(f", {k} {_num(v)}" for k, v in (s.get("scores") or {}).items())
        terms = ", ".join(f"{k} {v}" for k, v in s["terminations"].items())
        rows.append([m, _rate(s["success"]), _ci(s["success"]), _pct(s["success_macro"]), _pct(seeds["mean"]) + sd,
                     reward, _pct(s["invalid_action_rate"]), terms])
    return rows


def cost_rows(report: dict) -> list[list[str]]:
    return [[m, f"{_num(s['steps_mean'], 1)} / {_num(s['steps_mean_success'], 1)}",
             _num(s["reason_tokens_per_span"], 1), _num(s["reason_tokens_per_episode"], 1),
             _num(s["latency_s_mean"], 1), _num(s["tokens_per_s"], 1)] for m, s in _models(report).items()]


def task_type_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    models = ((report.get("rollouts") or {}).get("summary") or {}).get("models", {})
    types = sorted({t for s in models.values() for t in s["task_types"]})
    rows = [[t] + [f"{_rate(s['task_types'].get(t))} {_ci(s['task_types'].get(t))}" for s in models.values()]
            for t in types]
    return ["task type", *models], rows


def pair_rows(report: dict) -> list[list[str]]:
    return _pair_rows(((report.get("rollouts") or {}).get("summary") or {}).get("pairs", []))


def _pair_rows(pairs: list[dict]) -> list[list[str]]:
    """Rows of McNemar tests: pair, n, only-first, only-second, p-value."""
    return [[f"{p['a']} vs {p['b']}", str(p["n"]), str(p["a_only"]), str(p["b_only"]), f"{p['p_value']:.4g}"]
            for p in pairs]


def _fid(report: dict) -> dict:
    return (report.get("fidelity") or {}).get("models") or {}


def fidelity_rows(report: dict) -> list[list[str]]:
    rows = []
    for m, f in _fid(report).items():
        r, a = f.get("reason") or {}, f.get("act") or {}
        rows.append([m, _num(r.get("kl"), 3), _num(a.get("kl"), 3), _num(r.get("nll"), 3), _num(a.get("nll"), 3),
                     f"{_pct(r.get('top1_agreement'), 0)} / {_pct(a.get('top1_agreement'), 0)}",
                     f"{_pct(r.get('top1_accuracy'), 0)} / {_pct(a.get('top1_accuracy'), 0)}"])
    return rows


def match_rows(report: dict) -> list[list[str]]:
    return [[m, _rate(f.get("action_match")), _ci(f.get("action_match")), _rate(f.get("cot_match")),
             _ci(f.get("cot_match")), _num(f.get("cot_rouge_l"), 3), _rate(f.get("free_action_match")),
             _ci(f.get("free_action_match"))] for m, f in _fid(report).items() if "action_match" in f]


def action_pair_rows(report: dict) -> list[list[str]]:
    return _pair_rows((report.get("fidelity") or {}).get("action_pairs") or [])


COLUMNS_ACTION_PAIRS = ("pair", "steps", "only first matched", "only second matched", "p-value")


def _titles(report: dict) -> dict[str, str]:
    ro = report.get("rollouts") or {}
    fi = report.get("fidelity") or {}
    return {
        "rollouts": f"Rollouts: {ro.get('env')}/{ro.get('split')}, step cap {ro.get('step_cap')}, "
                    f"seeds {ro.get('seeds')} (95% Wilson intervals)",
        "types": "Success per task type (k/n, 95% Wilson interval)",
        "cost": "Episode length, reasoning length and speed",
        "pairs": "Paired exact McNemar tests (same episodes)",
        "match": "Greedy generation from the held-out histories: action match (after the reference reasoning), "
                 "CoT match (ROUGE-L F1 >= threshold, our definition), free action (after its own reasoning)",
        "action_pairs": "Action match, paired exact McNemar tests (same held-out steps)",
        "fidelity": f"Teacher-forced fidelity on {fi.get('data')} ({fi.get('examples')} trajectories, "
                    f"{fi.get('steps')} steps; teacher {fi.get('teacher')}; reference {fi.get('reference')}; "
                    f"CoT match = ROUGE-L F1 >= {fi.get('cot_threshold')})",
    }


def tables(report: dict) -> list[Any]:
    """Rich tables of a report (for the stderr console)."""
    from rich.table import Table

    out = []
    t = _titles(report)

    def table(title: str, columns, rows) -> None:
        tb = Table(title=title, title_justify="left")
        for c in columns:
            tb.add_column(c, overflow="fold")
        for r in rows:
            tb.add_row(*r)
        out.append(tb)

    if report.get("rollouts"):
        table(t["rollouts"], COLUMNS_ROLLOUT, rollout_rows(report))
        table(t["cost"], COLUMNS_COST, cost_rows(report))
        cols, rows = task_type_rows(report)
        if len(rows) > 1:
            table(t["types"], cols, rows)
        if pair_rows(report):
            table(t["pairs"], ("pair", "episodes", "only first won", "only second won", "p-value"), pair_rows(report))
    if report.get("fidelity"):
        table(t["fidelity"], COLUMNS_FIDELITY, fidelity_rows(report))
        if match_rows(report):
            table(t["match"], COLUMNS_MATCH, match_rows(report))
        if action_pair_rows(report):
            table(t["action_pairs"], COLUMNS_ACTION_PAIRS, action_pair_rows(report))
    return out


def _md_table(columns, rows) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    t = _titles(report)
    parts = ["# sad eval report", "",
             f"git {report.get('git')}, {report.get('machine')}; "
             + ", ".join(f"{k} {v}" for k, v in (report.get("versions") or {}).items()), ""]
    if report.get("rollouts"):
        parts += [f"## {t['rollouts']}", "", _md_table(COLUMNS_ROLLOUT, rollout_rows(report)), ""]
        parts += [f"### {t['cost']}", "", _md_table(COLUMNS_COST, cost_rows(report)), ""]
        cols, rows = task_type_rows(report)
        parts += [f"### {t['types']}", "", _md_table(cols, rows), ""]
        if pair_rows(report):
            parts += [f"### {t['pairs']}", "",
                      _md_table(("pair", "episodes", "only first won", "only second won", "p-value"), pair_rows(report)),
                      ""]
    if report.get("fidelity"):
        parts += [f"## {t['fidelity']}", "", _md_table(COLUMNS_FIDELITY, fidelity_rows(report)), ""]
        if match_rows(report):
            parts += [f"### {t['match']}", "", _md_table(COLUMNS_MATCH, match_rows(report)), ""]
        if action_pair_rows(report):
            parts += [f"### {t['action_pairs']}", "", _md_table(COLUMNS_ACTION_PAIRS, action_pair_rows(report)), ""]
    cmd = (report.get("config") or {}).get("command")
    if cmd:
        parts += ["Produced by:", "", f"    {cmd}", ""]
    return "\n".join(parts)


def plot(report: dict, path: str) -> None:
    """Bars with 95% Wilson error bars: rollout success per model (and task type), fidelity matches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    ro = ((report.get("rollouts") or {}).get("summary") or {}).get("models") or {}
    if ro:
        types = sorted({t for s in ro.values() for t in s["task_types"]})
        groups = ["all"] + (types if len(types) > 1 else [])
        series = {m: [s["success"]] + [s["task_types"].get(t) for t in groups[1:]] for m, s in ro.items()}
        panels.append(("Success rate in the environment", groups, series))
    fi = (report.get("fidelity") or {}).get("models") or {}
    if fi and any("action_match" in f for f in fi.values()):
        groups = ["action match", "CoT match", "free action"]
        series = {m: [f.get("action_match"), f.get("cot_match"), f.get("free_action_match")] for m, f in fi.items()}
        panels.append(("Teacher-forced fidelity (held-out trajectories)", groups, series))
    kl = {m: [(f.get(k) or {}).get("kl") for k in ("reason", "act")] for m, f in fi.items()}
    if not panels and not any(v is not None for vals in kl.values() for v in vals):
        return
    n_kl = int(any(v is not None for vals in kl.values() for v in vals))
    fig, axes = plt.subplots(1, len(panels) + n_kl, figsize=(6.5 * (len(panels) + n_kl), 4), squeeze=False)
    if n_kl:  # token-level KL to the teacher per span kind (means over tokens; no interval)
        ax = axes[0][-1]
        width = 0.8 / max(1, len(kl))
        for i, (m, vals) in enumerate(kl.items()):
            ax.bar([g + i * width - 0.4 + width / 2 for g in range(2)], [v if v is not None else 0 for v in vals],
                   width, label=m)
        ax.set_xticks(range(2))
        ax.set_xticklabels(["reasoning tokens", "action tokens"])
        ax.set_ylabel("KL(p_T || p_S), nats per token")
        ax.set_title("Teacher-forced span KL (held-out trajectories)", fontsize=10)
        ax.legend(fontsize=8)
    for ax, (title, groups, series) in zip(axes[0], panels, strict=False):
        width = 0.8 / max(1, len(series))
        for i, (m, rates) in enumerate(series.items()):
            xs, ys, lo, hi = [], [], [], []
            for g, r in enumerate(rates):
                if not r or not r.get("n"):
                    continue
                xs.append(g + i * width - 0.4 + width / 2)
                ys.append(100 * r["rate"])
                lo.append(100 * (r["rate"] - r["ci95"][0]))
                hi.append(100 * (r["ci95"][1] - r["rate"]))
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=m)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=20 if len(groups) > 4 else 0)
        ax.set_ylim(0, 105)
        ax.set_ylabel("% (95% Wilson CI)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    from sadcli.fsutil import atomic_path

    with atomic_path(path, what="plot") as tmp:
        fig.savefig(tmp, dpi=120, format=os.path.splitext(path)[1].lstrip(".") or "png")
    plt.close(fig)
