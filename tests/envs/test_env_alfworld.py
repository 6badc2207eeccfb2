"""ALFWorld: the real games from ../shared/data/alfworld, played offline by the search expert (or the handcoded one)."""

from __future__ import annotations

import re

import pytest

from sadcli.agent.loop import EnvPool, run_episodes
from sadcli.envs.registry import EnvSpec
from sadcli.errors import InputError
from sadcli.teachers import make_teacher

pytest.importorskip("alfworld", reason="ALFWorld is an optional extra: pip install 'sad[envs]'")


@pytest.fixture
def data(shared):
    return str(shared("alfworld"))


def test_splits_and_filters(data):
    from sadcli.envs.alfworld import list_games

    unseen = list_games(data, "valid_unseen")
    assert len(unseen) == 134  # ALFWorld's standard out-of-distribution evaluation set
    assert len({t.id for t in unseen}) == 134
    assert all(not re.search("movable|Sliced", t.game) for t in unseen)
    heat = list_games(data, "valid_unseen", "heat")
    assert heat and all(t.meta["task_type"] == "pick_heat_then_place_in_recep" for t in heat)
    two = list_games(data, "valid_unseen", ["puttwo", "examine"])
    assert {t.meta["task_type"] for t in two} == {"pick_two_obj_and_place", "look_at_obj_in_light"}
    assert len(list_games(data, "valid_seen")) > 100 and len(list_games(data, "train")) > 400
    with pytest.raises(InputError, match="unknown ALFWorld split"):
        list_games(data, "test")
    with pytest.raises(InputError, match="unknown ALFWorld task type"):
        list_games(data, "train", "fly")


def test_missing_data_dir_is_a_clean_error(tmp_path, monkeypatch):
    from sadcli.envs.alfworld import find_data_dir

    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(InputError, match="no ALFWorld data folder"):
        find_data_dir(None)
    with pytest.raises(InputError, match="has no json_2.1.1"):
        find_data_dir(str(tmp_path))


def test_env_data_from_environment_variable(data, monkeypatch):
    from sadcli.envs.alfworld import ALFWorldEnv

    monkeypatch.setenv("ALFWORLD_DATA", data)
    env = ALFWorldEnv(task_types="cool")
    assert env.root == data and env.max_steps == 50  # ReAct's budget
    assert all(t.meta["task_type"] == "pick_cool_then_place_in_recep" for t in env.tasks("valid_seen"))


@pytest.mark.slow
def test_expert_plays_real_games_with_informative_reasoning(data):
    opts = {"data_dir": data, "task_types": "heat,puttwo,clean"}
    with EnvPool(EnvSpec.parse("alfworld", opts), 1, in_process=True) as pool:
        tasks = pool.tasks("valid_unseen")
        by_type = {}
        for t in tasks:
            by_type.setdefault(t.meta["task_type"], t)
        recs = list(run_episodes(pool, list(by_type.values()), make_teacher("expert")))
    assert len(recs) == 3
    assert all(r["success"] for r in recs)
    for r in recs:
        assert r["env"] == "alfworld" and r["id"].startswith("alfworld/valid_unseen/")
        assert "Your task is to:" in r["task"] and "Welcome" not in r["task"]
        assert not any("You arrive at loc" in (s["observation"] or "") for s in r["steps"])
        reasons = [s["reason"] for s in r["steps"] if s["reason"]]
        assert reasons[0].startswith("To solve the task, I need to find and take")
        # reasoning is not constant filler: it names what the next action acts on
        assert len(set(reasons)) == len(reasons)
        for s in r["steps"]:
            if s["action"].startswith("take ") and s["reason"]:
                obj = s["action"].split(" from ")[0][5:]
                name, num = obj.rsplit(" ", 1)
                assert f"{name} ({num})" in s["reason"] and "Next, I need to take it." in s["reason"]
        # routine steps may have no reasoning, as in ReAct
        assert any(s["reason"] is None for s in r["steps"])
        if r["success"]:
            assert r["reward"] == 1.0 and r["meta"]["invalid_actions"] == 0


@pytest.mark.slow
def test_expert_episodes_are_the_same_from_run_to_run(data):
    runs = []
    for in_process in (True, False):
        with EnvPool(EnvSpec.parse("alfworld", {"data_dir": data}), 1, in_process=in_process) as pool:
            tasks = pool.tasks("valid_unseen")[30:32]
            runs.append({r["id"]: r["steps"] for r in run_episodes(pool, tasks, make_teacher("expert"))})
    assert runs[0] == runs[1]


def test_unknown_expert_is_a_clean_error(data):
    from sadcli.envs.alfworld import ALFWorldEnv

    with pytest.raises(InputError, match="unknown ALFWorld expert"):
        ALFWorldEnv(data_dir=data, expert="oracle")


@pytest.mark.slow
def test_handcoded_expert_is_still_available(data):
    opts = {"data_dir": data, "expert": "handcoded", "task_types": "put"}
    with EnvPool(EnvSpec.parse("alfworld", opts), 1, in_process=True) as pool:
        (rec,) = run_episodes(pool, pool.tasks("valid_unseen")[:1], make_teacher("expert"))
    assert rec["steps"] and all(s["reason"] is None for s in rec["steps"])  # no intent to explain
