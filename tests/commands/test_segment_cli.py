"""`sad segment` as a user runs it: files and pipes, previews, summaries, and clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from sadcli.cli import app

runner = CliRunner()


def run(args, input=None):
    return runner.invoke(app, args, input=input, prog_name="sad")


GOOD = json.dumps({"id": "g1", "text": "Thought: t\nAction: a[b]\nObservation: o"})


def test_stdin_to_stdout_is_pure_jsonl():
    r = run(["segment", "-"], input=GOOD + "\n\n" + GOOD + "\n")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    rec = json.loads(lines[0])
    assert rec["id"] == "g1" and rec["format"] == "react" and rec["schema"] == 1
    assert "trajectories" in r.stderr  # the summary goes to stderr only


def test_bom_and_crlf_and_blank_lines(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + (GOOD + "\r\n\r\n" + GOOD + "\r\n").encode())
    r = run(["segment", str(p), "-q"])
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    assert r.stderr == ""


def test_empty_input():
    r = run(["segment", "-"], input="")
    assert r.exit_code == 0
    assert r.stdout == ""
    assert "0 trajectories" in r.stderr


def test_malformed_json_is_a_located_error_and_no_output_file(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(GOOD + "\n{not json\n" + GOOD + "\n")
    out = tmp_path / "out.jsonl"
    r = run(["segment", str(p), "-o", str(out)])
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: {p}:2: invalid JSON")
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".sad-")]  # no temp file left


def test_unrecognized_record_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(GOOD + "\n" + json.dumps({"foo": 1}) + "\n")
    r = run(["segment", str(p)])
    assert r.exit_code == 1
    assert f"{p}:2: no recognizable trajectory format" in r.stderr
    assert "--format" in r.stderr


def test_on_error_skip_writes_rejects_verbatim(tmp_path):
    p = tmp_path / "mixed.jsonl"
    bad1, bad2 = "{oops", json.dumps({"steps": [{"action": 5}]})
    p.write_text("\n".join([GOOD, bad1, GOOD, bad2]) + "\n")
    rej = tmp_path / "rejects.jsonl"
    r = run(["segment", str(p), "--on-error", "skip", "--rejects", str(rej)])
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    assert rej.read_text().splitlines() == [bad1, bad2]
    assert "2 rejected" in r.stderr


def test_wrong_field_type_error():
    r = run(["segment", "-"], input=json.dumps({"task": "t", "steps": [{"reason": 1, "action": "a"}]}) + "\n")
    assert r.exit_code == 1
    assert "<stdin>:1: field 'steps[0].reason' must be a string or null, got int" in r.stderr


def test_json_array_input_and_item_location(tmp_path):
    p = tmp_path / "arr.json"
    p.write_text(json.dumps([json.loads(GOOD), {"foo": 2}]))
    r = run(["segment", str(p)])
    assert r.exit_code == 1
    assert f"{p}:item 2:" in r.stderr


def test_show_and_html_preview(tmp_path, shared):
    html = tmp_path / "p.html"
    out = tmp_path / "seg.jsonl"
    r = run(["segment", str(shared("fireact_hotpotqa_messages.jsonl")), "--show", "--limit", "2",
             "--html", str(html), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert len(out.read_text().splitlines()) == 500
    assert r.stderr.count("fireact_hotpotqa_messages:") == 2  # two previews
    assert "legend" in r.stderr
    page = html.read_text()
    assert "<html" in page.lower() and "finish[" in page


def test_missing_file():
    r = run(["segment", "/nonexistent/x.jsonl"])
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: no such file: /nonexistent/x.jsonl")


def test_bad_option_is_usage_error():
    r = run(["segment", "-", "--format", "nope"], input="")
    assert r.exit_code == 2


def test_broken_pipe_is_quiet(tmp_path, shared):
    src = str(shared("fireact_hotpotqa_messages.jsonl"))
    p = subprocess.run(f"{sys.executable} -m sadcli segment {src} | head -1", shell=True, capture_output=True,
                       text=True)
    assert p.returncode == 0
    assert len(p.stdout.splitlines()) == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


def test_huge_line():
    obs = "x" * 2_000_000
    rec = {"task": "t", "steps": [{"reason": "r", "action": "a", "observation": obs}]}
    r = run(["segment", "-", "-q"], input=json.dumps(rec) + "\n")
    assert r.exit_code == 0
    assert len(json.loads(r.stdout)["text"]) > 2_000_000
