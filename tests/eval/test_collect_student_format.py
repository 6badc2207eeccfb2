"""``sad collect --teacher hf:DIR`` on a ``sad distill`` output prompts it in its training format, as
``sad eval --model DIR`` does; ``sad distill`` records the segment markers in sad_config.json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sadcli.cli import app
from sadcli.sadformat import read_sad_config

from .conftest import COUNTER, segmented, write_jsonl  # noqa: TID252

runner = CliRunner()


def _steps(path):
    with open(path, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return {r["id"]: [(s["action"], s.get("reason"), s.get("raw")) for s in r["steps"]] for r in recs}


def test_distill_records_markers(student_dir, tmp_path, tiny_teacher):
    assert read_sad_config(student_dir)["data"]["markers"] == "paper"
    seg = write_jsonl(tmp_path / "native.jsonl", segmented(4, markers="native"))
    out = tmp_path / "s"
    r = runner.invoke(app, ["distill", seg, "--teacher", tiny_teacher, "--student-layers", "1", "--max-steps", "1",
                            "--batch-size", "2", "--max-length", "256", "-q", "-o", str(out)], prog_name="sad")
    assert r.exit_code == 0, r.output
    assert read_sad_config(str(out))["data"]["markers"] == "native"


def test_collect_prompts_a_student_as_eval_does(student_dir, tmp_path):
    from sadcli.teachers import make_teacher
    from sadcli.teachers.hf import FormatTeacher

    t = make_teacher(f"hf:{student_dir}", max_new_tokens=8)
    assert isinstance(t, FormatTeacher) and t.fmt.markers.name == "paper" and t.fmt.render == "text"
    from sadcli.agent.loop import EpisodeState
    from sadcli.envs.base import PromptTemplate, Task

    st = EpisodeState(Task("counter", "train", "2", 0), "counter", PromptTemplate("Count up."), task_text="Count to 2.",
                      steps=[{"reason": "I start.", "action": "say[1]", "observation": "1 said."}])
    p = t.prompt(st)
    assert "[REASON] I start.\n[ACT] say[1]\n[OBS] 1 said.\n" in p and "Thought:" not in p and p.endswith("\n")
    collected = tmp_path / "collect.jsonl"
    r = runner.invoke(app, ["collect", "--env", COUNTER, "--env-opt", "games=3", "--episodes", "3", "--max-steps", "3",
                            "--parallel", "2", "--teacher", f"hf:{student_dir}", "--teacher-opt", "max_new_tokens=12",
                            "--teacher-opt", "device=cpu", "-o", str(collected), "-q"], prog_name="sad")
    assert r.exit_code == 0, r.output
    evaluated = tmp_path / "eval.jsonl"
    r = runner.invoke(app, ["eval", "--model", student_dir, "--env", COUNTER, "--env-opt", "games=3", "--episodes", "3",
                            "--max-steps", "3", "--parallel", "2", "--max-new-tokens", "12", "-o", str(evaluated), "-q"],
                      prog_name="sad")
    assert r.exit_code == 0, r.output
    a, b = _steps(collected), _steps(evaluated)
    assert a == b and len(a) == 3 and sum(len(v) for v in a.values()) >= 3
