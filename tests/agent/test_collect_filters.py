"""Collection-side filters: --max-steps (budget, counted), --max-repeats (expert loops dropped, counted)."""

from __future__ import annotations

import json
import pathlib

from typer.testing import CliRunner

from sadcli.agent.collect import CollectStats, collect, max_repeat
from sadcli.agent.loop import Decision, EnvPool
from sadcli.cli import app
from sadcli.envs.registry import EnvSpec

COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"


class Stutter:
    """Says every number twice (the second time is an invalid no-op), like a looping expert."""

    name = "stutter"

    def act(self, states):
        return [Decision(f"say[{len(st.steps) // 2 + 1}]") for st in states]


def test_max_repeat_counts_the_most_repeated_action():
    assert max_repeat({"steps": []}) == 0
    steps = [{"action": a} for a in ["go to desk 1", "examine desk 1", "examine desk 1", "go to desk 1",
                                     "examine desk 1"]]
    assert max_repeat({"steps": steps}) == 3


def test_max_repeats_drops_looping_episodes_and_counts_them():
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 3}), 1, in_process=True) as pool:
        tasks = pool.tasks("train")
        stats = CollectStats()
        kept = list(collect(pool, tasks, Stutter(), max_repeats=1, stats=stats))
        assert kept == [] and stats.repeated == 3 and stats.done == 3 and stats.written == 0
        stats = CollectStats()
        kept = list(collect(pool, tasks, Stutter(), max_repeats=2, stats=stats))
        assert len(kept) == 3 and stats.repeated == 0
        assert all(max_repeat(r) == 2 for r in kept)


def test_cli_filters_are_counted_in_the_summary(tmp_path):
    out = tmp_path / "c.jsonl"
    r = CliRunner().invoke(app, ["collect", "--env", COUNTER, "-n", "6", "--max-steps", "2", "--only-success",
                                 "--max-repeats", "1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    # games count to 2, 3, 4: only the "2" games finish within 2 steps
    assert [x["meta"]["steps"] for x in recs] == [2, 2]
    assert "4 reached the step budget (--max-steps)" in r.stderr
    assert "4 unsuccessful filtered out (--only-success)" in r.stderr
