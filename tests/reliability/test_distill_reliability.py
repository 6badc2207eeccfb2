"""Issue 9 for `sad distill`, items 4, 6, 7, 8, 9, 12, 13 (each fails on 170102b), tiny models only."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from sadcli.cli import app

runner = CliRunner()


def sad(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def distill(seg, teacher, out, *extra):
    return sad("distill", seg, "--teacher", teacher, "--student-layers", "1", "--max-length", "96",
               "--batch-size", "4", "--max-steps", "2", "--lr", "1e-3", "-o", out, "-q", *extra)


def clean_error(r, *words):
    assert r.exit_code == 1, (r.exit_code, r.output)
    assert "Error:" in r.stderr and "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def records(path):
    return [json.loads(x) for x in open(path, encoding="utf-8") if x.strip()]


def write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


# --- item 4: no code from a checkpoint or a pickled model ---------------------------------------

class Payload:
    """Unpickling this creates a file: the harmless stand-in for a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_resume_refuses_a_pickle_payload_and_runs_nothing(seg_file, tiny_teacher, tmp_path):
    import torch

    out = tmp_path / "out"
    r = distill(seg_file, tiny_teacher, out, "--max-steps", "2", "--save-every", "1")
    assert r.exit_code == 0, r.output
    ckpt = out / "checkpoints" / "step-00000002"
    marker = tmp_path / "PWNED"
    state = torch.load(ckpt / "training.pt", weights_only=False)  # our own file: trusted here
    state["rng"]["payload"] = Payload(str(marker))
    torch.save(state, ckpt / "training.pt")
    r = distill(seg_file, tiny_teacher, out, "--max-steps", "2", "--save-every", "1", "--resume")
    clean_error(r, "training.pt", "weights_only")
    assert not marker.exists()                                       # main: the payload ran


def test_pickled_only_model_folder_is_refused(tmp_path, seg_file, tiny_teacher):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_teacher, folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    r = sad("distill", seg_file, "--teacher", tiny_teacher, "--student", folder, "--max-steps", "1",
            "-o", tmp_path / "out", "-q")
    clean_error(r, "pickled", "safe_serialization=True")


# --- item 6: spans that do not hold what they claim stop distill ---------------------------------

def test_distill_stops_on_a_mislabelled_span(seg_file, tiny_teacher, tmp_path):
    recs = records(seg_file)
    sp = recs[2]["spans"]
    i = next(j for j, s in enumerate(sp) if s["kind"] == "reason")
    sp[i]["kind"], sp[i + 1]["kind"] = "act", "reason"                # reason/act swapped
    bad = write(tmp_path / "bad.jsonl", recs)
    r = distill(bad, tiny_teacher, tmp_path / "out")
    clean_error(r, f"bad.jsonl:3: span {i} (act, step 0) does not hold steps[0].action", "re-run sad segment")
    assert not (tmp_path / "out").exists()


def test_distill_stops_on_a_step_that_does_not_exist(seg_file, tiny_teacher, tmp_path):
    recs = records(seg_file)
    recs[0]["spans"][-1]["step"] = 99
    r = distill(write(tmp_path / "bad.jsonl", recs), tiny_teacher, tmp_path / "out")
    clean_error(r, "bad.jsonl:1:", "step 99")


def test_records_without_steps_need_trust_spans(seg_file, tiny_teacher, tmp_path):
    recs = records(seg_file)
    for rec in recs:
        del rec["steps"]
    nosteps = write(tmp_path / "nosteps.jsonl", recs)
    clean_error(distill(nosteps, tiny_teacher, tmp_path / "a"), "--trust-spans")
    r = distill(nosteps, tiny_teacher, tmp_path / "b", "--trust-spans", "--max-steps", "1")
    assert r.exit_code == 0, r.output


# --- item 7: --emit input is truncated and its ids validated -------------------------------------

