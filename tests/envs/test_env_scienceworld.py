"""ScienceWorld: real tasks in the JVM (heap capped), gold paths, score."""

from __future__ import annotations

import os

import pytest

from sadcli.agent.loop import EnvPool, run_episodes
from sadcli.envs.registry import EnvSpec
from sadcli.errors import InputError
from sadcli.teachers import make_teacher

pytest.importorskip("scienceworld", reason="ScienceWorld is an optional extra: pip install 'sad[envs]'")


@pytest.mark.slow
def test_expert_solves_real_tasks_in_capped_workers():
    with EnvPool(EnvSpec.parse("scienceworld", {"task": "find-living-thing,4"}), 2) as pool:
        tasks = pool.tasks("dev")
        assert [t.game for t in tasks[:2]] == ["find-living-thing", "chemistry-mix-paint-tertiary-color"]
        recs = list(run_episodes(pool, tasks[:2], make_teacher("expert")))
    assert sum(r["success"] for r in recs) == 2
    for r in recs:
        assert r["reward"] == pytest.approx(1.0) and r["meta"]["final_info"]["score"] == 100
        assert r["id"].startswith("scienceworld/dev/")
        assert "Your task is to" in r["task"]
        assert r["steps"][0]["reason"].startswith("The task is to ")
        focus = [s for s in r["steps"] if s["action"].startswith("focus on")]
        assert focus
        if focus[0]["reason"]:  # a thought only when the agent has seen what it focuses on
            assert all(w in focus[0]["reason"] for w in focus[0]["action"][9:].split())


def test_heap_cap_and_task_selection(monkeypatch):
    from sadcli.envs.scienceworld import ScienceWorldEnv
    from sadcli.envs.twx import _cap_jvm_heap

    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "")
    _cap_jvm_heap("1g")
    assert os.environ["JAVA_TOOL_OPTIONS"] == "-Xmx1g"
    _cap_jvm_heap("2g")  # an explicit cap is kept
    assert os.environ["JAVA_TOOL_OPTIONS"] == "-Xmx1g"
    names = ["boil", "melt", "freeze"]
    assert ScienceWorldEnv._select(names, None) == names
    assert ScienceWorldEnv._select(names, "2,boil") == ["freeze", "boil"]
    with pytest.raises(InputError, match="unknown ScienceWorld task"):
        ScienceWorldEnv._select(names, "fly")
