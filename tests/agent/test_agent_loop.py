"""The agent loop with a plugin environment: in-process and worker processes, batching, faults."""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sadcli.agent.loop import Decision, EnvPool, run_episodes
from sadcli.envs.base import PromptTemplate, Task, split_react
from sadcli.envs.registry import EnvSpec, parse_env_opts
from sadcli.errors import InputError
from sadcli.teachers import make_teacher

COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"


def _run(pool, policy, n=None, **kw):
    tasks = pool.tasks("train")[:n] if n else pool.tasks("train")
    return list(run_episodes(pool, tasks, policy, **kw))


def test_plugin_env_in_process_expert():
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 4}), 1, in_process=True) as pool:
        assert pool.info.name == "counter"
        assert pool.info.prompt.examples[0]["task"] == "Count to 2."
        recs = _run(pool, make_teacher("expert"))
    assert [r["id"] for r in recs] == [f"counter/train/{2 + i % 3}/{i}" for i in range(4)]
    for r in recs:
        assert r["schema"] == 1 and r["success"] is True and r["reward"] == 1.0
        n = int(r["meta"]["game"])
        assert [s["action"] for s in r["steps"]] == [f"say[{k}]" for k in range(1, n + 1)]
        assert r["steps"][0]["reason"] == f"I have said 0 of {n} numbers, so next is 1."
        assert r["steps"][-1]["observation"] == f"Done: you counted to {n}."
        assert r["meta"]["invalid_actions"] == 0 and r["meta"]["parity"] in (0, 1)
        assert r["task"] == f"Count to {n}." and r["teacher"] == "expert"


def test_worker_processes_give_the_same_episodes():
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 5}), 1, in_process=True) as pool:
        local = {r["id"]: r["steps"] for r in _run(pool, make_teacher("expert"))}
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 5}), 3) as pool:
        remote = {r["id"]: r["steps"] for r in _run(pool, make_teacher("expert"))}
    assert local == remote


class Scripted:
    """A policy that answers from a function of the state and records the batch sizes it was asked for."""

    name = "scripted"

    def __init__(self, fn):
        self.fn, self.batches = fn, []

    def act(self, states):
        self.batches.append(len(states))
        return [self.fn(s) for s in states]


def test_policy_sees_all_active_episodes_in_one_batch():
    pol = Scripted(lambda s: Decision(f"say[{len(s.steps) + 1}]"))
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 6}), 3, in_process=True) as pool:
        recs = _run(pool, pol)
    assert all(r["success"] for r in recs)
    assert max(pol.batches) == 3 and pol.batches[0] == 3


def test_unparseable_output_is_an_invalid_action_answered_by_the_env():
    def fn(s):
        if not s.steps:
            return Decision("I am not sure what to do", reason=None, raw="I am not sure what to do")
        return Decision(f"say[{sum(1 for x in s.steps if x['observation'].endswith('said.')) + 1}]")
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 1}), 1, in_process=True) as pool:
        (rec,) = _run(pool, Scripted(fn))
    first = rec["steps"][0]
    assert first["observation"] == "Invalid action: I am not sure what to do"
    assert first["raw"] == "I am not sure what to do"
    assert rec["meta"]["invalid_actions"] == 1 and rec["success"] is True


def test_step_budget_truncates():
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 1}), 1, in_process=True) as pool:
        (rec,) = _run(pool, Scripted(lambda s: Decision("say[x]")), max_steps=3)
    assert rec["meta"]["steps"] == 3 and rec["meta"]["truncated"] is True and rec["success"] is False


@pytest.mark.parametrize("in_process", [True, False])
def test_env_exception_fails_only_that_episode(in_process):
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 4, "raise_on": "3/1"}), 2, in_process=in_process) as pool:
        recs = {r["id"]: r for r in _run(pool, make_teacher("expert"))}
    bad = recs["counter/train/3/1"]
    assert bad["success"] is False and "the counter broke" in bad["meta"]["error"]
    assert all(r["success"] for k, r in recs.items() if k != "counter/train/3/1")
    assert len(recs) == 4


