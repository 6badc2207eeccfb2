"""WebShop text environment on the real 1,000 products: pages, search, goals, expert, grounding."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("bm25s", reason="WebShop search needs the webshop extra (bm25s)")
pytest.importorskip("rapidfuzz", reason="WebShop's reward needs the webshop extra (rapidfuzz)")

from sadcli.agent.loop import EnvPool, run_episodes  # noqa: E402
from sadcli.envs.base import Task  # noqa: E402
from sadcli.envs.registry import EnvSpec  # noqa: E402
from sadcli.envs.webshop import (  # noqa: E402
    TEST_GOALS,
    WebShopData,
    WebShopEnv,
    instruction_keywords,
)
from sadcli.errors import InputError  # noqa: E402
from sadcli.teachers.expert import ExpertTeacher  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "grounding"))
from grounding_checker import check_record  # noqa: E402
from react_grounding import ungrounded  # noqa: E402


@pytest.fixture
def data_dir(shared):
    return str(shared("webshop/products_1k_processed.jsonl").parent)


@pytest.fixture
def env(data_dir):
    return WebShopEnv(data_dir)


def play_expert(env: WebShopEnv, task: Task) -> int:
    env.reset(task)
    for k in range(env.max_steps):
        tr = env.step(env.expert_action())
        assert not tr.info.get("invalid")
        if tr.done:
            return k + 1
    return env.max_steps


def test_goals_split_and_determinism(data_dir, env):
    test, train = env.tasks("test"), env.tasks("train")
    assert len(test) == TEST_GOALS and len(train) == 6910 - TEST_GOALS
    assert not {t.id for t in test} & {t.id for t in train}
    # a fresh load (no cache) builds the same goals in the same order, with the same bounds
    again = WebShopData(data_dir).goals()
    assert [g.as_dict() for g in again] == [g.as_dict() for g in env.data.goals()]
    g = env.data.goals()[0]
    assert g.instruction.startswith(env.data.instructions[g.asin]["instruction"])
    assert re.search(r", and price lower than \d+\.00 dollars$", g.instruction) or g.price_upper == 1e6
    assert env.data.prices[g.asin] < g.price_upper
    for name, value in g.goal_options.items():
        assert f"{name}: {value}" in g.instruction and value in env.data.by_asin[g.asin]["options"][name]
    # the same query gives the same results, twice and from a second index
    q = instruction_keywords(g.instruction)
    assert env.data.search(q) == env.data.search(q) == WebShopData(data_dir).search(q)
    with pytest.raises(InputError, match="unknown WebShop split"):
        env.tasks("dev")


def test_pages_and_clicks(env):
    task = env.tasks("test")[0]
    obs = env.reset(task)
    goal = env.s.goal
    assert obs == f"WebShop [SEP] Instruction: [SEP] {goal.instruction} [SEP] Search"
    assert env.admissible_actions() == ["search[<query>]"]
    # clicking before searching does nothing
    tr = env.step("click[Buy Now]")
    assert tr.info["invalid"] and tr.observation == obs and not tr.done
    obs = env.step("search[shirt]").observation
    assert obs.startswith("Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > [SEP] ")
    page1 = env.admissible_actions()
    assert page1[:2] == ["click[Back to Search]", "click[Next >]"] and len(page1) == 12
    asin = page1[2][6:-1]
    assert re.fullmatch(r"[A-Z0-9]{10}", asin)
    p = env.data.by_asin[asin]
    assert f"{asin} [SEP] {p['Title']} [SEP] {p['Price']}" in obs
    # next page, back, case-insensitive clicks
    assert env.step("click[next >]").observation.startswith("Back to Search [SEP] Page 2 (Total results: 50) "
                                                            "[SEP] < Prev [SEP] Next > [SEP] ")
    assert env.step("click[< Prev]").observation == obs
    item = env.step(f"click[{asin.lower()}]").observation
    assert item.startswith("Back to Search [SEP] < Prev [SEP] ")
    assert item.endswith(f"{p['Title']} [SEP] Price: {p['Price']} [SEP] Rating: {p['Rating']} [SEP] Description "
                         "[SEP] Features [SEP] Reviews [SEP] Buy Now")
    for name, values in p["options"].items():
        assert f" [SEP] {name} [SEP] {' [SEP] '.join(values)}" in item
    desc = env.step("click[Description]").observation
    assert desc == f"Back to Search [SEP] < Prev [SEP] {p['Description']}"
    assert env.step("click[< Prev]").observation == item
    assert env.step("click[< Prev]").observation == obs  # back to the results page it came from
    assert env.step("click[Back to Search]").observation.startswith("WebShop [SEP] Instruction:")


def test_buying_the_goal_with_its_options_is_a_success(env):
    task = env.tasks("test")[3]
    env.reset(task)
    g = env.s.goal
    env.step(f"search[{g.name}]")
    assert g.asin in env.s.results
    while f"click[{g.asin}]" not in env.admissible_actions():
        env.step("click[Next >]")
    env.step(f"click[{g.asin}]")
    for value in g.goal_options.values():
        env.step(f"click[{value}]")
    tr = env.step("click[Buy Now]")
    assert tr.done and tr.reward == 1.0 and tr.info["won"] and env.success()
    assert tr.observation == "Thank you for shopping with us! [SEP] Your score (min 0.0, max 1.0) [SEP] 1.00"
    assert env.admissible_actions() == []


def test_buying_without_the_options_is_not(env):
    task = next(t for t in env.tasks("test") if env.data.goals()[int(t.game[4:])].goal_options)
    env.reset(task)
    g = env.s.goal
    env.s.page, env.s.asin = "item", g.asin  # straight to the goal's page
    tr = env.step("click[Buy Now]")
    n = len(g.attributes) + len(g.goal_options) + 1
    assert tr.done and not env.success() and tr.reward <= (n - len(g.goal_options)) / n + 1e-9


def test_expert_succeeds_on_test_goals_and_random_clicking_does_not(env):
    tasks = env.tasks("test")[:40]
    steps, wins = [], 0
    for t in tasks:
        steps.append(play_expert(env, t))
        wins += env.success()
    assert wins / len(tasks) >= 0.9 and max(steps) <= env.max_steps
    rng, total = random.Random(0), 0.0
    for t in tasks:
        env.reset(t)
        for _ in range(env.max_steps):
            acts = env.admissible_actions()
            a = f"search[{instruction_keywords(env.s.goal.instruction)}]" if acts == ["search[<query>]"] \
                else rng.choice(acts)
            if env.step(a).done:
                break
        total += env.s.reward
    assert total / len(tasks) < 0.5


@pytest.mark.slow
def test_expert_on_all_test_goals(env):
    tasks = env.tasks("test")
    wins = 0
    for t in tasks:
        play_expert(env, t)
        wins += env.success()
    assert wins / len(tasks) >= 0.9


def test_human_goal_set(data_dir):
    env = WebShopEnv(data_dir, goal_set="human")
    tasks = env.tasks("test")
    assert len(tasks) == 13 and all(t.game.startswith("human") for t in tasks)
    for t in tasks:
        play_expert(env, t)
        assert env.success()
    with pytest.raises(InputError, match="only a test split"):
        env.tasks("train")


def test_expert_reasoning_is_grounded_in_what_was_shown(data_dir):
    with EnvPool(EnvSpec.parse("webshop", {"data_dir": data_dir}), 1, in_process=True) as pool:
        recs = list(run_episodes(pool, pool.tasks("train")[:60], ExpertTeacher()))
    assert all(r["success"] for r in recs)
    assert [(r["id"], ungrounded(r)) for r in recs if ungrounded(r)] == []
    # the project's grounding checker (tests/grounding) agrees
    assert [str(v) for r in recs for v in check_record(r)] == []
    reasons = [s["reason"] for r in recs for s in r["steps"] if s["reason"]]
    assert sum(1 for s in reasons if "I will open it" in s) >= 50
    assert any("refine the search" in s for s in reasons) and any("I select" in s for s in reasons)
    # the first thought restates the instruction; the options thought names every option then clicked
    for r in recs:
        picks = [k for k, st in enumerate(r["steps"]) if (st["reason"] or "").startswith("This item has")]
        for k in picks:
            clicked = [st["action"][6:-1] for st in r["steps"][k:-1]]
            assert all(v in r["steps"][k]["reason"] for v in clicked), (r["id"], clicked)
        assert r["steps"][0]["action"].startswith("search[") and r["steps"][0]["reason"].startswith("I am looking for")
        assert r["steps"][-1]["action"] == "click[Buy Now]"


def test_instruction_parsing_keeps_the_wish_and_the_options_apart():
    from sadcli.teachers.expert_webshop import parse_instruction

    text = ("Find me ready hang wall art with solid wood for living room with color: turtles and african american "
            "couple, and size: 8x10 inch, and price lower than 70.00 dollars")
    assert instruction_keywords(text) == "ready hang wall art solid wood living room"
    got = parse_instruction(f"WebShop [SEP] Instruction: [SEP] {text} [SEP] Search")
    assert got == {"wish": "ready hang wall art with solid wood for living room",
                   "options": {"color": "turtles and african american couple", "size": "8x10 inch"}, "price": "70.00"}
    assert parse_instruction("WebShop [SEP] Instruction: [SEP] i need a vegan shake [SEP] Search") == \
        {"wish": "a vegan shake", "options": {}, "price": None}


def test_grounding_check_catches_an_unseen_entity():
    rec = {"task": "WebShop [SEP] Instruction: [SEP] find me socks [SEP] Search",
           "steps": [{"reason": "I will search socks.", "action": "search[socks]",
                      "observation": "Back to Search [SEP] B000000001 [SEP] Wool Socks [SEP] $5.00"},
                     {"reason": "B000000002 'Cotton Socks' costs $7.50, below $10.", "action": "click[B000000002]",
                      "observation": ""}]}
    assert {e for _, e in ungrounded(rec)} == {"B000000002", "Cotton Socks", "7.50", "10", "Cotton"}


def test_missing_data_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WEBSHOP_DATA", raising=False)
    with pytest.raises(InputError, match="needs its data folder"):
        WebShopEnv()
    with pytest.raises(InputError, match="products_1k_processed.jsonl is missing"):
        WebShopEnv(str(tmp_path))
    (tmp_path / "products_1k_processed.jsonl").write_text('{"id": "B1"}\n')
    with pytest.raises(InputError, match="not a WebShop product record"):
        WebShopEnv(str(tmp_path))
