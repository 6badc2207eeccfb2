"""Expert thoughts in the real environments: 0 grounding violations over hundreds of episodes (issue 10).

Counts: 200 TextWorld Commonsense games, 102 ALFWorld games (17 of each of the six task types), 50
ScienceWorld episodes (the first 50 of the train split: 30 tasks, then variation 1 of 20 of them).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from grounding_checker import check_record, stats

from sadcli.agent.loop import EnvPool, run_episodes
from sadcli.envs.registry import EnvSpec
from sadcli.teachers import make_teacher


def play(env: str, options: dict, pick, parallel: int = 2) -> list[dict]:
    with EnvPool(EnvSpec.parse(env, options), parallel) as pool:
        tasks = pick(pool)
        return list(run_episodes(pool, tasks, make_teacher("expert")))


def assert_grounded(records: list[dict]) -> dict:
    violations = [v for r in records for v in check_record(r)]
    assert not violations, "\n".join(map(str, violations[:20]))
    return stats(records)


@pytest.mark.slow
def test_twc_expert_thoughts_are_grounded():
    pytest.importorskip("textworld_express", reason="TextWorldExpress is an optional extra: pip install 'sad[envs]'")
    records = play("twx", {"game": "twc"}, lambda pool: pool.tasks("train")[:200])
    assert len(records) == 200 and all(r["success"] for r in records)
    s = assert_grounded(records)
    assert s["coverage"] > 0.5 and s["distinct"] > 0.3 * s["with_reason"]


@pytest.mark.slow
def test_alfworld_expert_thoughts_are_grounded_and_searches_do_not_loop(shared):
    pytest.importorskip("alfworld", reason="ALFWorld is an optional extra: pip install 'sad[envs]'")
    data = str(shared("alfworld"))

    def pick(pool):
        by_type = defaultdict(list)
        for t in pool.tasks("valid_unseen"):
            by_type[t.meta["task_type"]].append(t)
        assert len(by_type) == 6
        return [t for ts in by_type.values() for t in ts[:17]]

    records = play("alfworld", {"data_dir": data}, pick)
    assert len(records) == 102
    assert sum(r["success"] for r in records) >= 90
    s = assert_grounded(records)
    assert s["coverage"] > 0.2
    for r in records:
        acts = [st["action"] for st in r["steps"]]
        assert r["steps"][0]["reason"].startswith("To solve the task, I need to find and take")
        assert all(a != b for a, b in zip(acts, acts[1:], strict=False)), r["id"]  # no action repeated in a row
        visits = Counter(a for a in acts if a.startswith(("go to", "examine")))
        assert max(visits.values()) <= 3, (r["id"], visits.most_common(2))  # search once; return, deliver
        for i, st in enumerate(r["steps"]):
            if st["action"].startswith("take "):  # found something: a thought, as in ReAct
                assert st["reason"] and st["reason"].startswith("Now I find"), (r["id"], i)


@pytest.mark.slow
def test_scienceworld_expert_thoughts_are_grounded():
    pytest.importorskip("scienceworld", reason="ScienceWorld is an optional extra: pip install 'sad[envs]'")
    records = play("scienceworld", {}, lambda pool: pool.tasks("train")[:50])
    assert len(records) == 50
    s = assert_grounded(records)
    assert s["with_reason"] >= 50  # at least the opening thought of every episode
