"""HotPotQA-ReAct (``--env wikiqa --corpus hotpotqa``) on the real distractor files: search, lookup, expert."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("bm25s", reason="HotPotQA search needs the hotpotqa extra (bm25s)")

from sadcli.agent.loop import EnvPool, run_episodes  # noqa: E402
from sadcli.envs.base import Task  # noqa: E402
from sadcli.envs.registry import EnvSpec  # noqa: E402
from sadcli.envs.wikiqa import (  # noqa: E402
    PROMPT,
    WikiQAEnv,
    exact_match,
    f1_score,
    gold_title_order,
    lookup_keyword,
)
from sadcli.errors import InputError  # noqa: E402
from sadcli.teachers.expert import ExpertTeacher  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "grounding"))
from grounding_checker import check_record  # noqa: E402
from react_grounding import ungrounded  # noqa: E402


def checker_violations(rec: dict) -> list[str]:
    """The project's grounding checker, less two of its ALFWorld readings that do not apply to QA: "the
    answer" is not a thing to have seen, and "is 1999" / "search 2014 ..." are not numbered objects when
    the number itself was shown (a year, a count)."""
    shown = rec["task"] + " " + " ".join(s["observation"] or "" for s in rec["steps"])
    out = []
    for v in check_record(rec):
        m = re.match(r"'(?:[a-z]+) (\d+)' was never shown", v.detail)
        if v.detail == "'answer' was never shown" or (m and re.search(rf"(?<!\d){m.group(1)}(?!\d)", shown)):
            continue
        out.append(str(v))
    return out


@pytest.fixture
def data_dir(shared):
    return str(shared("hotpotqa/dev_distractor_200.jsonl").parent)


@pytest.fixture
def env(data_dir):
    return WikiQAEnv("hotpotqa", data_dir=data_dir)


def test_corpus_and_splits(env, data_dir):
    assert len(env.corpus) == 9749  # the distinct context paragraphs of both files
    dev, train = env.tasks("dev"), env.tasks("train")
    assert len(dev) == 200 and len(train) == 800 and env.default_split == "train" and env.max_steps == 7
    first = json.loads(Path(data_dir, "dev_distractor_200.jsonl").read_text().splitlines()[0])
    assert dev[0].game == first["_id"] and dev[0].meta == {"type": first["type"], "level": first["level"]}
    assert env.reset(dev[0]) == first["question"]  # the bare question, as in FireAct
    with pytest.raises(InputError, match="unknown HotPotQA split"):
        env.tasks("test")


def test_search_on_a_title_returns_its_first_sentences(env):
    env.reset(env.tasks("dev")[0])
    i = env.corpus.lookup_title("Scott Derrickson")
    page = env.corpus.pages[i]
    obs = env.step("search[Scott Derrickson]").observation
    assert obs == " ".join(page[:5])
    assert obs.startswith("Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer. "
                          "He lives in Los Angeles, California.")
    # case and punctuation do not matter; a disambiguated title needs its parenthesis
    assert env.step("Search[scott derrickson]").observation == obs
    assert env.step("search[Ed Wood (film)]").observation.startswith("Ed Wood is a 1994 American biographical")
    assert env.step("search[Ed Wood]").observation.startswith("Edward Davis Wood Jr.")


def test_search_on_a_near_miss_returns_similar_titles(env):
    env.reset(env.tasks("dev")[0])
    obs = env.step("search[Scott Derickson]").observation
    assert obs.startswith("Could not find [Scott Derickson]. Similar: ['Scott Derrickson', ")
    similar = eval(obs[obs.index("["): obs.rindex("]") + 1].split("Similar: ", 1)[1])  # noqa: S307
    assert len(similar) == 5 and all(t in env.corpus.exact for t in similar)
    obs = env.step("search[Laleli Mosk]").observation
    assert "Similar: ['Laleli Mosque'" in obs
    assert env.step("lookup[born]").observation.startswith("No page is open")


def test_lookup_walks_the_page_then_says_no_more(env):
    env.reset(env.tasks("dev")[0])
    env.step("search[Scott Derrickson]")
    page = env.corpus.pages[env.corpus.lookup_title("Scott Derrickson")]
    hits = [s for s in page if "horror" in s.lower()]
    assert hits
    for k, h in enumerate(hits, 1):
        assert env.step("lookup[horror]").observation == f"(Result {k} / {len(hits)}) {h}"
    assert env.step("lookup[horror]").observation == "No more results."
    tr = env.step("finish[Yes]")
    assert tr.done and tr.observation == "Episode finished, reward = True" and tr.info["em"] and tr.info["f1"] == 1.0


def test_em_f1_hand_worked():
    assert exact_match("The Seine.", "seine") and exact_match("Chief of Protocol", "chief of protocol")
    assert not exact_match("Greenwich Village", "Greenwich Village, New York City")
    # F1: 2 common tokens of 2 predicted and 5 gold: P = 1, R = 2/5 -> 2 * 0.4 / 1.4
    assert f1_score("Greenwich Village", "Greenwich Village, New York City") == pytest.approx(0.8 / 1.4)
    # articles and punctuation vanish, order does not matter: "city of new york" vs "new york city":
    # 3 common of 4 predicted and 3 gold: P = 3/4, R = 1 -> 2 * 0.75 / 1.75 = 6/7
    assert f1_score("the city of New York", "New York City") == pytest.approx(6 / 7)
    assert f1_score("yes", "no") == 0.0 and f1_score("no", "No.") == 1.0
    assert f1_score("1,800 to 7,000 ft", "1800 to 7000 ft") == 1.0


def test_gold_title_order_and_lookup_keyword():
    bridge = {"question": "What government position was held by the woman who portrayed Corliss Archer in Kiss and Tell?",
              "type": "bridge", "supporting_facts": [["Shirley Temple", 0], ["Kiss and Tell (1945 film)", 0]],
              "context": [["Shirley Temple", ["Shirley Temple was an actress and diplomat."]],
                          ["Kiss and Tell (1945 film)", ["Kiss and Tell is a film starring Shirley Temple."]]]}
    # the page that names the other goes first
    assert gold_title_order(bridge) == ["Kiss and Tell (1945 film)", "Shirley Temple"]
    comparison = dict(bridge, type="comparison", question="Were Kiss and Tell and Shirley Temple both from 1945?")
    assert gold_title_order(comparison) == ["Kiss and Tell (1945 film)", "Shirley Temple"]
    page = ["A is a town.", "It has a river.", "The river is long.", "Its mayor is Bob."]
    # "mayor" reaches sentence 3 in one lookup; "river" would need two to reach sentence 2
    assert lookup_keyword(page, 3, "Who is the mayor of A?", "Bob") == ("mayor", 1)
    assert lookup_keyword(page, 2, "How long is it?", "long") == ("long", 1)


def _collect(data_dir, split, n, teacher=None):
    spec = EnvSpec.parse("wikiqa", {"corpus": "hotpotqa", "data_dir": data_dir})
    with EnvPool(spec, 1, in_process=True) as pool:
        return list(run_episodes(pool, pool.tasks(split)[:n], teacher or ExpertTeacher()))


def test_expert_answers_dev_questions_with_grounded_reasoning(data_dir):
    recs = _collect(data_dir, "dev", 200)
    em = sum(r["success"] for r in recs) / len(recs)
    assert len(recs) == 200 and em >= 0.95
    assert all(r["meta"]["steps"] <= 7 for r in recs)
    assert [(r["id"], ungrounded(r)) for r in recs if ungrounded(r)] == []
    assert [v for r in recs for v in checker_violations(r)] == []
    # bridge questions read two pages; deep facts are looked up
    steps = [s for r in recs for s in r["steps"]]
    assert sum(1 for s in steps if s["action"].startswith("lookup[")) >= 5
    assert all(sum(s["action"].startswith("search[") for s in r["steps"]) == 2 for r in recs)
    assert all(s["observation"] != "No more results." and not s["observation"].startswith("Could not find")
               for s in steps)
    # every thought that gives the answer quotes a retrieved sentence holding it (or compares two pages)
    finals = [r["steps"][-1]["reason"] for r in recs]
    assert sum(1 for f in finals if f.startswith("From what I found")) <= 10


def test_grounding_check_catches_an_unseen_entity():
    rec = {"task": "Who directed Big Stone Gap?",
           "steps": [{"reason": "I need to search Big Stone Gap.", "action": "search[Big Stone Gap]",
                      "observation": "Big Stone Gap is a 2014 film directed by Adriana Trigiani."},
                     {"reason": "She lives in Greenwich Village since 1999.", "action": "finish[x]", "observation": ""}]}
    assert {e for _, e in ungrounded(rec)} == {"Greenwich", "Village", "1999"}


def test_prompt_matches_fireact_turns(data_dir):
    # a FireAct-style assistant turn is what the prompt's markers produce
    steps = [{"reason": "I need to search X.", "action": "search[X]", "observation": "X is Y."}]
    msgs = PROMPT.messages("Who is X?", steps, examples=False)
    assert msgs[1:] == [{"role": "user", "content": "Who is X?"},
                        {"role": "assistant", "content": "Thought: I need to search X.\nAction: search[X]"},
                        {"role": "user", "content": "Observation: X is Y."}]
    fire = json.loads(Path(data_dir).parent.joinpath("fireact_hotpotqa_messages.jsonl").read_text().splitlines()[0])
    assert fire["messages"][1]["content"].startswith("Thought: ") and "\nAction: search[" in fire["messages"][1]["content"]
    assert fire["messages"][-1]["content"].startswith("Observation: Episode finished, reward = True")


def test_questions_option_is_refused_with_the_builtin_corpus(data_dir, monkeypatch):
    with pytest.raises(InputError, match="--questions does not apply"):
        WikiQAEnv("hotpotqa", "q.json", data_dir=data_dir)
    monkeypatch.delenv("HOTPOTQA_DATA", raising=False)
    with pytest.raises(InputError, match="needs the folder"):
        WikiQAEnv("hotpotqa")
    with pytest.raises(InputError, match="train_distractor_800.jsonl is missing"):
        WikiQAEnv("hotpotqa", data_dir="/nonexistent")


def test_reset_unknown_task_is_an_error(env):
    with pytest.raises(InputError, match="no HotPotQA question"):
        env.reset(Task("wikiqa", "dev", "nope"))