def test_dead_worker_is_restarted_and_its_episode_fails(tmp_path):
    opts = {"games": 5, "crash_on": "4/2"}
    with EnvPool(EnvSpec.parse(COUNTER, opts), 2) as pool:
        recs = {r["id"]: r for r in _run(pool, make_teacher("expert"))}
        assert pool.restarts == 1
    bad = recs["counter/train/4/2"]
    assert bad["success"] is False and "worker died" in bad["meta"]["error"]
    assert sum(r["success"] for r in recs.values()) == 4 and len(recs) == 5


def test_policy_error_fails_the_episode_not_the_run():
    def fn(s):
        if s.task.seed == 1:
            return Decision("", error="endpoint timed out")
        return Decision(f"say[{len(s.steps) + 1}]")
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 3}), 2, in_process=True) as pool:
        recs = {r["meta"]["seed"]: r for r in _run(pool, Scripted(fn))}
    assert "endpoint timed out" in recs[1]["meta"]["error"] and recs[1]["steps"] == []
    assert recs[0]["success"] and recs[2]["success"]


def test_bad_specs_are_clean_errors(tmp_path):
    with pytest.raises(InputError, match="unknown environment"):
        EnvSpec.parse("no-such-env")
    with pytest.raises(InputError, match="no such file"):
        EnvSpec.parse(str(tmp_path / "nope.py") + ":make").make()
    p = tmp_path / "notenv.py"
    p.write_text("def make(**kw):\n    return object()\n")
    with pytest.raises(InputError, match="lacks tasks, reset, step, close"):
        EnvSpec.parse(f"{p}:make").make()
    with pytest.raises(InputError, match="no attribute"):
        EnvSpec.parse(f"{p}:other").make()
    with pytest.raises(InputError, match="bad --env-opt"):
        parse_env_opts(["novalue"])
    assert parse_env_opts(["a=1", "b=0.5", "c=true", "d=x y", "e-f=none"]) == \
        {"a": 1, "b": 0.5, "c": True, "d": "x y", "e_f": None}


def test_split_react_and_prompt_render():
    assert split_react(" I see a mug.\nAction: take mug 1 from desk 1\n") == ("I see a mug.", "take mug 1 from desk 1")
    assert split_react("Thought: hmm\nAction: look") == ("hmm", "look")
    assert split_react("Action 3: search[x]") == (None, "search[x]")
    assert split_react("just words") == ("just words", None)
    p = PromptTemplate("Do it.", [{"task": "T0", "steps": [{"reason": "r", "action": "a", "observation": "o"}]}])
    text = p.render("T1", [{"reason": None, "action": "b", "observation": "ob"}])
    assert text == "Do it.\n\nExample 1:\nT0\nThought: r\nAction: a\nObservation: o\n\nNow it is your turn.\n" \
                   "T1\nAction: b\nObservation: ob\nThought:"
    msgs = p.messages("T1", [{"reason": "x", "action": "b", "observation": "ob"}], examples=False)
    assert msgs == [{"role": "system", "content": "Do it."}, {"role": "user", "content": "T1"},
                    {"role": "assistant", "content": "Thought: x\nAction: b"},
                    {"role": "user", "content": "Observation: ob"}]
    t = Task("e", "s", "g", 3)
    assert t.id == "e/s/g/3" and Task.from_dict(t.to_dict()) == t


line = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40)


@given(line, line)
def test_split_react_recovers_thought_and_action(thought, action):
    if thought.strip().lower().startswith(("thought", "think", "action")) or ":" in thought:
        return
    reason, act = split_react(f" {thought}\nAction: {action}\n")
    assert reason == (thought.strip() or None)
    assert act == (action.strip() or None)


def test_hanging_env_times_out_and_its_worker_is_restarted():
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 2, "delay": 3}), 1, timeout=0.5) as pool:
        recs = _run(pool, make_teacher("expert"), n=1)
        assert pool.restarts == 1
    assert "did not answer within 0.5 s" in recs[0]["meta"]["error"] and not recs[0]["success"]


def test_pool_resize():
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 4}), 1) as pool:
        pool.resize(3)
        assert len(pool.slots) == 3
        recs = _run(pool, make_teacher("expert"))
        pool.resize(1)
        assert len(pool.slots) == 1
        assert len(_run(pool, make_teacher("expert"))) == 4
    assert all(r["success"] for r in recs)
