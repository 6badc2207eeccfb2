"""The claim `make demo` ends with, checked on its `sad eval` report.

The distilled student must beat the same layer-cut student before distillation on span KL to the teacher
(reasoning and action tokens, nats per token) and on action match (greedy action after the held-out
trajectory's history and reasoning, equal to its action). One verdict line with the numbers and 95% Wilson
intervals goes to stderr; the exit status is 1 when the claim does not hold, unless ``--no-fail`` is given
(``make demo`` uses it: a claim that does not hold is a result to read, not a broken demo).

    python examples/demo_claim.py demo/eval.json [DISTILLED UNDISTILLED] [--no-fail]
"""

from __future__ import annotations

import json
import sys


def _rate(m: dict) -> str:
    lo, hi = m.get("ci95") or (float("nan"), float("nan"))
    return f"{m['k']}/{m['n']} = {100 * m['rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def verdict(report: dict, better: str = "distilled", worse: str = "undistilled") -> tuple[bool, str]:
    """(holds, one line) for ``better`` beating ``worse`` on span KL and action match in a report."""
    fi = (report.get("fidelity") or {}).get("models") or {}
    missing = [m for m in (better, worse) if m not in fi]
    if missing:
        return False, f"the report has no fidelity for {', '.join(missing)} (models: {', '.join(fi) or 'none'})"
    b, w = fi[better], fi[worse]
    kl = all(b[k]["kl"] < w[k]["kl"] for k in ("reason", "act"))
    am_b, am_w = b.get("action_match"), w.get("action_match")
    if not am_b or not am_w or not am_b["n"] or not am_w["n"]:
        return False, "the report has no action match (run sad eval without --no-generate)"
    act = am_b["rate"] > am_w["rate"]
    holds = kl and act
    pair = next((p for p in (report.get("fidelity") or {}).get("action_pairs") or []
                 if {p["a"], p["b"]} == {better, worse}), None)
    test = ""
    if pair is not None:
        only_b, only_w = (pair["a_only"], pair["b_only"]) if pair["a"] == better else (pair["b_only"], pair["a_only"])
        test = (f", paired exact McNemar p = {pair['p_value']:.3g} ({only_b} steps only {better} matched, "
                f"{only_w} only {worse}; {'significant' if pair['p_value'] < 0.05 else 'not significant'} at 0.05)")
    line = (f"{'claim holds' if holds else 'claim does NOT hold'}: {better} vs {worse} — span KL reason "
            f"{b['reason']['kl']:.3f} vs {w['reason']['kl']:.3f}, act {b['act']['kl']:.3f} vs {w['act']['kl']:.3f} "
            f"({'lower' if kl else 'not lower'}); action match {_rate(am_b)} vs {_rate(am_w)} "
            f"({'higher' if act else 'not higher'}{test})")
    return holds, line


def main(argv: list[str]) -> int:
    no_fail = "--no-fail" in argv
    argv = [a for a in argv if a != "--no-fail"]
    if not argv or len(argv) not in (1, 3):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print(f"Error: {argv[0]}: cannot read the report: {e} — run make demo first", file=sys.stderr)
        return 1
    holds, line = verdict(report, *argv[1:3])
    print(line, file=sys.stderr)
    return 0 if holds or no_fail else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
