"""Teacher-forced fidelity from a teacher cache (`sad eval --teacher-cache DIR`): the same numbers as a live
teacher within the cache's estimation error, the teacher against its own cache, and the refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sadcli.cli import app

from .conftest import segmented, write_jsonl  # noqa: TID252

runner = CliRunner()
pytest.importorskip("torch")


def _invoke(args):
    return runner.invoke(app, [str(a) for a in args], prog_name="sad")


def _cache(teacher, data, out, *extra) -> str:
    r = _invoke(["distill", data, "--teacher", teacher, "--cache-teacher", out, "-q", *extra])
    assert r.exit_code == 0, r.output
    return str(out)


@pytest.fixture(scope="module")
def caches(tmp_path_factory, tiny_teacher, seg_file):
    d = tmp_path_factory.mktemp("caches")
    return {"sampled": _cache(tiny_teacher, seg_file, d / "sampled"),
            "bucketed": _cache(tiny_teacher, seg_file, d / "bucketed", "--tail-samples", "0")}


def _fidelity(args, tmp_path, name) -> dict:
    rep = tmp_path / f"{name}.json"
    r = _invoke(["eval", *args, "--report", rep, "-q"])
    assert r.exit_code == 0, r.output
    return json.loads(rep.read_text())["fidelity"]


def test_cache_gives_the_live_teachers_metrics(tiny_teacher, student_dir, seg_file, caches, tmp_path):
    models = ["-m", f"s={student_dir}", "-m", f"self={tiny_teacher}"]
    live = _fidelity([*models, "--data", seg_file, "--teacher", tiny_teacher, "--max-new-tokens", "6"], tmp_path, "live")
    cached = _fidelity([*models, "--data", seg_file, "--teacher-cache", caches["sampled"], "--max-new-tokens", "6"],
                       tmp_path, "cached")
    bucketed = _fidelity([*models, "--data", seg_file, "--teacher-cache", caches["bucketed"], "--no-generate"],
                         tmp_path, "bucketed")
    assert cached["teacher_cache"] == caches["sampled"] and cached["examples"] == live["examples"] == 6
    for kind in ("reason", "act"):
        lv, cs, bk = live["models"]["s"][kind], cached["models"]["s"][kind], bucketed["models"]["s"][kind]
        assert cs["tokens"] == lv["tokens"] > 0
        # the student side is the same computation: NLL and top-1 accuracy agree to float precision
        assert cs["nll"] == pytest.approx(lv["nll"], rel=1e-5)
        assert cs["top1_accuracy"] == lv["top1_accuracy"]
        # the cached argmax is the teacher's argmax
        assert cs["top1_agreement"] == lv["top1_agreement"]
        # KL: the sampled-tail estimate is unbiased (measured here: within 0.5%); the bucketed KL of a pure
        # top-k cache is a lower bound of the dense KL (data-processing inequality)
        assert cs["kl"] == pytest.approx(lv["kl"], rel=0.02)
        assert bk["kl"] < lv["kl"]
        # the teacher against its own cache: KL 0 up to the estimate's noise, argmax always the cached one
        me = cached["models"]["self"][kind]
        assert abs(me["kl"]) < 0.02 and me["top1_agreement"] == 1.0
    # action / CoT match need only the student's generations (reference data): the same as with a live teacher
    for key in ("action_match", "cot_match", "free_action_match"):
        assert cached["models"]["s"][key] == live["models"]["s"][key]
    assert cached["models"]["s"]["kl_estimate"].startswith("sampled-tail")


def _error(args) -> str:
    r = _invoke(["eval", *args, "-q"])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and "Traceback" not in r.output
    return r.output


def test_cache_of_other_data_is_refused(student_dir, caches, tmp_path):
    other = write_jsonl(tmp_path / "other.jsonl", segmented(3))
    out = _error(["-m", f"s={student_dir}", "--data", other, "--teacher-cache", caches["sampled"], "--no-generate"])
    assert "was built from other data" in out and "other.jsonl" in out and "--cache-teacher" in out


def test_what_a_cache_cannot_give_is_refused(student_dir, seg_file, caches, tmp_path):
    base = ["-m", f"s={student_dir}", "--data", seg_file]
    out = _error([*base, "--teacher-cache", caches["sampled"], "--reference", "teacher"])
    assert "greedy generations" in out and "--reference data" in out
    out = _error([*base, "--teacher-cache", caches["sampled"], "--render", "chat", "--no-generate"])
    assert "render text" in out
    out = _error([*base, "--teacher-cache", str(tmp_path), "--no-generate"])
    assert "is not a teacher cache" in out
    r = _invoke(["eval", *base, "--teacher-cache", caches["sampled"], "--teacher", student_dir])
    assert r.exit_code == 2 and "not both" in r.output
