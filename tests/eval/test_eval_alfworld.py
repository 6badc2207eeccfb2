"""`sad eval` with the ALFWorld expert on real valid_unseen games: the harness reproduces collect's success."""

from __future__ import annotations

import pytest

from sadcli.agent.loop import EnvPool
from sadcli.envs.registry import EnvSpec
from sadcli.eval.policies import EvalGen, make_policy, parse_model
from sadcli.eval.rollouts import RolloutPlan, run_rollouts, step_cap
from sadcli.eval.summary import summarize

pytest.importorskip("alfworld", reason="ALFWorld is an optional extra: pip install 'sad[envs]'")


@pytest.mark.slow
def test_expert_on_20_valid_unseen_games(shared):
    opts = {"data_dir": str(shared("alfworld"))}
    with EnvPool(EnvSpec.parse("alfworld", opts), 2) as pool:
        cap = step_cap(pool.info.name, opts, pool.info.max_steps)
        assert cap == 50
        plan = RolloutPlan(pool.tasks("valid_unseen")[:20], [0], cap)
        recs = run_rollouts(pool, plan, [("expert", lambda s: make_policy(parse_model("expert"), EvalGen(), s))])
    s = summarize(recs)["models"]["expert"]
    assert s["episodes"] == 20
    # the collect tests report every expert episode won (tests/envs/test_env_alfworld.py); so does eval
    assert s["success"]["k"] == 20, s["terminations"]
    assert s["terminations"] == {"success": 20} and s["invalid_action_rate"] == 0.0
    assert len(s["task_types"]) == 2 and s["success"]["ci95"][0] > 0.8  # 20/20: Wilson lower bound 0.84
