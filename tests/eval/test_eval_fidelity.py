"""Teacher-forced fidelity: hand-computed token metrics, prompts, teacher-vs-itself identities, the CLI."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from sadcli.cli import app
from sadcli.eval.fidelity import SpanStats, span_stats, step_prompts
from sadcli.eval.prompting import SadFormat, parse_output
from sadcli.labels import ACT, REASON
from sadcli.masks.render import render_text
from sadcli.segment.linearize import MARKERS

from .conftest import segmented  # noqa: TID252

runner = CliRunner()
torch = pytest.importorskip("torch")


def test_span_stats_by_hand():
    # two positions, vocabulary 2
    t = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    s = torch.log(torch.tensor([[0.25, 0.75], [0.6, 0.4]]))
    targets = torch.tensor([1, 0])
    kinds = torch.tensor([REASON, ACT])
    out: dict[str, SpanStats] = {}
    span_stats(t, s, targets, kinds, out)
    r, a = out["reason"].to_dict(), out["act"].to_dict()
    assert r["kl"] == pytest.approx(0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75), abs=1e-6)
    assert a["kl"] == pytest.approx(0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4), abs=1e-6)
    assert r["nll"] == pytest.approx(-math.log(0.75), abs=1e-6) and a["nll"] == pytest.approx(-math.log(0.6), abs=1e-6)
    # argmax: student [1, 0], teacher [0 (tie -> first), 0]; targets [1, 0]
    assert (r["top1_agreement"], a["top1_agreement"]) == (0.0, 1.0)
    assert (r["top1_accuracy"], a["top1_accuracy"]) == (1.0, 1.0)
    assert r["tokens"] == a["tokens"] == 1
    span_stats(t, t, targets, kinds, out := {})
    assert out["reason"].to_dict()["kl"] == 0.0 and out["act"].to_dict()["kl"] == 0.0


def test_parse_output_paper_and_native():
    mk = MARKERS["paper"]
    assert parse_output("[REASON] I open it.\n[ACT] open fridge\n[OBS] x", mk) == ("I open it.", "open fridge")
    assert parse_output(" think more\n[ACT] go north\n", mk) == ("think more", "go north")
    assert parse_output("[ACT] take apple", mk) == (None, "take apple")
    assert parse_output("closet closet", mk) == ("closet closet", None)
    assert parse_output("Thought: hm\nAction: look\n", MARKERS["native"]) == ("hm", "look")


def test_step_prompts_cut_the_text_at_the_markers():
    rec = segmented(2)[1]  # its second step has no reasoning
    ps = step_prompts(0, rec, render_text(rec), SadFormat("text", MARKERS["paper"]))
    assert [p.step for p in ps] == [0, 1]
    text = rec["text"]
    assert ps[0].cot.endswith("Who wrote Hamlet?\n[REASON]") and text.startswith(ps[0].cot)
    assert ps[0].act.endswith("I need to look up Hamlet.\n[ACT]") and text.startswith(ps[0].act)
    assert ps[0].reason == "I need to look up Hamlet." and ps[0].action == "search[Hamlet]"
    assert ps[1].reason is None and ps[1].cot.endswith("Shakespeare.\n[REASON]")
    assert ps[1].act.endswith("Shakespeare.\n[ACT]")


def test_sad_format_chat_messages_match_the_mask_renderer(tokenizer):
    from sadcli.masks.render import ChatRenderer

    rec = segmented(1)[0]
    fmt = SadFormat("chat", MARKERS["paper"])
    prompt = fmt.prompt(tokenizer, rec["system"], rec["task"], rec["steps"][:1])
    full = ChatRenderer(tokenizer)(rec).text
    assert full.startswith(prompt.removesuffix("<|im_start|>assistant\n")), "history renders as in training"
    text_prompt = SadFormat("text", MARKERS["paper"]).prompt(tokenizer, rec["system"], rec["task"], rec["steps"][:1])
    assert rec["text"].startswith(text_prompt) and text_prompt.endswith("[OBS] Paris is the capital of France, on the Seine.\n")


def _run(args):
    r = runner.invoke(app, ["eval", *map(str, args)], prog_name="sad")
    assert r.exit_code == 0, r.output
    return r


def test_teacher_against_itself(tiny_teacher, seg_file, tmp_path):
    rep = tmp_path / "r.json"
    _run(["-m", f"self={tiny_teacher}", "--teacher", tiny_teacher, "--data", seg_file, "--reference", "teacher",
          "--max-new-tokens", "12", "--report", rep, "-q"])
    f = json.loads(rep.read_text())["fidelity"]["models"]["self"]
    assert f["reason"]["kl"] == 0.0 and f["act"]["kl"] == 0.0
    assert f["reason"]["top1_agreement"] == 1.0 and f["act"]["tokens"] > 0
    assert f["action_match"]["n"] > 0 and f["action_match"]["rate"] == 1.0
    assert f["free_action_match"]["rate"] in (1.0, None) or f["free_action_match"]["n"] == 0
    assert f["cot_match"]["n"] > 0 and f["cot_match"]["rate"] == 1.0 and f["cot_rouge_l"] == 1.0


def test_student_before_and_after_distillation_and_teacher(student_dir, seg_file, tmp_path):
    rep = tmp_path / "r.json"
    r = _run(["-m", f"distilled={student_dir}", "-m", f"init:{student_dir}", "-m", f"teacher=teacher:{student_dir}",
              "--data", seg_file, "--max-new-tokens", "8", "--report", rep])
    doc = json.loads(rep.read_text())
    fi = doc["fidelity"]
    assert set(fi["models"]) == {"distilled", "init:s", "teacher"}
    assert fi["reference"] == "data" and fi["examples"] == 6 and fi["steps"] == 12
    t = fi["models"]["teacher"]
    assert t["reason"]["kl"] == 0.0 and t["act"]["kl"] == 0.0  # the teacher against itself
    for m in ("distilled", "init:s"):
        s = fi["models"][m]
        assert s["reason"]["kl"] > 0 and 0 <= s["action_match"]["rate"] <= 1
        assert s["action_match"]["n"] == 12 and s["cot_match"]["n"] == 10  # two steps of the data have no reasoning
        assert len(s["action_match_steps"]) == 12 and sum(s["action_match_steps"]) == s["action_match"]["k"]
    # paired exact McNemar tests of action match, one per pair, recounted from the per-step outcomes
    pairs = {(p["a"], p["b"]): p for p in fi["action_pairs"]}
    assert set(pairs) == {("distilled", "init:s"), ("distilled", "teacher"), ("init:s", "teacher")}
    for (a, b), p in pairs.items():
        sa, sb = fi["models"][a]["action_match_steps"], fi["models"][b]["action_match_steps"]
        assert p["a_only"] == sum(x and not y for x, y in zip(sa, sb)) and p["n"] == 12
        assert p["b_only"] == sum(y and not x for x, y in zip(sa, sb))
    assert "Teacher-forced fidelity" in r.stderr and "paired exact McNemar" in r.stderr


def test_student_rollouts_in_its_format(student_dir, tmp_path):
    from .conftest import COUNTER  # noqa: TID252

    ep = tmp_path / "e.jsonl"
    _run(["-m", f"s={student_dir}", "--env", COUNTER, "--env-opt", "games=3", "-n", "all", "-p", "3",
          "--max-new-tokens", "6", "--max-steps", "3", "-o", ep, "-q"])
    recs = [json.loads(x) for x in ep.read_text().splitlines()]
    assert len(recs) == 3
    for r in recs:
        assert r["model"] == "s" and len(r["steps"]) == 3 and r["step_cap"] == 3
        assert r["generated_tokens"] > 0 and r["termination"] in ("invalid_format", "repeated_action", "step_cap")
