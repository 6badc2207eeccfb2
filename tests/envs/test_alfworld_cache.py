"""ALFWorld's translation cache: the same game with and without it, misses counted, damaged files redone."""

from __future__ import annotations

import os
import pickle

import pytest

from sadcli.envs.alfworld_cache import TranslationCache, make_cache
from sadcli.errors import InputError


def _counting():
    calls = []

    def translate(domain, problem, verbose=False, optimize=False):
        calls.append((domain, problem, optimize))
        return {"task": [domain, problem]}, f"sas {domain} {problem} {optimize}"

    return translate, calls


def test_memoizes_by_content_and_returns_fresh_objects(tmp_path):
    translate, calls = _counting()
    cache = TranslationCache(tmp_path)
    a = cache.pddl2sas(translate, "dom", "prob")
    a[0]["task"].append("mutated by the caller")
    b = cache.pddl2sas(translate, "dom", "prob")
    assert b == ({"task": ["dom", "prob"]}, "sas dom prob False")  # a fresh copy, not the mutated object
    assert len(calls) == 1 and cache.hits == {"memory": 1, "disk": 0, "miss": 1}
    cache.pddl2sas(translate, "dom", "prob", optimize=True)  # another translation of the same text
    cache.pddl2sas(translate, "dom", "prob2")
    assert len(calls) == 3

    # a new process (new cache object) reads the files: no translation at all
    other = TranslationCache(tmp_path)
    assert other.pddl2sas(translate, "dom", "prob", optimize=True)[1] == "sas dom prob True"
    assert len(calls) == 3 and other.hits == {"memory": 0, "disk": 1, "miss": 0}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 3 and not [p for p in files if p.name.startswith(".tmp-")]  # renamed into place


def test_memory_only_and_lru_bound(tmp_path):
    translate, calls = _counting()
    cache = make_cache("memory")
    assert cache.directory is None
    for p in ["p1", "p2", "p1"]:
        cache.pddl2sas(translate, "d", p)
    assert len(calls) == 2
    small = TranslationCache(None, memory=1)
    for p in ["p1", "p2", "p1"]:
        small.pddl2sas(translate, "d", p)
    assert len(calls) == 5  # p1 was evicted by p2
    assert make_cache("off") is None
    with pytest.raises(ValueError):
        make_cache("sometimes")


def test_damaged_file_is_recomputed_and_rewritten(tmp_path):
    translate, calls = _counting()
    TranslationCache(tmp_path).pddl2sas(translate, "d", "p")
    (path,) = [p for p in tmp_path.rglob("*.pkl.z")]
    path.write_bytes(b"half a file")
    fresh = TranslationCache(tmp_path)
    assert fresh.pddl2sas(translate, "d", "p")[1] == "sas d p False"
    assert len(calls) == 2
    assert pickle.loads(__import__("zlib").decompress(path.read_bytes()))[1] == "sas d p False"


def test_unwritable_folder_only_costs_speed(tmp_path):
    translate, calls = _counting()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = TranslationCache(blocker / "cache")
    assert cache.pddl2sas(translate, "d", "p")[1] == "sas d p False"
    assert cache.pddl2sas(translate, "d", "p")[1] == "sas d p False"
    assert len(calls) == 1  # the memory layer still serves it


alfworld = pytest.importorskip("alfworld", reason="ALFWorld is an optional extra: pip install 'sad[envs]'")


def test_unknown_cache_mode_is_a_clean_error(shared):
    from sadcli.envs.alfworld import ALFWorldEnv

    with pytest.raises(InputError, match="unknown ALFWorld cache"):
        ALFWorldEnv(str(shared("alfworld")), cache="always")


def _play(env, task, steps: int) -> list:
    """Observation, admissible commands and won flag after the reset and each expert step."""
    trace = [(env.reset(task), env.admissible_actions(), env.success())]
    for _ in range(steps):
        act = env.expert_action()
        if act is None:
            break
        tr = env.step(act)
        trace.append((act, tr.observation, env.admissible_actions(), tr.done))
        if tr.done:
            break
    return trace


@pytest.mark.slow
def test_cached_resets_play_the_same_game(shared, tmp_path, monkeypatch):
    from sadcli.envs.alfworld import ALFWorldEnv

    data = str(shared("alfworld"))
    monkeypatch.setenv("SAD_HOME", str(tmp_path))
    plain = ALFWorldEnv(data, cache="off")
    by_type = {}
    for t in plain.tasks("valid_unseen"):
        by_type.setdefault(t.meta["task_type"], t)
    tasks = [by_type[k] for k in ("pick_heat_then_place_in_recep", "pick_two_obj_and_place",
                                  "look_at_obj_in_light")]
    cold = ALFWorldEnv(data)  # cache=disk under $SAD_HOME
    assert str(cold._cache.directory).startswith(str(tmp_path))
    for task in tasks:
        reference = _play(plain, task, 8)
        assert len(reference) > 3
        before = dict(cold._cache.hits)
        assert _play(cold, task, 8) == reference
        # one reset asks for 4 translations (plain + replanning, at load and at reset) and 1 grammar parse;
        # no planner is used, so the replanning ones get the plain translation: 2 misses, 3 memory hits
        assert cold._cache.hits["miss"] - before["miss"] == 2
        assert cold._cache.hits["memory"] - before["memory"] == 3
        warm = ALFWorldEnv(data)  # a new worker: everything from disk
        assert _play(warm, task, 8) == reference
        assert warm._cache.hits["miss"] == 0 and warm._cache.hits["disk"] == 2
        warm.close()
    full = ALFWorldEnv(data, cache="memory")
    full._cache.replan = True  # the replanning translation made too (as textworld does): same game
    assert _play(full, tasks[0], 8) == _play(plain, tasks[0], 8)
    assert full._cache.hits["miss"] == 3 and full._cache.hits["memory"] == 2
    full.close()
    assert os.listdir(tmp_path / "alfworld-cache")
    plain.close()
    cold.close()
