"""Chat rendering: turns from spans, template tokens unsupervised, the end-of-turn token is action."""

from __future__ import annotations

import copy

import pytest
from masks_helpers import HOTPOT, make_record

from sadcli.errors import InputError, SadError
from sadcli.labels import ACT, OBS, PROMPT, REASON
from sadcli.masks import Auditor, build_example
from sadcli.masks.render import ChatRenderer


def test_messages_follow_the_steps(tok):
    rec = make_record("Who?", HOTPOT, system="Be brief.", markers="native")
    r = ChatRenderer(tok)(rec)
    expected = tok.apply_chat_template([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who?"},
        {"role": "assistant", "content": "Thought: I need to search Badr Hari.\nAction: search[Badr Hari]"},
        {"role": "user", "content": "Observation: Badr Hari is a Moroccan-Dutch kickboxer."},
        {"role": "assistant", "content": "Thought: Badr Hari fits.\nAction: finish[Badr Hari]"},
        {"role": "user", "content": "Observation: Episode finished, reward = True"},
    ], tokenize=False)
    assert r.text == expected
    # spans partition the rendered text, and each record span is found with its own text
    assert r.starts[0] == 0 and r.ends[-1] == len(r.text)
    assert all(e == s for e, s in zip(r.ends, r.starts[1:], strict=False))
    for s, e, src in zip(r.starts, r.ends, r.sources, strict=False):
        if src >= 0:
            want = rec["text"][rec["spans"][src]["start"]:rec["spans"][src]["end"]].strip()
            assert r.text[s:e].strip() == want
    assert [r.text[r.starts[j]:r.ends[j]] for j in r.eot] == ["<|im_end|>", "<|im_end|>"]
    assert len(r.turn_ends) == 2


def test_end_of_turn_token_is_action_and_template_is_prompt(tok, record):
    ex = build_example(record, tok, render="chat", keep_alignment=True)
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    start = tok.convert_tokens_to_ids("<|im_start|>")
    labels_of = {}
    for i, (t, lab) in enumerate(zip(ex.input_ids, ex.token_labels, strict=False)):
        labels_of.setdefault(t, []).append((i, lab))
    # <|im_end|> closes system, user, assistant, user, assistant, user turns: only the assistant ones are ACT
    im_end = labels_of[eot]
    assert len(im_end) == 6
    act_ends = [i for i, lab in im_end if lab == ACT]
    assert len(act_ends) == 2
    for i in act_ends:  # each supervised end-of-turn directly follows an action token
        assert ex.token_labels[i - 1] == ACT and ex.labels[i] == eot
    assert all(lab == PROMPT for _, lab in labels_of[start])
    dec = tok.decode([t for t, lab in zip(ex.input_ids, ex.token_labels, strict=False) if lab == ACT])
    assert dec == "[ACT] search[Badr Hari]<|im_end|>[ACT] finish[Badr Hari]<|im_end|>"
    assert "Episode finished" in tok.decode([t for t, lab in zip(ex.input_ids, ex.token_labels, strict=False) if lab == OBS])
    assert "assistant" not in tok.decode([t for t, lab in zip(ex.input_ids, ex.token_labels, strict=False) if lab == REASON])
    assert Auditor(tok, render="chat").check(ex) == []


def test_template_that_changes_content_is_a_clear_error(tok, record):
    t2 = copy.deepcopy(tok)
    t2.chat_template = "{% for m in messages %}{{ m['content'] | upper }}<|im_end|>{% endfor %}"
    with pytest.raises(InputError) as e:
        build_example(record, t2, render="chat")
    assert "changes the content" in str(e.value) and "--render text" in str(e.value)


def test_template_without_end_of_turn_token_is_flagged(tok, record):
    t2 = copy.deepcopy(tok)
    t2.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    ex = build_example(record, t2, render="chat", keep_alignment=True)
    v = Auditor(t2, render="chat").check(ex)
    assert [x.check for x in v] == ["eot"]
    assert "no end-of-turn" in v[0].detail


def test_tokenizer_without_chat_template(tok, record):
    t2 = copy.deepcopy(tok)
    t2.chat_template = None
    with pytest.raises(SadError) as e:
        build_example(record, t2, render="chat")
    assert "no chat template" in str(e.value)


def test_reasonless_steps_and_missing_observations(tok):
    rec = make_record("Do it.", [(None, "click[a]", None), ("ok", "finish[b]", None)])
    ex = build_example(rec, tok, render="chat", keep_alignment=True)
    assert Auditor(tok, render="chat").check(ex) == []
    dec = tok.decode([t for t, lab in zip(ex.input_ids, ex.token_labels, strict=False) if lab == ACT])
    assert dec == "[ACT] click[a]<|im_end|>[ACT] finish[b]<|im_end|>"
