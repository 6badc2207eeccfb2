"""Mask building with the real embedded tokenizer: labels, truncation, batching, bad input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from masks_helpers import HOTPOT, make_record

from sadcli.errors import InputError, SadError
from sadcli.labels import ACT, IGNORE_INDEX, OBS, PROMPT, REASON
from sadcli.masks import build_example, build_examples


def tokens_of(ex, tok, label):
    return tok.decode([i for i, lab in zip(ex.input_ids, ex.token_labels, strict=False) if lab == label])


def test_text_render_labels(tok, record):
    ex = build_example(record, tok)
    assert ex.id == "t1" and len(ex) == len(ex.token_labels) == len(ex.labels) == len(ex.attention_mask)
    assert ex.input_ids == tok(record["text"])["input_ids"]  # exactly the plain encoding
    assert "finish[Badr Hari]" in tokens_of(ex, tok, ACT)
    assert "Episode finished" in tokens_of(ex, tok, OBS)
    assert "Episode" not in tokens_of(ex, tok, ACT) + tokens_of(ex, tok, REASON)
    assert tokens_of(ex, tok, PROMPT).strip() == "Who is the kickboxer?"
    for i, lab, y in zip(ex.input_ids, ex.token_labels, ex.labels, strict=False):
        assert y == (i if lab in (REASON, ACT) else IGNORE_INDEX)
    assert ex.stats.straddling == 0 and ex.stats.empty_spans == []


@pytest.mark.parametrize("reason,act,expected", [
    ("I think ", "Action: go", ACT),      # " Action" holds the reason's trailing space: first non-space is act
    ("I am thin", "king[x]", REASON),     # " thinking" starts in the reason span
])
def test_straddling_tokens_with_the_real_tokenizer(tok, reason, act, expected):
    text = "Q\n" + reason + act
    b = 2 + len(reason)
    rec = {"id": "s", "text": text, "spans": [
        {"kind": "prompt", "start": 0, "end": 2, "step": -1},
        {"kind": "reason", "start": 2, "end": b, "step": 0},
        {"kind": "act", "start": b, "end": len(text), "step": 0}]}
    ex = build_example(rec, tok, keep_alignment=True)
    offs = ex.alignment.offsets.tolist()
    crossing = [i for i, (a, e) in enumerate(offs) if a < b < e]
    assert len(crossing) == 1 and ex.stats.straddling == 1
    assert ex.token_labels[crossing[0]] == expected
    assert ex.alignment.straddle == crossing


def test_truncation_keep_start_and_end_counts(tok, record):
    full = build_example(record, tok)
    n = len(full)
    for keep, m in (("start", 12), ("end", 12), ("start", n - 3), ("end", n)):
        ex = build_example(record, tok, max_length=m, keep=keep)
        lo, hi = (0, min(m, n)) if keep == "start" else (n - min(m, n), n)
        assert ex.input_ids == full.input_ids[lo:hi]
        assert ex.token_labels == full.token_labels[lo:hi]
        cut = full.token_labels[:lo] + full.token_labels[hi:]
        assert ex.stats.truncated_reason == cut.count(REASON)
        assert ex.stats.truncated_act == cut.count(ACT)
        assert ex.stats.truncated_tokens == n - (hi - lo)
        assert ex.stats.n_tokens_full == n


def test_truncation_that_cuts_every_action(tok, record):
    ex = build_example(record, tok, max_length=5)
    assert ACT not in ex.token_labels and ex.stats.truncated_act > 0


def test_batches_give_the_same_examples(tok):
    recs = [make_record(f"task {i}?" + " x" * i, HOTPOT[: 1 + i % 2], rid=f"r{i}") for i in range(7)]
    a = list(build_examples(recs, tok, batch_size=1))
    b = list(build_examples(recs, tok, batch_size=3))
    assert [(e.id, e.index, e.input_ids, e.token_labels) for e in a] == \
           [(e.id, e.index, e.input_ids, e.token_labels) for e in b]
    assert [e.index for e in a] == list(range(7))


def test_records_stream_lazily(tok):
    def gen():
        yield make_record("q?", HOTPOT, rid="first")
        raise RuntimeError("read too far")

    it = build_examples(gen(), tok, batch_size=1)
    assert next(it).id == "first"


def test_record_without_spans_says_run_segment(tok):
    with pytest.raises(InputError) as e:
        build_example({"id": "x", "task": "q", "steps": []}, tok)
    assert "not segmented" in str(e.value) and "sad segment" in str(e.value) and "'x'" in str(e.value)


def test_spans_that_do_not_partition_name_the_offsets(tok, record):
    record["spans"][2]["start"] += 3
    with pytest.raises(InputError) as e:
        build_example(record, tok)
    msg = str(e.value)
    assert "do not partition" in msg and "spans[2]" in msg and "'t1'" in msg


def test_on_error_skips_and_reports(tok, record):
    bad = dict(record, id="bad", spans=[])
    seen = []
    out = list(build_examples([record, bad, dict(record, id="t3")], tok,
                              on_error=lambda i, rec, err: seen.append((i, rec["id"], str(err)))))
    assert [e.id for e in out] == ["t1", "t3"]
    assert seen[0][:2] == (1, "bad") and "partition" in seen[0][2]


def test_slow_tokenizer_is_a_clear_error(record):
    class Slow:
        is_fast = False
        name_or_path = "slow-one"

    with pytest.raises(SadError) as e:
        build_example(record, Slow())
    assert "slow" in str(e.value) and "offset" in str(e.value) and "tokenizer.json" in str(e.value)


def test_bad_options(tok, record):
    with pytest.raises(SadError):
        build_example(record, tok, render="html")
    with pytest.raises(SadError):
        build_example(record, tok, keep="middle")
    with pytest.raises(SadError):
        build_example(record, tok, max_length=0)


words = st.text(alphabet="abc xyz[]().,:\n'é", min_size=0, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=words.filter(str.strip),
       steps=st.lists(st.tuples(st.one_of(st.none(), words), st.one_of(st.none(), words),
                                st.one_of(st.none(), words)), min_size=1, max_size=4),
       markers=st.sampled_from(["paper", "native"]), render=st.sampled_from(["text", "chat"]),
       max_length=st.one_of(st.none(), st.integers(1, 60)))
def test_property_exactly_one_and_labels(tok, task, steps, markers, render, max_length):
    rec = make_record(task, steps, markers=markers)
    ex = build_example(rec, tok, render=render, max_length=max_length)
    assert len(ex.input_ids) == len(ex.token_labels) == len(ex.labels)
    for i, lab, y in zip(ex.input_ids, ex.token_labels, ex.labels, strict=False):
        assert [lab == REASON, lab == ACT, lab in (PROMPT, OBS)].count(True) == 1
        assert y == (i if lab in (REASON, ACT) else IGNORE_INDEX)
    if max_length is not None:
        assert len(ex) <= max_length