@pytest.fixture
def emitted(seg_file, tmp_path):
    out = tmp_path / "emit.jsonl"
    r = sad("mask-check", seg_file, "--emit", "--window", "truncate", "-o", out, "-q")
    if r.exit_code == 2:  # no --window option: plain --emit
        r = sad("mask-check", seg_file, "--emit", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    return out


def test_emit_input_is_truncated_and_counted(emitted, tiny_teacher, tmp_path):
    longest = max(len(r["input_ids"]) for r in records(emitted))
    assert longest > 40
    out = tmp_path / "out"
    r = sad("distill", emitted, "--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "16",
            "--batch-size", "4", "--max-steps", "1", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    data = json.loads((out / "sad_config.json").read_text())["data"]
    assert data["truncated_records"] == len(records(emitted))           # main: 0
    assert data["tokens"] == 16 * len(records(emitted))


@pytest.mark.parametrize("bad_id", [10 ** 6, -3])
def test_emit_ids_outside_the_vocabulary_are_an_error(emitted, tiny_teacher, tmp_path, bad_id):
    recs = records(emitted)
    recs[1]["input_ids"][4] = bad_id
    r = sad("distill", write(tmp_path / "bad.jsonl", recs), "--teacher", tiny_teacher, "--student-layers", "1",
            "--max-steps", "1", "-o", tmp_path / "out", "-q")
    clean_error(r, "bad.jsonl:2:", f"input_ids[4] = {bad_id}")                # main: IndexError


# --- item 8: bad output locations are errors before any work ------------------------------------

def test_distill_output_that_is_a_file(seg_file, tiny_teacher, tmp_path):
    f = tmp_path / "out"
    f.write_text("keep me")
    clean_error(distill(seg_file, tiny_teacher, f), "not a directory")
    assert f.read_text() == "keep me"


def test_distill_log_that_is_a_directory_fails_before_training(seg_file, tiny_teacher, tmp_path):
    (tmp_path / "logdir").mkdir()
    clean_error(distill(seg_file, tiny_teacher, tmp_path / "out", "--log", tmp_path / "logdir"), "--log")
    assert not (tmp_path / "out").exists()


# --- item 9: leftovers ----------------------------------------------------------------------------

def test_resume_cleans_stale_temp_dirs(seg_file, tiny_teacher, tmp_path):
    out = tmp_path / "out"
    assert distill(seg_file, tiny_teacher, out, "--max-steps", "2", "--save-every", "1").exit_code == 0
    (out / ".tmp-final-abc").mkdir()
    (out / ".tmp-final-abc" / "model.safetensors").write_bytes(b"x" * 1000)
    (out / "checkpoints" / ".tmp-step-xyz").mkdir()
    r = distill(seg_file, tiny_teacher, out, "--max-steps", "3", "--save-every", "1", "--resume")
    # --max-steps changed: the fingerprint refuses the resume, but the temp dirs are gone either way
    assert not (out / ".tmp-final-abc").exists() and not (out / "checkpoints" / ".tmp-step-xyz").exists(), r.output


def test_interrupt_before_the_first_step_leaves_no_directory(seg_file, tiny_teacher, tmp_path, monkeypatch):
    from sadcli.distill import trainer

    def interrupted(self, step):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Loop, "step", interrupted)
    out = tmp_path / "new" / "out"
    r = distill(seg_file, tiny_teacher, out)
    assert r.exit_code == 130 and "Traceback" not in r.output
    assert not out.exists()                                             # main: an empty folder


# --- item 12: log and summary ----------------------------------------------------------------------

def test_log_has_each_step_once_after_resume(seg_file, tiny_teacher, tmp_path):
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    args = ("--max-steps", "4", "--save-every", "2", "--log", log)
    assert distill(seg_file, tiny_teacher, out, *args).exit_code == 0
    # as if killed after step 4 was logged but before its checkpoint: resume from step 2
    shutil.rmtree(out / "checkpoints" / "step-00000004")
    r = distill(seg_file, tiny_teacher, out, *args, "--resume")
    assert r.exit_code == 0, r.output
    assert [x["step"] for x in records(log)] == [1, 2, 3, 4]           # main: 1 2 3 4 3 4


def test_resume_at_the_last_step_prints_no_nan(seg_file, tiny_teacher, tmp_path):
    out = tmp_path / "out"
    assert distill(seg_file, tiny_teacher, out, "--save-every", "1").exit_code == 0
    r = sad("distill", seg_file, "--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "96",
            "--batch-size", "4", "--max-steps", "2", "--lr", "1e-3", "-o", out, "--save-every", "1", "--resume")
    assert r.exit_code == 0, r.output
    assert "loss nan" not in r.stderr and "nothing left to train (already at step 2)" in r.stderr


def test_logged_lr_is_the_rate_the_step_used(seg_file, tiny_teacher, tmp_path):
    log = tmp_path / "log.jsonl"
    r = distill(seg_file, tiny_teacher, tmp_path / "out", "--max-steps", "3", "--warmup-steps", "2",
                "--schedule", "constant", "--log", log)
    assert r.exit_code == 0, r.output
    lrs = [x["lr"] for x in records(log)]
    assert lrs == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3])           # main: [2/3, 1, 1] x 1e-3


