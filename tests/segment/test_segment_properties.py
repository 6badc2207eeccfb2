"""Property-based: for any string and any message list, segmentation never crashes and its spans
partition the text exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sadcli.errors import InputError
from sadcli.schema import validate_segmented
from sadcli.segment import segment_record

MARKERISH = st.sampled_from(["Thought: ", "Action: ", "Observation: ", "Thought 2: ", "action input: ",
                             "Final Answer: ", "Question: ", "> ", "> think: ", "OK.", "\n", "<think>", "</think>",
                             "<action>", "</action>", "think[", "]", "[ACT]", "\r\n", " "])
TEXT = st.lists(st.one_of(st.text(max_size=12), MARKERISH), max_size=30).map("".join)


def assert_partition(out: dict) -> None:
    validate_segmented(out)
    assert "".join(out["text"][s["start"]:s["end"]] for s in out["spans"]) == out["text"]
    for s in out["spans"]:
        assert s["end"] > s["start"]


@settings(max_examples=300, deadline=None)
@given(TEXT, st.sampled_from(["paper", "native"]))
def test_any_text_partitions(text, markers):
    out = segment_record({"text": text}, markers=markers)
    assert_partition(out)


MESSAGE = st.fixed_dictionaries({
    "role": st.sampled_from(["system", "user", "assistant", "tool", "human", "gpt"]),
    "content": st.one_of(TEXT, st.none(), st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
                                                   max_size=2)),
})


@settings(max_examples=300, deadline=None)
@given(st.lists(MESSAGE, max_size=12))
def test_any_message_list_partitions(messages):
    out = segment_record({"messages": messages})
    assert_partition(out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"reason": st.one_of(st.none(), TEXT), "action": st.one_of(st.none(), TEXT),
                                       "observation": st.one_of(st.none(), TEXT)}), max_size=8),
       st.one_of(st.none(), TEXT))
def test_any_structured_steps_partition(steps, task):
    out = segment_record({"task": task, "steps": steps})
    assert_partition(out)
    # the steps survive linearization unchanged
    assert [{k: s[k] for k in ("reason", "action", "observation")} for s in out["steps"]] == steps


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["text", "messages", "steps", "conversations", "output", "x"]),
                       st.one_of(st.integers(), TEXT, st.lists(st.integers(), max_size=2), st.none()), max_size=3))
def test_garbage_records_raise_input_error_or_segment(rec):
    try:
        out = segment_record(rec)
    except InputError:
        return
    assert_partition(out)
