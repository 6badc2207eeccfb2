"""Each input format segments into the expected steps, and spans partition the text."""

from __future__ import annotations

import json
import re

import pytest

from sadcli.errors import InputError, SegmentError
from sadcli.schema import validate_segmented
from sadcli.segment import detect_format, load_template, segment_record


def spans_of(out, kind):
    return [out["text"][s["start"]:s["end"]] for s in out["spans"] if s["kind"] == kind]


def check_partition(out):
    validate_segmented(out)
    assert "".join(out["text"][s["start"]:s["end"]] for s in out["spans"]) == out["text"]


def test_react_text_numbered_any_case():
    text = ("Question: Where is X?\nthought 1: I should search X.\nACTION 1: Search[X]\n"
            "Observation 1: X is in Y.\nThought 2: So Y.\nAction 2: Finish[Y]\n")
    out = segment_record({"text": text})
    check_partition(out)
    assert out["format"] == "react"
    assert out["task"] == "Question: Where is X?"
    assert [s["action"] for s in out["steps"]] == ["Search[X]", "Finish[Y]"]
    assert [s["reason"] for s in out["steps"]] == ["I should search X.", "So Y."]
    assert out["steps"][0]["observation"] == "X is in Y."
    assert out["steps"][1]["observation"] is None
    assert spans_of(out, "act") == ["[ACT] Search[X]\n", "[ACT] Finish[Y]\n"]
    assert "segment_warnings" not in out


def test_native_markers_reproduce_react_layout():
    text = "Thought: a\nAction: b[c]\nObservation: d\n"
    out = segment_record({"instruction": "Q?", "input": "", "output": text}, markers="native")
    assert out["text"] == "Q?\n" + text
    assert spans_of(out, "reason") == ["Thought: a\n"]
    assert spans_of(out, "obs") == ["Observation: d\n"]


def test_langchain_action_input_and_final_answer():
    text = ("Thought: I need the weather\nAction: weather\nAction Input: Paris\nObservation: 20C\n"
            "Thought: I know it\nFinal Answer: It is 20C")
    out = segment_record({"prompt": "Weather in Paris?", "completion": text})
    assert out["task"] == "Weather in Paris?"
    assert out["steps"][0]["action"] == "weather\nAction Input: Paris"
    assert out["steps"][1]["action"] == "Final Answer: It is 20C"
    check_partition(out)


def test_messages_with_observation_prefix(shared):
    with open(shared("fireact_hotpotqa_messages.jsonl")) as fh:
        rec = json.loads(fh.readline())
    out = segment_record(rec)
    check_partition(out)
    assert out["format"] == "messages"
    assert out["messages"] == rec["messages"]  # carried through untouched
    assert out["steps"][-1]["action"] == "finish[Badr Hari]"
    assert out["steps"][0]["observation"].startswith("Badr Hari (born")


