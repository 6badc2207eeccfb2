"""TextWorldExpress: real games in the JVM, gold paths, seeded folds."""

from __future__ import annotations

import pytest

from sadcli.agent.loop import Decision, EnvPool, run_episodes
from sadcli.envs.registry import EnvSpec
from sadcli.errors import InputError
from sadcli.teachers import make_teacher

pytest.importorskip("textworld_express", reason="TextWorldExpress is an optional extra: pip install 'sad[envs]'")


@pytest.fixture(scope="module")
def env():
    from sadcli.envs.twx import TWXEnv

    e = TWXEnv(game="twc")
    yield e
    e.close()


def test_folds_are_disjoint_and_stable(env):
    train, dev, test = env.tasks("train"), env.tasks("dev"), env.tasks("test")
    assert train and dev and test
    seeds = [{t.seed for t in f} for f in (train, dev, test)]
    assert not (seeds[0] & seeds[1]) and not (seeds[0] & seeds[2]) and not (seeds[1] & seeds[2])
    assert train[0].id == f"twx/train/twc/{train[0].seed}"
    with pytest.raises(InputError, match="unknown TextWorldExpress fold"):
        env.tasks("valid")


def test_reset_gives_task_and_expert(env):
    task = env.tasks("dev")[0]
    obs = env.reset(task)
    assert "Your task is to" in obs and obs.startswith("You are in")
    assert env.expert_action() and env.expert_action() != "look around"
    assert env.admissible_actions() and "inventory" in env.admissible_actions()
    tr = env.step("fly to the moon")
    assert tr.info["invalid"] and not tr.done and env.expert_action() is None  # off the gold path now


def test_unknown_game_is_a_clean_error():
    from sadcli.envs.twx import TWXEnv

    with pytest.raises(InputError, match="unknown TextWorldExpress game"):
        TWXEnv(game="zork")


@pytest.mark.slow
def test_expert_episodes_succeed_with_reasoning():
    with EnvPool(EnvSpec.parse("twx", {"game": "twc"}), 2) as pool:
        tasks = pool.tasks("train")[:4]
        recs = list(run_episodes(pool, tasks, make_teacher("expert")))
    assert sorted(r["id"] for r in recs) == sorted(t.id for t in tasks)
    assert sum(r["success"] for r in recs) >= 3
    for r in recs:
        if r["success"]:
            assert r["reward"] == pytest.approx(1.0)
        takes = [s for s in r["steps"] if s["action"].startswith("take ")]
        for s in takes:
            obj = s["action"][5:]
            assert s["reason"].startswith(f"The usual place of the {obj} is the ")
        puts = [s["action"] for s in r["steps"] if s["action"].startswith("put ")]
        # the place named when taking is where the object is later put
        for s in takes:
            dest = s["reason"].split(" is the ")[1].split(", not here")[0]
            assert f"put {s['action'][5:]} in {dest}" in puts or f"put {s['action'][5:]} on {dest}" in puts


@pytest.mark.slow
def test_other_game_and_invalid_policy():
    class Garbage:
        name = "garbage"

        def act(self, states):
            return [Decision("dance wildly", raw="dance wildly") for _ in states]

    with EnvPool(EnvSpec.parse("twx", {"game": "coin"}), 1, in_process=True) as pool:
        recs = list(run_episodes(pool, pool.tasks("test")[:1], Garbage(), max_steps=3))
    (r,) = recs
    assert r["id"].startswith("twx/test/coin/") and r["meta"]["invalid_actions"] == 3
    assert not r["success"] and r["meta"]["truncated"]


def test_drop_back_and_forth():
    from sadcli.envs.twx import drop_back_and_forth

    assert drop_back_and_forth(["look around", "move north", "move south", "take a", "move east", "move north",
                                "move south", "move west", "put a in b"]) == ["look around", "take a", "put a in b"]
    assert drop_back_and_forth(["move north", "take a", "move south"]) == ["move north", "take a", "move south"]


@pytest.mark.slow
def test_episodes_are_the_same_from_run_to_run():
    runs = []
    for in_process in (True, False):
        with EnvPool(EnvSpec.parse("twx", {"game": "twc"}), 1, in_process=in_process) as pool:
            recs = run_episodes(pool, pool.tasks("train")[:8], make_teacher("expert"))
            runs.append({r["id"]: r["steps"] for r in recs})
    assert runs[0] == runs[1]
