"""benchmarks/expert_episode_stats.py: the README's success intervals, steps and coverage, against by-hand values."""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "expert_episode_stats.py"
_spec = importlib.util.spec_from_file_location("expert_episode_stats", _PATH)
stats_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats_mod)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def record(n_steps: int, thoughts: list[str | None], success: bool) -> dict:
    steps = [{"reason": thoughts[i] if i < len(thoughts) else None, "action": "look"} for i in range(n_steps)]
    return {"steps": steps, "success": success}


def test_summary_matches_hand_computation():
    recs = [record(4, ["plan", None, "found"], True), record(10, ["plan", "  "], True),
            record(2, ["plan"], False), record(6, [], True)]
    s = stats_mod.summarize(recs)
    assert s["n"] == 4 and s["won"] == 3
    lo, hi = wilson(3, 4)
    assert s["ci"][0] == pytest.approx(lo, abs=1e-9) and s["ci"][1] == pytest.approx(hi, abs=1e-9)
    assert s["median"] == 5.0 and s["max"] == 10
    assert s["p90"] == pytest.approx(6 + 0.7 * 4)  # numpy's linear interpolation between 6 and 10
    assert s["steps"] == 22 and s["coverage"] == pytest.approx(4 / 22)  # a blank thought is no thought
    assert s["distinct"] == 2  # "plan", "found"


def test_react_prompt_coverage_counts_actions_with_a_thought_before_them(tmp_path):
    prompts = {
        "react_put_0": "room\n> think: plan\nOK.\n> think: search\nOK.\n> go to a 1\nobs\n> go to b 1\nobs",
        "react_heat_0": "room\n> go to a 1\nobs\n> think: found\nOK.\n> take x 1 from a 1\nobs",
        "act_put_0": "room\n> go to a 1\nobs",
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(prompts))
    c = stats_mod.react_prompt_coverage(str(path))
    assert (c["trajectories"], c["actions"], c["with_thought"]) == (2, 4, 2)
    assert c["per_type"] == {"put": 0.5, "heat": 0.5}
