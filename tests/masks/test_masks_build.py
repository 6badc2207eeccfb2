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


# --- step windows (window="steps") -----------------------------------------------------------

def _long_record(n_steps=10, rid="long", system="You are an agent."):
    steps = [(f"I think about thing {i} " * (1 + i % 3), f"go to place {i}", f"You arrive at place {i}. " * (1 + i % 4))
             for i in range(n_steps)]
    return make_record("Find the thing in the house.", steps, system=system, rid=rid)


def _coverage(full, examples):
    """How many times each position of the full encoding is supervised over the examples."""
    seen = [0] * len(full.input_ids)
    for ex in examples:
        pos = ex.window.positions().tolist() if ex.window is not None else list(range(len(ex.input_ids)))
        assert [full.input_ids[p] for p in pos] == ex.input_ids
        for p, lab in zip(pos, ex.token_labels, strict=True):
            if lab in (REASON, ACT):
                assert full.token_labels[p] == lab
                seen[p] += 1
    return seen


def test_step_windows_hand_computed():
    from sadcli.masks.build import step_windows

    # head of 4 tokens, steps of 10, 3, 5, 8 tokens; max_length 20 -> budget 16
    units = [(4, 14), (14, 17), (17, 22), (22, 30)]
    ws, split = step_windows(4, units, 20)
    assert split == 0
    # window 1 supervises steps 0-1 (13 <= 16); later windows at most ceil(16 / 2) = 8 tokens of steps:
    # step 2 (5 tokens) with step 1 (3) as context (step 0, 10 tokens, does not fit in the 8 left);
    # step 3 (8) with steps 2 and 1 as context (8 + 5 + 3 = 16)
    assert [(w.context, w.target) for w in ws] == [((4, 4), (4, 17)), ((14, 17), (17, 22)), ((14, 22), (22, 30))]
    assert all(w.head == (0, 4) and w.count == 3 for w in ws)


def test_step_windows_split_an_over_long_step_and_cut_a_long_head():
    from sadcli.masks.build import step_windows

    ws, split = step_windows(30, [(30, 33), (33, 60)], 40)   # head 30 > 40 // 2: its last 20 kept
    assert split == 1 and ws[0].head == (10, 30)
    # budget 20: step 0 (3 tokens), then step 1 (27 > 20) split: 20 tokens, then 7 with 13 context tokens
    assert [(w.context, w.target, w.split) for w in ws] == [
        ((30, 30), (30, 33), False), ((33, 33), (33, 53), True), ((40, 53), (53, 60), True)]
    for w in ws:
        assert len(w.positions()) <= 40


@pytest.mark.parametrize("render", ["text", "chat"])
def test_windows_supervise_every_token_once(tok, render):
    rec = _long_record()
    full = build_example(rec, tok, render=render)
    exs = list(build_examples([rec], tok, render=render, max_length=200, window="steps"))
    assert len(exs) > 2 and all(len(e) <= 200 for e in exs)
    assert all(e.stats.windows == len(exs) and e.index == 0 and e.id == "long" for e in exs)
    seen = _coverage(full, exs)
    assert seen == [1 if lab in (REASON, ACT) else 0 for lab in full.token_labels]
    # every window starts with the task prompt; a later one sees earlier steps as context
    head = exs[0].window.head
    assert all(e.window.head == head for e in exs)
    assert any(e.stats.context_tokens > 0 for e in exs)
    # truncation instead: one example, the tail cut
    (cut,) = build_examples([rec], tok, render=render, max_length=100, window="truncate")
    assert cut.window is None and cut.stats.truncated_act > 0


def test_a_record_that_fits_is_one_plain_example(tok, record):
    a = build_example(record, tok, max_length=1000, window="steps")
    b = build_example(record, tok)
    assert a.window is None and a.input_ids == b.input_ids and a.token_labels == b.token_labels


def test_windows_emit_round_trip(tok):
    from sadcli.masks.emit import example_from_record, to_emit_record

    exs = list(build_examples([_long_record()], tok, max_length=90, window="steps"))
    back = [example_from_record(to_emit_record(e, window="steps"), i) for i, e in enumerate(exs)]
    assert [(b.input_ids, b.token_labels, b.window) for b in back] == [(e.input_ids, e.token_labels, e.window)
                                                                       for e in exs]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=words.filter(str.strip),
       steps=st.lists(st.tuples(st.one_of(st.none(), words), st.one_of(st.none(), words),
                                st.one_of(st.none(), words)), min_size=1, max_size=7),
       markers=st.sampled_from(["paper", "native"]), render=st.sampled_from(["text", "chat"]),
       system=st.one_of(st.none(), words.filter(str.strip)),
       max_length=st.integers(1, 120))
def test_property_windows_supervise_every_token_exactly_once(tok, task, steps, markers, render, system, max_length):
    rec = make_record(task, steps, markers=markers, system=system)
    full = build_example(rec, tok, render=render)
    exs = list(build_examples([rec], tok, render=render, max_length=max_length, window="steps"))
    assert all(len(e) <= max_length for e in exs)
    seen = _coverage(full, exs)
    assert seen == [1 if lab in (REASON, ACT) else 0 for lab in full.token_labels]
    for e in exs:   # labels consistent (the audit's label checks hold in every window)
        for i, lab, y in zip(e.input_ids, e.token_labels, e.labels, strict=True):
            assert y == (i if lab in (REASON, ACT) else IGNORE_INDEX)
    if len(full) <= max_length:
        assert len(exs) == 1 and exs[0].window is None
    elif exs[0].window is None:  # nothing but the prompt: plain truncation
        assert len(exs) == 1 and not any(lab in (REASON, ACT) for lab in full.token_labels)
    else:
        ws = [e.window for e in exs]
        # targets tile everything after the prompt, in order
        assert ws[0].target[0] == ws[0].head[1] and ws[-1].target[1] == len(full)
        assert all(a.target[1] == b.target[0] for a, b in zip(ws, ws[1:], strict=False))


@pytest.mark.parametrize("render", ["text", "chat"])
def test_mask_check_reports_windows_and_passes_records_through_once(render):
    import json

    from typer.testing import CliRunner

    from sadcli.cli import app

    recs = [_long_record(rid="a"), make_record("Who?", HOTPOT, rid="b"), _long_record(6, rid="c")]
    data = "".join(json.dumps(r) + "\n" for r in recs)
    r = CliRunner().invoke(app, ["mask-check", "-", "--max-length", "150", "--render", render, "--strict"],
                           input=data, prog_name="sad")
    assert r.exit_code == 0, r.stderr
    assert [json.loads(x)["id"] for x in r.stdout.splitlines()] == ["a", "b", "c"]   # passed through once
    assert "record(s) longer than --max-length became" in " ".join(r.stderr.split())
    r = CliRunner().invoke(app, ["mask-check", "-", "--max-length", "150", "--render", render, "--emit", "-q"],
                           input=data, prog_name="sad")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    ids = [x["id"] for x in lines]
    assert ids.count("b") == 1 and ids.count("a") == lines[0]["mask_stats"]["windows"] > 1
    assert all(len(x["input_ids"]) <= 150 for x in lines)