def test_messages_tool_calls_and_system():
    rec = {"messages": [
        {"role": "system", "content": "You are a tool agent."},
        {"role": "user", "content": "Add 2 and 3."},
        {"role": "assistant", "content": "I will call the adder.",
         "tool_calls": [{"id": "1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "5"},
        {"role": "assistant", "content": "Thought: done\nAction: finish[5]"},
    ]}
    out = segment_record(rec)
    check_partition(out)
    assert out["system"] == "You are a tool agent."
    assert out["steps"][0]["reason"] == "I will call the adder."
    assert json.loads(out["steps"][0]["action"]) == {"name": "add", "arguments": {"a": 2, "b": 3}}
    assert out["steps"][0]["observation"] == "5"
    assert out["text"].startswith("You are a tool agent.\n\nAdd 2 and 3.\n")
    assert spans_of(out, "prompt")[0].startswith("You are a tool agent.")


def test_sharegpt_with_agentinstruct_loss_flags():
    rec = {"conversations": [
        {"from": "human", "loss": False, "value": "You are in a house. Follow the format THOUGHT/ACTION."},
        {"from": "gpt", "loss": False, "value": "OK"},
        {"from": "human", "loss": None, "value": "Your task is to: find the key."},
        {"from": "gpt", "loss": True, "value": "THOUGHT: the key may be in the drawer.\nACTION: open drawer 1"},
        {"from": "human", "loss": None, "value": "You open the drawer 1. You see a key 1."},
        {"from": "gpt", "loss": True, "value": "Think: found it.\nAct: take key 1 from drawer 1"},
    ]}
    out = segment_record(rec)
    check_partition(out)
    assert out["format"] == "sharegpt"
    assert "OK" in out["task"] and "find the key" in out["task"]
    assert [s["action"] for s in out["steps"]] == ["open drawer 1", "take key 1 from drawer 1"]
    assert out["steps"][1]["reason"] == "found it."


def test_alfworld_transcript(shared):
    prompts = json.loads(shared("react_alfworld_prompts.json").read_text())
    out = segment_record({"text": prompts["react_put_0"]})
    check_partition(out)
    assert out["format"] == "alfworld"
    assert out["task"].endswith("Your task is to: put some spraybottle on toilet.")
    assert out["steps"][0]["reason"].startswith("To solve the task")
    assert out["steps"][0]["action"] == "go to cabinet 1"
    # "OK." replies to think are not observations
    assert all(o != "OK." for o in spans_of(out, "obs"))
    assert all(not s["action"].startswith("think") for s in out["steps"])


def test_tags_format():
    text = ("<think>Look in the drawer first.</think><action>open drawer</action>"
            "<observation>The drawer holds a key.</observation><think>Take it.</think><action>take key</action>")
    out = segment_record({"task": "Find the key", "trajectory": text})
    check_partition(out)
    assert out["format"] == "tags"
    assert [(s["reason"], s["action"], s["observation"]) for s in out["steps"]] == [
        ("Look in the drawer first.", "open drawer", "The drawer holds a key."), ("Take it.", "take key", None)]


def test_webshop_think_actions():
    text = ("WebShop\nInstruction: i need a red shirt\nAction: search[red shirt]\nObservation: results...\n"
            "Action: think[The second result is red and cheap.]\nObservation: OK.\n"
            "Action: click[B0002]\nObservation: item page")
    out = segment_record({"text": text})
    check_partition(out)
    assert out["format"] == "webshop"
    assert out["steps"][1]["reason"] == "The second result is red and cheap."
    assert out["steps"][1]["action"] == "click[B0002]"
    assert "OK." not in out["text"]


def test_structured_roundtrip_idempotent():
    rec = {"id": "a", "task": "t", "steps": [{"reason": "r", "action": "a", "observation": "o"},
                                           {"reason": None, "action": "b", "observation": None}]}
    once = segment_record(rec)
    twice = segment_record(once)
    assert once["text"] == twice["text"] and once["spans"] == twice["spans"]
    assert once["segment_warnings"][0]["code"] == "no-reason"


def test_user_template(tmp_path):
    tpl = tmp_path / "fmt.toml"
    tpl.write_text('field = "log"\ntask_field = "goal"\nreason = \'^PLAN:\'\naction = \'^CALL:\'\n'
                   'observation = \'^RESULT:\'\n')
    t = load_template(str(tpl))
    out = segment_record({"goal": "g", "log": "PLAN: p1\nCALL: c1\nRESULT: r1\nPLAN: p2\nCALL: c2"}, template=t)
    assert out["format"] == "template"
    assert [(s["reason"], s["action"], s["observation"]) for s in out["steps"]] == [("p1", "c1", "r1"), ("p2", "c2", None)]
    check_partition(out)


def test_warnings_not_dropped():
    out = segment_record({"text": "Action: go north\nObservation: a room\nsome stray text\nThought: \nAction: x"})
    codes = [w["code"] for w in out["segment_warnings"]]
    assert "no-reason" in codes
    assert "empty-span" in codes
    check_partition(out)


def test_no_markers_is_a_warning_not_a_drop():
    out = segment_record({"text": "just some prose with no structure"})
    assert out["steps"] == []
    assert out["segment_warnings"][0]["code"] == "no-markers"
    assert spans_of(out, "prompt") == ["just some prose with no structure\n"]


def test_unknown_format_is_an_error():
    with pytest.raises(SegmentError, match="no recognizable trajectory format"):
        segment_record({"foo": 1})
    assert detect_format({"foo": 1}) is None


@pytest.mark.parametrize("rec,field", [
    ({"steps": [{"action": 3}]}, "steps[0].action"),
    ({"steps": "x", "task": "t"}, None),
    ({"task": 5, "steps": []}, "task"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0]"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0]"),
])
def test_wrong_field_types_name_the_field(rec, field):
    with pytest.raises(InputError) as ei:
        segment_record(rec)
    if field:
        assert field in str(ei.value)


def _raw_actions_and_observations(rec):
    """Actions and observation texts read straight from the raw FireAct record, independently of sad."""
    if "messages" in rec:
        chunks = [m["content"] for m in rec["messages"][1:]]
    else:
        chunks = rec["output"].split("\n")
    actions, observations = [], []
    for c in chunks:
        actions += re.findall(r"(?:search|lookup|finish)\[[^\]\n]*\]", c)
        if c.startswith("Observation:"):
            observations.append(c[len("Observation:"):].strip())
    return actions, observations


@pytest.mark.parametrize("name", ["fireact_hotpotqa_messages.jsonl", "fireact_hotpotqa_alpaca.json"])
def test_fireact_actions_and_observations_land_in_their_spans(shared, name):
    from sadcli.jsonl import read_records

    n = 0
    for _line, rec in read_records(str(shared(name))):
        out = segment_record(rec)
        check_partition(out)
        acts = spans_of(out, "act")
        obs = spans_of(out, "obs")
        actions, observations = _raw_actions_and_observations(rec)
        assert actions and observations
        for a in actions:
            assert any(a in s for s in acts), a
        for o in observations:
            if o:
                assert any(o in s for s in obs), o
        n += 1
    assert n == 500


def test_react_hotpotqa_prompts_numbered(shared):
    """Every `Action N:` of the ReAct paper's prompts lands in an action span, every `Observation N:` text in an
    observation span, every `Thought N:` in a reasoning span."""
    prompts = json.loads(shared("react_hotpotqa_prompts.json").read_text())
    for key in ("webthink_simple6", "webthink_simple", "webthink_simple_3"):
        raw = prompts[key]
        out = segment_record({"text": raw})
        check_partition(out)
        acts, obs, reasons = spans_of(out, "act"), spans_of(out, "obs"), spans_of(out, "reason")
        n_act = 0
        for m in re.finditer(r"^(Thought|Action|Observation) \d+: (.*)$", raw, re.M):
            kind, body = m.group(1), m.group(2).strip()
            pool = {"Thought": reasons, "Action": acts, "Observation": obs}[kind]
            assert any(body in s for s in pool), (key, kind, body)
            n_act += kind == "Action"
        assert n_act == len([s for s in out["steps"] if s["action"] is not None])
        # each later question is prompt context, not an observation
        assert sum("Question:" in p for p in spans_of(out, "prompt")) == raw.count("Question:")


def test_react_alfworld_prompts_all(shared):
    prompts = json.loads(shared("react_alfworld_prompts.json").read_text())
    for key, raw in prompts.items():
        out = segment_record({"text": raw})
        check_partition(out)
        acts, obs, reasons = spans_of(out, "act"), spans_of(out, "obs"), spans_of(out, "reason")
        lines = raw.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("> think:"):
                assert any(line[len("> think:"):].strip() in r for r in reasons)
            elif line.startswith("> "):
                assert any(s == f"[ACT] {line[2:].strip()}\n" for s in acts), (key, line)
                nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
                if nxt and not nxt.startswith(">"):
                    assert any(nxt in o for o in obs), (key, nxt)
        if key.startswith("act_"):
            assert not reasons
        else:
            assert reasons