def test_all_masked_steps_are_skipped_and_counted(seg_file, tiny_teacher, tmp_path):
    from sadcli.segment import segment_record

    recs = records(seg_file)[:2]
    recs.append(segment_record({"id": "quiet", "task": "Watch.", "steps": [{"observation": "Nothing happens."}]}))
    data = write(tmp_path / "d.jsonl", recs)
    out = tmp_path / "out"
    r = sad("distill", data, "--teacher", tiny_teacher, "--student-layers", "1", "--batch-size", "1",
            "--max-steps", "6", "--save-every", "6", "-o", out)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "sad_config.json").read_text())["summary"]
    assert summary["skipped_steps"] == 2                                 # 6 steps over 3 records, batch 1
    assert "skipped" in r.stderr
    import torch

    state = torch.load(out / "checkpoints" / "step-00000006" / "training.pt", weights_only=True)
    assert state["scheduler"]["last_epoch"] == 6 - 2                     # no scheduler step for them


# --- item 13: messages that fit distill -------------------------------------------------------------

def test_distill_bad_json_does_not_suggest_on_error(tiny_teacher, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{bad\n")
    r = sad("distill", bad, "--teacher", tiny_teacher, "-o", tmp_path / "out", "-q")
    clean_error(r, "bad.jsonl:1")
    assert "--on-error" not in r.stderr


def test_keep_end_hint_is_not_given_with_keep_end(tiny_teacher, tmp_path):
    from sadcli.segment import segment_record

    rec = segment_record({"id": "long", "task": "x " * 200,
                          "steps": [{"reason": "r", "action": "a", "observation": "y " * 200}]})
    data = write(tmp_path / "d.jsonl", [rec])
    for keep, hinted in (("start", True), ("end", False)):
        r = sad("distill", data, "--teacher", tiny_teacher, "--max-length", "8", "--keep", keep,
                *(["--window", "truncate"] if "--window" in _distill_help() else []),
                "-o", tmp_path / keep, "-q")
        clean_error(r, "no reasoning or action token")
        assert ("--keep end" in r.stderr) == hinted, r.stderr


def _distill_help() -> str:
    return sad("distill", "--help").output



# --- item 1 (distill side): the student and its checkpoints get the usual permissions -------------

def test_student_files_get_umask_permissions(seg_file, tiny_teacher, tmp_path):
    import stat

    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert distill(seg_file, tiny_teacher, out, "--max-steps", "1").exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out / "model.safetensors").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(out / "sad_config.json").st_mode) == 0o644
    ckpt = next((out / "checkpoints").iterdir())
    assert stat.S_IMODE(os.stat(ckpt).st_mode) == 0o755                 # main: 0700 (mkdtemp)
