"""The audit catches injected masking bugs; the report's statistics match naive computations."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from masks_helpers import HOTPOT, make_record

from sadcli.labels import ACT, IGNORE_INDEX, OBS, PROMPT, REASON
from sadcli.masks import Auditor, MaskReport, build_example, build_examples, check_labels, span_stats


def checks(violations):
    return sorted({v.check for v in violations})


def test_clean_examples_have_no_violations(tok, record):
    for render in ("text", "chat"):
        ex = build_example(record, tok, render=render, keep_alignment=True)
        assert Auditor(tok, render=render).check(ex) == []


def test_prompt_trained_on_is_caught(tok, record):
    ex = build_example(record, tok, keep_alignment=True)
    labels = list(ex.labels)
    labels[0] = ex.input_ids[0]  # the Liger #974 bug: a prompt token gets a target
    v = Auditor(tok).check(dataclasses.replace(ex, labels=labels))
    assert checks(v) == ["labels"] and v[0].token == 0


def test_invalid_token_label_breaks_exactly_one(tok, record):
    ex = build_example(record, tok, keep_alignment=True)
    tl = list(ex.token_labels)
    tl[3] = 7
    v = Auditor(tok).check(dataclasses.replace(ex, token_labels=tl))
    assert "exactly-one" in checks(v) and any(x.token == 3 for x in v)


def test_padding_and_special_tokens_supervised(tok, record):
    ex = build_example(record, tok)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    padded = dataclasses.replace(ex, input_ids=ex.input_ids + [eos, eos], attention_mask=ex.attention_mask + [0, 0],
                                 token_labels=ex.token_labels + [-1, -1], labels=ex.labels + [eos, IGNORE_INDEX])
    v = check_labels(padded)
    assert checks(v) == ["pad-supervised"] and v[0].token == len(ex)
    # a special token inside an action in text rendering is supervised: flagged
    rec = make_record("q", [("r", "finish[x]<|im_end|>", None)])
    ex2 = build_example(rec, tok, keep_alignment=True)
    assert checks(Auditor(tok).check(ex2)) == ["special-supervised"]


def test_dropped_end_of_turn_is_caught(tok, record):
    ex = build_example(record, tok, render="chat", keep_alignment=True)
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    tl, lab = list(ex.token_labels), list(ex.labels)
    for i, (t, y) in enumerate(zip(ex.input_ids, ex.token_labels, strict=False)):
        if t == eot and y == ACT:  # the trl#7230 bug: end-of-turn not trained
            tl[i], lab[i] = PROMPT, IGNORE_INDEX
    v = Auditor(tok, render="chat").check(dataclasses.replace(ex, token_labels=tl, labels=lab))
    assert checks(v) == ["eot"] and len(v) == 2


def test_decode_mismatch_and_empty_span(tok, record):
    ex = build_example(record, tok, keep_alignment=True)
    a = ex.alignment
    # misassign the first act token to the reason span: both spans decode wrong
    first_act = ex.token_labels.index(ACT)
    ts = a.token_span.copy()
    ts[first_act] -= 1
    v = Auditor(tok).check(dataclasses.replace(ex, alignment=dataclasses.replace(a, token_span=ts)))
    assert checks(v) == ["decode"] and len(v) == 2
    ex.stats.empty_spans.append(3)
    assert "empty-span" in checks(Auditor(tok).check(ex))


def test_all_actions_truncated_is_a_violation(tok, record):
    ex = build_example(record, tok, max_length=4, keep_alignment=True)
    assert checks(Auditor(tok).check(ex)) == ["act-truncated"]
    ex = build_example(record, tok, max_length=25, keep="end", keep_alignment=True)
    assert ACT in ex.token_labels and ex.stats.truncated_act > 0
    assert checks(Auditor(tok).check(ex)) == []  # the end keeps the last action: cut tokens are only a note


def naive_percentile(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    f = math.floor(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)


def test_span_stats_match_naive():
    xs = [5, 1, 9, 3, 3, 12, 7]
    s = span_stats(xs)
    assert s["spans"] == 7 and s["max"] == 12
    assert math.isclose(s["mean"], sum(xs) / 7)
    assert s["median"] == 5
    assert math.isclose(s["p90"], naive_percentile(xs, 90))
    assert span_stats([])["spans"] == 0


def test_report_counts_match_naive(tok):
    recs = [make_record(f"q{i}", HOTPOT[: 1 + i % 2], rid=f"r{i}") for i in range(5)]
    rep = MaskReport()
    auditor = Auditor(tok)
    naive_tokens = {PROMPT: 0, REASON: 0, ACT: 0, OBS: 0}
    naive_reason_lengths = []
    for ex in build_examples(recs, tok, keep_alignment=True):
        rep.add(ex, auditor.check(ex))
        for lab in ex.token_labels:
            naive_tokens[lab] += 1
        a = ex.alignment
        for j, lab in enumerate(a.rendered.labels):
            if lab == REASON:
                naive_reason_lengths.append(int((a.token_span == j).sum()))
    assert rep.tokens == naive_tokens
    assert sorted(rep.span_lengths["reason"]) == sorted(naive_reason_lengths)
    s = rep.summary()
    assert math.isclose(s["supervised_share"], (naive_tokens[REASON] + naive_tokens[ACT]) / sum(naive_tokens.values()))
    assert rep.total_violations == 0 and s["span_lengths"]["act"]["spans"] == 7
    assert np.isclose(s["span_lengths"]["reason"]["median"], np.median(naive_reason_lengths))
