"""Every stage reads `sad segment --output-format parquet` shards and gives what it gives on the JSONL."""

from __future__ import annotations

import json

import pytest
from distill_fixtures import structured_records, write_jsonl
from typer.testing import CliRunner

from sadcli.cli import app

runner = CliRunner()


def sad(*args, ok=True):
    r = runner.invoke(app, [*map(str, args)], prog_name="sad")
    if ok:
        assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same segmented records as JSONL and as 3 Parquet shards."""
    d = tmp_path_factory.mktemp("both")
    src = write_jsonl(d / "in.jsonl", structured_records(8))
    sad("segment", src, "-q", "-o", d / "seg.jsonl")
    sad("segment", src, "-q", "--output-format", "parquet", "--shards", "3", "-o", d / "seg")
    return str(d / "seg.jsonl"), str(d / "seg")


def lines(text):
    return [json.loads(x) for x in text.splitlines()]


def test_segment_reads_its_parquet(both):
    jl, pq = both
    assert sad("segment", pq, "-q").stdout == sad("segment", jl, "-q").stdout


def test_mask_check(both):
    jl, pq = both
    a, b = sad("mask-check", jl, "--max-length", "48"), sad("mask-check", pq, "--max-length", "48")
    assert lines(a.stdout) == lines(b.stdout)     # records pass through
    assert a.stderr == b.stderr                   # the same audit
    a, b = sad("mask-check", jl, "--emit", "-q"), sad("mask-check", pq, "--emit", "-q")
    assert a.stdout == b.stdout


def test_curriculum(both):
    jl, pq = both
    a = sad("curriculum", jl, "--gamma", "0", "-q")
    b = sad("curriculum", pq, "--gamma", "0", "-q")
    assert a.stdout == b.stdout and a.stdout


def test_distill_from_parquet_trains_like_jsonl(both, tiny_teacher, tmp_path):
    jl, pq = both
    logs = []
    for name, data, cache in (("jl", jl, "off"), ("pq", pq, str(tmp_path / "tc")), ("pq2", pq, str(tmp_path / "tc"))):
        log = tmp_path / f"{name}.jsonl"
        r = sad("distill", data, "--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "64",
                "--max-steps", "3", "--batch-size", "2", "--log-every", "1", "--token-cache", cache,
                "-o", tmp_path / name, "--log", log)
        if name == "pq2":
            assert "token cache: hit" in r.stderr
        logs.append([{k: v for k, v in rec.items() if k in ("step", "loss", "loss_cot", "loss_act", "tokens")}
                     for rec in lines(log.read_text()) if "loss" in rec])
    assert logs[0] and logs[0] == logs[1] == logs[2]
    cfg = [json.loads((tmp_path / n / "sad_config.json").read_text())["data"] for n in ("jl", "pq")]
    assert cfg[0]["fingerprint"] == cfg[1]["fingerprint"] and cfg[0]["examples"] == cfg[1]["examples"]


def test_eval_data_reads_parquet(both, tiny_teacher, tmp_path):
    jl, pq = both
    reports = []
    for name, data in (("jl", jl), ("pq", pq)):
        rep = tmp_path / f"{name}.json"
        sad("eval", "-m", f"self={tiny_teacher}", "--teacher", tiny_teacher, "--data", data, "--reference",
            "teacher", "--max-new-tokens", "4", "--report", rep, "-q")
        fid = json.loads(rep.read_text())["fidelity"]
        fid.pop("data")
        reports.append(fid)
    assert reports[0] == reports[1] and reports[0]["examples"]


def test_workers_give_the_one_process_output_and_errors(tmp_path, shared, monkeypatch):
    import sadcli.segment.stream

    monkeypatch.setattr(sadcli.segment.stream, "CHUNK", 16)  # many chunks in flight
    src = shared("fireact_hotpotqa_messages.jsonl")
    head = tmp_path / "in.jsonl"
    rows = open(src, encoding="utf-8").read().splitlines()[:120]
    head.write_text("\n".join(rows) + "\n")
    one = sad("segment", head, "-q").stdout
    assert sad("segment", head, "-q", "-j", "2").stdout == one
    # errors: the same first error (stop), the same rejects and output (skip), across chunk boundaries
    bad = rows[:]
    for i in (3, 57, 58, 110):
        bad[i] = "{broken" if i != 57 else json.dumps({"nothing": 1})
    (tmp_path / "bad.jsonl").write_text("\n".join(bad) + "\n")
    a = sad("segment", tmp_path / "bad.jsonl", "-q", ok=False)
    b = runner.invoke(app, ["segment", str(tmp_path / "bad.jsonl"), "-q", "-j", "2"], prog_name="sad")
    assert a.exit_code == b.exit_code == 1 and a.stderr == b.stderr and a.stdout == b.stdout
    outs = []
    for j in ("1", "2"):
        rej = tmp_path / f"rej{j}.jsonl"
        r = sad("segment", tmp_path / "bad.jsonl", "--on-error", "skip", "--rejects", rej, "-j", j)
        outs.append((r.stdout, r.stderr, rej.read_text()))
    assert outs[0] == outs[1] and outs[0][2].count("\n") == 4
