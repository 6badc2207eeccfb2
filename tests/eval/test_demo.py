"""`make demo`'s claim, checked without running it (minutes of CPU): the README shows the Makefile's commands,
the demo ends by checking its claim (the distilled student beats the undistilled one on span KL and action
match; examples/demo_claim.py, exit 1 if not) on the report of the Makefile's own `sad eval` command."""

from __future__ import annotations

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _joined(lines: list[str]) -> list[str]:
    """Shell lines with backslash continuations joined, whitespace collapsed."""
    out, cur = [], ""
    for raw in lines:
        line = raw.strip()
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(" ".join((cur + line).split()))
        cur = ""
    return out


def makefile_demo() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    body = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    cmds = [c for c in _joined(body.splitlines()) if c and not c.startswith("#") and not c.startswith("mkdir")]
    return [c.replace("$(BIN)/", "").replace("$(DEMO_DIR)", "demo") for c in cmds]


def readme_demo() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"`make demo` collects.*?```sh\n(.*?)```", text, re.S).group(1)
    return [re.sub(r"\s+# .*$", "", c) for c in _joined(block.splitlines()) if c]


def test_readme_shows_the_makefiles_demo_commands():
    assert readme_demo() == makefile_demo()


def _claim():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_claim", ROOT / "examples" / "demo_claim.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _report(kl_d, kl_u, k_d, k_u, n=41) -> dict:
    def model(kl, k):
        return {"reason": {"kl": kl[0]}, "act": {"kl": kl[1]},
                "action_match": {"k": k, "n": n, "rate": k / n, "ci95": [0.0, 1.0]}}
    return {"fidelity": {"models": {"distilled": model(kl_d, k_d), "undistilled": model(kl_u, k_u),
                                    "teacher": model((0.0, 0.0), 19)}}}


def test_the_demo_ends_with_its_claim_checked():
    made = makefile_demo()
    assert made[-1] == "python examples/demo_claim.py demo/eval.json --no-fail"
    ev = next(c for c in made if c.startswith("sad eval"))
    # the claim's inputs: the two students and the teacher, teacher-forced with generation, on held-out data
    for part in ("-m distilled=demo/student", "-m undistilled=init:demo/student", "-m teacher=teacher:demo/student",
                 "--data demo/heldout.seg.jsonl", "--report demo/eval.json"):
        assert part in ev
    assert "--no-generate" not in ev and "--reference teacher" not in ev
    # the held-out trajectories are expert trajectories (their actions are what action match compares with)
    assert any(c.startswith("sad collect --env twx --split dev --teacher expert") for c in made)


def test_demo_claim_verdicts():
    claim = _claim()
    holds, line = claim.verdict(_report((3.1, 2.9), (12.5, 13.3), 5, 0))
    assert holds and line.startswith("claim holds") and "5/41 = 12.2%" in line
    for bad in (_report((3.1, 2.9), (12.5, 13.3), 0, 0),      # action match only ties
                _report((13.1, 2.9), (12.5, 13.3), 5, 0),     # reasoning KL not lower
                _report((3.1, 2.9), (12.5, 13.3), 1, 2)):
        holds, line = claim.verdict(bad)
        assert not holds and line.startswith("claim does NOT hold")
    assert not claim.verdict({"fidelity": {"models": {}}})[0]


def test_demo_claim_exit_status(tmp_path, capsys):
    claim = _claim()
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_report((3.1, 2.9), (12.5, 13.3), 5, 0)))
    bad.write_text(json.dumps(_report((3.1, 2.9), (12.5, 13.3), 0, 0)))
    assert claim.main([str(good)]) == 0
    assert claim.main([str(bad)]) == 1
    assert claim.main([str(bad), "--no-fail"]) == 0  # make demo: the verdict is printed, the demo is not broken
    assert claim.main([str(tmp_path / "missing.json")]) == 1
    assert "Error: " in capsys.readouterr().err


def test_demo_claim_reports_the_paired_test_of_action_match():
    """With the report's paired exact McNemar test, the verdict names its p-value and the discordant steps
    from the distilled student's side (5 steps only it matched, 0 only the undistilled one: p = 2 / 2**5)."""
    claim = _claim()
    rep = _report((3.1, 2.9), (12.5, 13.3), 5, 0)
    rep["fidelity"]["action_pairs"] = [{"a": "undistilled", "b": "distilled", "n": 41, "a_only": 0, "b_only": 5,
                                        "p_value": 0.0625}]
    holds, line = claim.verdict(rep)
    assert holds and "McNemar p = 0.0625 (5 steps only distilled matched, 0 only undistilled; not significant" in line
    rep["fidelity"]["action_pairs"][0].update(b_only=7, p_value=2 / 2 ** 7)
    assert "; significant at 0.05" in claim.verdict(rep)[1]
