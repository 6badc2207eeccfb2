"""examples/reproduce/: the grid, the report renderer (against hand computations) and, slow, the tiny preset
end to end (every stage, through the public CLI)."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "examples" / "reproduce"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"reproduce_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


run = load("run")
render = load("render")


def test_runner_uses_only_the_standard_library():
    tree = ast.parse((HERE / "run.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names


@pytest.mark.parametrize("preset", ["tiny", "cpu", "gpu"])
def test_presets_parse_and_name_a_distinct_student_per_label(preset):
    cfg = tomllib.loads((HERE / f"{preset}.toml").read_text())
    plan = run.students(cfg["grid"])
    labels = [s["label"] for s in plan]
    assert len(labels) == len(set(labels))
    g = cfg["grid"]
    expected = len(g["seeds"]) * (len(g["layers"]) * (len(g["objectives"]) + len(g["lambdas"])
                                                      + int(g["curriculum_off"]) + len(g["span_vocab"]))
                                  + len(g["extra_layers"]) * len(g["main_objectives"]))
    assert len(plan) == expected
    assert cfg["env"] and all({"name", "env", "train_split", "eval_split"} <= set(e) for e in cfg["env"])


def test_gpu_grid_is_the_full_grid():
    cfg = tomllib.loads((HERE / "gpu.toml").read_text())
    assert {e["name"] for e in cfg["env"]} == {"alfworld", "twc", "webshop", "hotpotqa"}
    assert set(cfg["grid"]["objectives"]) == {"sad", "token-kd", "kd", "seqkd", "flat", "random-spans",
                                             "only-reason", "only-act"}
    assert len(cfg["grid"]["seeds"]) >= 3
    alf = next(e for e in cfg["env"] if e["name"] == "alfworld")
    assert alf["eval_split"] == "valid_unseen" and alf["eval_episodes"] == 134


def test_episodes_needed_matches_the_hand_computed_formula():
    # Fleiss: p1 = .5, p2 = .47, pbar = .485; (1.959964 * sqrt(2 * .485 * .515) + 0.841621 * sqrt(.25 + .2491))^2
    # / .03^2 = 4355.3 -> 4356
    assert render.episodes_needed(0.5) == 4356
    assert render.episodes_needed(0.9) < render.episodes_needed(0.5)


def fake_eval(label, kind, layers, seed, wins):
    n = len(wins)
    k = sum(wins)
    return {"label": label, "kind": kind, "layers": layers, "seed": seed, "loss": label.split("-")[1],
            "command": f"sad eval -m {label}=X", "env": "twx", "split": "test", "step_cap": 3,
            "rollouts": {"success": {"k": k, "n": n, "rate": k / n, "ci95": [0, 1]}, "reason_tokens_per_span": 7.0,
                         "steps_mean": 3.0},
            "fidelity": {"action_match": {"k": 1, "n": 2, "rate": 0.5, "ci95": [0, 1]},
                         "cot_match": {"k": 0, "n": 2, "rate": 0.0, "ci95": [0, 1]}},
            "fidelity_data": {"examples": 1, "steps": 2},
            "episodes": [{"id": f"g{i}", "seed": 0, "success": w, "steps": 3} for i, w in enumerate(wins)]}


def write_results(tmp_path, sad_wins, kd_wins):
    d = tmp_path / "twc" / "tiny" / "eval"
    d.mkdir(parents=True)
    for seed in (0, 1):
        for label, wins in ((f"L2-sad-s{seed}", sad_wins), (f"L2-token-kd-s{seed}", kd_wins)):
            (d / f"{label}.json").write_text(json.dumps(fake_eval(label, "student", 2, seed, wins)))
    return tmp_path / "twc"


def test_report_pools_seeds_and_tests_against_sad_with_scipy(tmp_path):
    sad_wins = [True] * 20 + [False] * 10
    kd_wins = [False] * 25 + [True] * 5
    env_dir = write_results(tmp_path, sad_wins, kd_wins)
    text = render.render(env_dir)
    # pooled over 2 seeds x 30 games, Wilson interval from scipy
    lo, hi = render.wilson(40, 60)
    assert f"40/60 = 66.7% [{100 * lo:.1f}, {100 * hi:.1f}]" in text
    assert "10/60 = 16.7%" in text
    # McNemar on the 60 shared (seed, game) pairs: discordant 40 (sad only: games 0-19 x 2 seeds) vs 10
    from scipy.stats import binomtest
    p = binomtest(10, 50, 0.5).pvalue
    assert f"{p:.3g} (10 vs 40 discordant)" in text
    assert re.search(r"SAD beats token-level KD \| \*\*supports\*\*", text)
    assert "Table 3: SAD beats SeqKD | not in this grid" in text
    # reversed outcomes contradict the claim
    env2 = write_results(tmp_path / "b", kd_wins, sad_wins)
    assert re.search(r"SAD beats token-level KD \| \*\*contradicts\*\*", render.render(env2))
    # identical outcomes cannot resolve it
    env3 = write_results(tmp_path / "c", sad_wins, sad_wins)
    assert re.search(r"SAD beats token-level KD \| cannot resolve", render.render(env3))
    assert f"{render.episodes_needed(40 / 60)} per arm (have 60)" in render.render(env3)


def test_render_cli_writes_readme_and_says_which_presets_have_not_run(tmp_path):
    env_dir = write_results(tmp_path, [True, False], [False, False])
    r = subprocess.run([sys.executable, str(HERE / "render.py"), str(env_dir)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (env_dir / "README.md").read_text()
    assert "## Preset `gpu`" in text and "**Not run yet**" in text  # gpu.toml has a twc block; cpu.toml runs twc-1room
    assert (env_dir / "tiny-L2-success.png").stat().st_size > 0
    bad = subprocess.run([sys.executable, str(HERE / "render.py"), str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("Error:") and "Traceback" not in bad.stderr


def run_tiny(workdir: Path, results: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, str(HERE / "run.py"), str(HERE / "tiny.toml"), "--workdir", str(workdir),
           "--results", str(results)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)


def check_tiny_results(out: Path) -> None:
    """What the tiny preset must leave in ``results/twc``: every model evaluated, every stage recorded, the
    README carrying the JSON's numbers."""
    evals = sorted((out / "tiny" / "eval").glob("*.json"))
    assert {p.stem for p in evals} == {"teacher", "base", "L2-undistilled", "L2-sad-s0", "L2-token-kd-s0"}
    pipe = json.loads((out / "tiny" / "pipeline.json").read_text())
    assert set(pipe["stages"]) == {"expert", "teacher", "teacher_train", "teacher_heldout", "data", "cache"}
    text = (out / "README.md").read_text()
    for p in evals:
        e = json.loads(p.read_text())
        s = e["rollouts"]["success"]
        assert s["n"] == 2 and len(e["episodes"]) == 2
        assert f"{s['k']}/{s['n']} = {100 * s['rate']:.1f}%" in text
        assert e["fidelity"] is not None and e["command"].startswith("sad eval ")
    for label in ("L2-sad-s0", "L2-token-kd-s0"):
        curve = json.loads((out / "tiny" / "train" / f"{label}.json").read_text())["curve"]
        assert curve and all(not math.isnan(c["loss"]) for c in curve)
    tt = pipe["stages"]["teacher_train"]
    assert f"success {tt['successes']}/{tt['episodes']}" in text
    assert (out / "tiny-L2-success.png").stat().st_size > 0


@pytest.mark.slow
def test_tiny_preset_end_to_end(tmp_path):
    """Every stage of the reproduction through the public CLI; resumable: a second run runs nothing."""
    r = run_tiny(tmp_path / "work", tmp_path / "results")
    assert r.returncode == 0, r.stderr[-4000:]
    check_tiny_results(tmp_path / "results" / "twc")
    r2 = run_tiny(tmp_path / "work", tmp_path / "results")
    assert r2.returncode == 0 and "0 not evaluated yet" in r2.stderr and "$ sad" not in r2.stderr


def test_committed_tiny_results_render_to_the_committed_readme(tmp_path):
    """docs/results/twc holds the tiny preset's results; re-rendering them gives the committed README."""
    import shutil

    src = ROOT / "docs" / "results" / "twc"
    if not (src / "tiny" / "pipeline.json").exists():
        pytest.fail("docs/results/twc/tiny/ has no results: run examples/reproduce/run.py examples/reproduce/tiny.toml")
    shutil.copytree(src, tmp_path / "twc")
    check_tiny_results(tmp_path / "twc")
    assert render.render(tmp_path / "twc") == (src / "README.md").read_text()
