"""Every metric of sad eval against hand-computed values."""

from __future__ import annotations

import math

import pytest

from sadcli.eval.stats import mcnemar_exact, mean_sd, wilson
from sadcli.eval.summary import summarize, summarize_model
from sadcli.eval.termination import classify
from sadcli.eval.text import action_match, cot_match, normalize_action, rouge_l_f1


def _wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return center - half, center + half


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (17, 20), (1, 134)])
def test_wilson_interval(k, n):
    lo, hi = wilson(k, n)
    elo, ehi = _wilson_by_hand(k, n)
    assert lo == pytest.approx(max(0.0, elo), abs=1e-9) and hi == pytest.approx(min(1.0, ehi), abs=1e-9)


def test_wilson_known_value_and_empty():
    # 8 of 10: the textbook Wilson interval is [0.4902, 0.9433]
    lo, hi = wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_mcnemar_exact_by_hand():
    # discordant pairs: a won alone 6 times, b alone once: p = 2 * P(X <= 1 | Bin(7, .5)) = 2 * 8/128
    a = [True] * 6 + [False] * 1 + [True] * 3 + [False] * 5
    b = [False] * 6 + [True] * 1 + [True] * 3 + [False] * 5
    t = mcnemar_exact(a, b)
    assert (t["a_only"], t["b_only"], t["n"]) == (6, 1, 15)
    assert t["p_value"] == pytest.approx(16 / 128)
    assert mcnemar_exact([True, False], [True, False])["p_value"] == 1.0
    # symmetric
    assert mcnemar_exact(b, a)["p_value"] == pytest.approx(16 / 128)
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


def test_mean_sd():
    m, sd = mean_sd([0.5, 0.7, 0.9])
    assert m == pytest.approx(0.7) and sd == pytest.approx(0.2)
    assert math.isnan(mean_sd([0.4])[1])


def test_rouge_l_by_hand():
    # LCS of "the cat sat on the mat" / "the cat is on the mat" = the cat on the mat (5): P = R = 5/6
    assert rouge_l_f1("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # prediction 3 words, reference 6, LCS 3: P = 1, R = .5, F = 2/3
    assert rouge_l_f1("open the fridge", "I should open the closed fridge") == pytest.approx(2 / 3)
    assert rouge_l_f1("", "x") == 0.0 and rouge_l_f1(None, "x") == 0.0
    assert rouge_l_f1("Same words here", "same words here") == 1.0


def test_cot_match_threshold():
    assert cot_match("the cat sat on the mat", "the cat is on the mat")          # 0.83
    assert not cot_match("open the fridge", "I should open the closed fridge", 0.7)  # 0.67
    assert cot_match("open the fridge", "I should open the closed fridge", 0.6)


def test_action_normalization():
    assert normalize_action("  Go to   Desk 1. ") == "go to desk 1"
    assert action_match("take apple 1", "Take  apple 1")
    assert not action_match("take apple 1", "take apple 2")
    assert not action_match("", "")


def _rec(success=False, steps=(), error=None, truncated=False, **kw):
    meta = {"steps": len(steps), "invalid_actions": sum(bool(s.get("invalid_format")) for s in steps)}
    if error:
        meta["error"] = error
    if truncated:
        meta["truncated"] = True
    meta.update(kw.pop("meta", {}))
    return {"schema": 1, "id": kw.pop("id", "e/1"), "success": success, "steps": list(steps), "meta": meta, **kw}


def test_termination_classification():
    ok = {"action": "go", "observation": "x"}
    bad = {"action": "blah", "observation": "Invalid", "invalid_format": True}
    assert classify(_rec(True, [ok])) == "success"
    assert classify(_rec(False, [ok, ok], error="context_overflow: too long")) == "context_overflow"
    assert classify(_rec(False, [ok], error="step failed: EnvFault")) == "error"
    assert classify(_rec(False, [ok, bad, bad, bad], truncated=True)) == "invalid_format"
    assert classify(_rec(False, [bad], truncated=True)) == "invalid_format"
    assert classify(_rec(False, [bad, ok, bad, bad], truncated=True)) != "invalid_format"
    rep = [{"action": "Look", "observation": "x"}, {"action": "look", "observation": "x"},
           {"action": "look ", "observation": "x"}]
    assert classify(_rec(False, [ok, *rep], truncated=True)) == "repeated_action"
    assert classify(_rec(False, [ok, {"action": "a"}, {"action": "b"}], truncated=True)) == "step_cap"
    assert classify(_rec(False, [ok, {"action": "finish[x]"}])) == "failed"


def test_summary_by_hand():
    recs = []
    # model a: type x 2/3, type y 1/1 ; seeds 0 and 1
    for i, (t, s, seed) in enumerate([("x", True, 0), ("x", True, 0), ("x", False, 1), ("y", True, 1)]):
        recs.append(_rec(s, [{"action": "go", "reason": "one two three"}] * (i + 1), id=f"g{i}", model="a",
                         seed=seed, reward=1.0 if s else 0.0, latency_s=2.0, generated_tokens=10,
                         termination="success" if s else "step_cap",
                         meta={"task_type": t, "final_info": {"em": 1.0 if s else 0.0, "f1": 0.5}}))
    s = summarize_model(recs)
    assert s["success"]["k"] == 3 and s["success"]["n"] == 4
    assert s["success_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert s["task_types"]["x"]["k"] == 2 and s["task_types"]["x"]["n"] == 3
    assert s["seeds"]["mean"] == pytest.approx((1.0 + 0.5) / 2)
    assert s["steps_mean"] == pytest.approx(2.5) and s["steps_mean_success"] == pytest.approx((1 + 2 + 4) / 3)
    assert s["reason_tokens_per_span"] == 3 and s["reason_tokens_per_episode"] == pytest.approx(3 * 2.5)
    assert s["tokens_per_s"] == pytest.approx(40 / 8)
    assert s["scores"] == {"em": pytest.approx(0.75), "f1": pytest.approx(0.5)}
    assert s["terminations"] == {"success": 3, "step_cap": 1}
    # paired test over the same episodes
    other = [dict(r, model="b", success=False) for r in recs]
    both = summarize(recs + other, ["a", "b"])
    assert both["pairs"][0]["a_only"] == 3 and both["pairs"][0]["b_only"] == 0
    assert both["pairs"][0]["p_value"] == pytest.approx(0.25)


def test_paired_action_tests_count_discordant_steps():
    from scipy.stats import binomtest

    from sadcli.eval.fidelity import paired_action_tests

    models = {"a": {"action_match_steps": [1, 1, 1, 0, 1, 0]}, "b": {"action_match_steps": [0, 0, 1, 0, 1, 1]},
              "c": {"action_match": {"k": 0, "n": 0}}}          # no generation: left out
    (t,) = paired_action_tests(models)
    assert (t["a"], t["b"], t["n"], t["a_only"], t["b_only"]) == ("a", "b", 6, 2, 1)
    assert t["p_value"] == pytest.approx(binomtest(2, 3, 0.5).pvalue) == pytest.approx(1.0)
    assert paired_action_tests({"a": {"action_match_steps": [1] * 6}, "b": {"action_match_steps": [0] * 6}})[0][
        "p_value"] == pytest.approx(2 / 2 ** 6)
