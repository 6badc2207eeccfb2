"""`sad distill --loss sft` (fine-tune a teacher, no teacher model) and the provenance check."""

from __future__ import annotations

import json

from distill_fixtures import segmented_records, write_jsonl
from typer.testing import CliRunner

from sadcli.cli import app

runner = CliRunner()


def distill(*args):
    return runner.invoke(app, ["distill", *map(str, args)], prog_name="sad")


def test_sft_trains_the_student_without_loading_a_teacher(tiny_teacher, seg_file, tmp_path):
    out, log = tmp_path / "teacher", tmp_path / "log.jsonl"
    # --teacher points nowhere: sft must not load (or even resolve) a teacher model
    r = distill(seg_file, "--loss", "sft", "--student", tiny_teacher, "--teacher", tmp_path / "no-such-model",
                "--max-length", "128", "--batch-size", "4", "--max-steps", "2", "--save-every", "1",
                "-o", out, "-q", "--log", log)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["step"] for x in rows] == [1, 2] and rows[0]["loss"] > 0
    cfg = json.loads((out / "sad_config.json").read_text())
    assert cfg["loss"]["name"] == "sft" and cfg["teacher"] is None
    assert cfg["student"]["kind"] == "spec"
    assert (out / "model.safetensors").exists() and (out / "checkpoints").is_dir()
    # resume continues from the newest checkpoint to a longer run
    r = distill(seg_file, "--loss", "sft", "--student", tiny_teacher, "--teacher", tmp_path / "no-such-model",
                "--max-length", "128", "--batch-size", "4", "--max-steps", "2", "--save-every", "1",
                "-o", out, "-q", "--log", log, "--resume")
    assert r.exit_code == 0, r.output


def test_provenance_warns_when_the_teacher_did_not_write_the_text(tiny_teacher, tmp_path):
    recs = segmented_records(4)
    for r in recs:
        r["teacher"] = "expert"
    data = write_jsonl(tmp_path / "expert.jsonl", recs)
    out = tmp_path / "seqkd"
    r = distill(data, "--loss", "seqkd", "--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "128",
                "--max-steps", "1", "-o", out)
    assert r.exit_code == 0, r.output
    assert "did not write" in r.stderr and "expert (4)" in r.stderr
    prov = json.loads((out / "sad_config.json").read_text())["provenance"]
    assert prov == {"record_teachers": {"expert": 4}, "teacher": tiny_teacher, "matches": False}
    # records written by the teacher itself: no warning
    for r_ in recs:
        r_["teacher"] = f"hf:{tiny_teacher}"
    own = write_jsonl(tmp_path / "own.jsonl", recs)
    r = distill(own, "--loss", "seqkd", "--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "128",
                "--max-steps", "1", "-o", tmp_path / "own")
    assert r.exit_code == 0, r.output
    assert "did not write" not in r.stderr
    assert json.loads((tmp_path / "own" / "sad_config.json").read_text())["provenance"]["matches"] is True
    # sft trains on whatever wrote the data: nothing to compare
    r = distill(data, "--loss", "sft", "--student", tiny_teacher, "--max-length", "128", "--max-steps", "1",
                "-o", tmp_path / "sft")
    assert r.exit_code == 0, r.output
    assert "did not write" not in r.stderr


def test_bucketed_span_vocab_trains_online_and_is_refused_with_a_cache(tiny_teacher, seg_file, tmp_path):
    out = tmp_path / "b"
    r = distill(seg_file, "--teacher", tiny_teacher, "--student-layers", "1", "--span-vocab", "bucketed",
                "--max-length", "128", "--max-steps", "1", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    sizes = json.loads((out / "sad_config.json").read_text())["loss"]["span_vocab_sizes"]
    assert 0 < sizes["act"] < 49152 and 0 < sizes["reason"] < 49152
    r = distill(seg_file, "--teacher", tiny_teacher, "--span-vocab", "bucketed", "--cache-teacher", tmp_path / "c",
                "--max-length", "128", "-q")
    assert r.exit_code == 1 and "Error:" in r.stderr and "bucketed" in r.stderr and "Traceback" not in r.output
    r = distill(seg_file, "--teacher", tiny_teacher, "--student-layers", "1", "--loss", "token-kd", "--span-vocab",
                "bucketed", "--max-length", "128", "--max-steps", "1", "-o", tmp_path / "t", "-q")
    assert r.exit_code == 1 and "span-aware" in r.stderr
