"""Fault injection for every command that writes output, and every side output.

For segment (-o, --rejects, --html), mask-check (-o, --rejects, --plot), collect (-o) and distill
(-o, --log): an unwritable place, a directory as the path, a FIFO as the path, a full disk, SIGINT
mid-write and ``kill -9`` mid-write + rerun. Each asserts the exit code, one ``Error:`` line (or
``Interrupted.``), no traceback, and that what the output path held before is intact.

Everything lives in pytest's tmp_path: FIFOs are made with os.mkfifo, the full disk is a 64 KiB tmpfs
when this process may mount one (else sad's writes are patched to raise ENOSPC), real device files are
never touched.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from sadcli.cli import app


def _sigint_default() -> None:
    """preexec_fn: SIGINT at its default disposition in the child. A test run started as a background job
    (`cmd &` in a non-interactive shell, e.g. a CI wrapper) passes SIGINT down *ignored*, and Python then
    installs no KeyboardInterrupt handler; a terminal user's Ctrl-C is what these tests mean to send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

runner = CliRunner()
COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"
OLD = "OLD CONTENT\n"

# (command, option): the outputs under test
TARGETS = [("segment", "-o"), ("segment", "--rejects"), ("segment", "--html"),
           ("mask-check", "-o"), ("mask-check", "--rejects"), ("mask-check", "--plot"),
           ("collect", "-o"), ("distill", "--log"), ("distill", "-o")]
IDS = [f"{c}{o}" for c, o in TARGETS]


def sad(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def assert_clean_error(r, *words):
    assert r.exit_code == 1, (r.exit_code, r.output)
    assert "Error:" in r.stderr, r.stderr
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    for w in words:
        assert w in r.stderr, (w, r.stderr)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    raw = d / "raw.jsonl"
    raw.write_text("".join(json.dumps({"id": f"r{i}", "task": "Count.", "steps": [
        {"reason": "I start.", "action": "say[1]", "observation": "ok"}]}) + "\n" for i in range(4)) + "{bad\n")
    seg = d / "seg.jsonl"
    assert sad("segment", raw, "--on-error", "skip", "-o", seg, "-q").exit_code == 0
    seg_bad = d / "seg_bad.jsonl"
    seg_bad.write_text(seg.read_text() + "{bad\n")
    return {"raw": raw, "seg": seg, "seg_bad": seg_bad, "dir": d}


def args_for(cmd, opt, path, inputs, teacher=None):
    """The command line that writes ``opt`` to ``path`` (other outputs go to a scratch folder)."""
    scratch = inputs["dir"] / "scratch"
    scratch.mkdir(exist_ok=True)
    main = ["-o", scratch / f"{cmd}-main.jsonl"]
    if cmd == "segment":
        base = ["segment", inputs["raw"], "--on-error", "skip", "-q"]
        return base + (["-o", path] if opt == "-o" else main + [opt, path])
    if cmd == "mask-check":
        base = ["mask-check", inputs["seg_bad"], "--on-error", "skip", "-q"]
        return base + (["-o", path] if opt == "-o" else main + [opt, path])
    if cmd == "collect":
        return ["collect", "--env", COUNTER, "-n", "2", "-q", "-o", path]
    assert teacher is not None
    base = ["distill", inputs["seg"], "--teacher", teacher, "--student-layers", "1", "--max-length", "64",
            "--max-steps", "1", "--batch-size", "2", "-q"]
    if opt == "-o":
        return base + ["-o", path]
    return base + ["-o", scratch / f"distill-{time.monotonic_ns()}", "--log", path]


def teacher_for(cmd, request):
    return request.getfixturevalue("tiny_teacher") if cmd == "distill" else None


# --- unwritable place -------------------------------------------------------------------------

@pytest.mark.parametrize("cmd,opt", TARGETS, ids=IDS)
def test_unwritable_location(cmd, opt, inputs, readonly_dir, request):
    path = readonly_dir / ("old.jsonl" if cmd not in ("collect", "distill") else "new")
    r = sad(*args_for(cmd, opt, path, inputs, teacher_for(cmd, request)))
    assert_clean_error(r)
    assert (readonly_dir / "old.jsonl").read_text("utf-8") == "OLD\n"
    assert not [p for p in os.listdir(readonly_dir) if p.startswith((".sad-", ".tmp-"))]


# --- a directory as the path --------------------------------------------------------------------

@pytest.mark.parametrize("cmd,opt", TARGETS, ids=IDS)
def test_directory_as_path(cmd, opt, inputs, tmp_path, request):
    d = tmp_path / "adir"
    d.mkdir()
    (d / "keep.txt").write_text(OLD)
    if (cmd, opt) == ("distill", "-o"):  # -o IS a directory for distill: give it a file instead
        f = tmp_path / "afile"
        f.write_text(OLD)
        assert_clean_error(sad(*args_for(cmd, opt, f, inputs, teacher_for(cmd, request))), "not a directory")
        assert f.read_text() == OLD
        return
    assert_clean_error(sad(*args_for(cmd, opt, d, inputs, teacher_for(cmd, request))), "directory")
    assert (d / "keep.txt").read_text() == OLD and os.listdir(d) == ["keep.txt"]


# --- a FIFO as the path: streamed into it, never replaced ----------------------------------------

@pytest.mark.parametrize("cmd,opt", TARGETS, ids=IDS)
def test_fifo_as_path(cmd, opt, inputs, fifo_reader, tmp_path, request):
    if (cmd, opt) == ("distill", "-o"):  # a FIFO is not a folder for the student
        os.mkfifo(tmp_path / "f")
        assert_clean_error(sad(*args_for(cmd, opt, tmp_path / "f", inputs, teacher_for(cmd, request))),
                           "not a directory")
        assert stat.S_ISFIFO(os.stat(tmp_path / "f").st_mode)
        return
    path, result = fifo_reader()
    r = sad(*args_for(cmd, opt, path, inputs, teacher_for(cmd, request)))
    assert r.exit_code == 0, r.output
    data = result()
    assert stat.S_ISFIFO(os.stat(path).st_mode)                      # still a FIFO
    assert data, "nothing arrived through the FIFO"
    if opt == "--rejects":
        assert data == b"{bad\n"
    elif opt == "--plot":
        assert data.startswith(b"\x89PNG")
    elif opt == "--html":
        assert b"<html" in data.lower()
    elif cmd == "distill":
        assert json.loads(data.decode().splitlines()[0])["step"] == 1
    else:
        assert all(json.loads(x) for x in data.decode().splitlines())
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".sad-")]


# --- a full disk --------------------------------------------------------------------------------

def _fill(d):
    """Fill a mounted tmpfs so that no further byte fits."""
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("cmd,opt", TARGETS, ids=IDS)
def test_full_disk(cmd, opt, inputs, full_disk, request, monkeypatch):
    d, mounted = full_disk.path, full_disk.mounted
    if (cmd, opt) == ("distill", "-o"):
        out = d / "student"
        out.mkdir()
        (out / "keep.txt").write_text(OLD)
        if mounted:
            _fill(d)
        else:  # the model files are written by safetensors, not by sad's writer: patch the final save
            import errno

            from sadcli.distill import trainer

            def full(*a, **kw):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(trainer, "save_checkpoint", full)
        r = sad(*args_for(cmd, opt, out, inputs, teacher_for(cmd, request)))
        assert_clean_error(r, "No space left on device")
        assert (out / "keep.txt").read_text() == OLD
        leftovers = [p for p in os.listdir(out) if p.startswith(".tmp-")]
        leftovers += [p for p in os.listdir(out / "checkpoints") if p.startswith(".tmp-")] \
            if (out / "checkpoints").is_dir() else []
        assert not leftovers
        return
    path = d / "out.jsonl"
    if cmd not in ("collect", "distill"):  # collect --force and a new distill run start their file afresh
        path.write_text(OLD)
    if mounted:
        _fill(d)
    extra = ["--force"] if cmd == "collect" else []
    r = sad(*args_for(cmd, opt, path, inputs, teacher_for(cmd, request)), *extra)
    assert_clean_error(r, "No space left on device")
    if cmd not in ("collect", "distill"):
        assert path.read_text() == OLD
    assert not [p for p in os.listdir(d) if p.startswith(".sad-")]       # no temp file left behind


# --- SIGINT and kill -9 mid-write (subprocesses) ---------------------------------------------------

def _env(**extra):
    e = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e.update(extra)
    return e


def _wait(cond, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _temps(d):
    return [p for p in os.listdir(d) if p.startswith(".sad-")]


def _streaming(cmd, tmp_path, inputs, sig):
    """segment / mask-check reading stdin that we hold open: the temp outputs exist, the input is
    half-sent: the signal lands mid-write."""
    out, rej = tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    out.write_text(OLD)
    rej.write_text(OLD)
    src = inputs["raw"] if cmd == "segment" else inputs["seg"]
    args = [sys.executable, "-m", "sadcli", cmd, "-", "-o", str(out), "--on-error", "skip",
            "--rejects", str(rej)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=_env(), preexec_fn=_sigint_default)
    lines = src.read_text().splitlines(keepends=True)
    proc.stdin.write(("".join(lines[:2]) + "{bad\n").encode())
    proc.stdin.flush()
    assert _wait(lambda: len(_temps(tmp_path)) == 2, proc), proc.stderr.read().decode()
    time.sleep(0.3)  # the records sent are processed and written into the temp files
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    return proc, err.decode(), out, rej, args, src


@pytest.mark.parametrize("cmd", ["segment", "mask-check"])
def test_sigint_mid_write_keeps_the_old_outputs(cmd, tmp_path, inputs):
    proc, err, out, rej, _, _ = _streaming(cmd, tmp_path, inputs, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert out.read_text() == OLD and rej.read_text() == OLD
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("cmd", ["segment", "mask-check"])
def test_kill_9_mid_write_then_rerun(cmd, tmp_path, inputs):
    proc, err, out, rej, args, src = _streaming(cmd, tmp_path, inputs, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert out.read_text() == OLD and rej.read_text() == OLD           # the old content survives kill -9
    good = [x for x in src.read_text().splitlines(keepends=True) if x != "{bad\n"]
    p = subprocess.run(args, input=("".join(good) + "{bad\n").encode(), capture_output=True, env=_env(), timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert "Traceback" not in p.stderr.decode()
    assert len(out.read_text().splitlines()) == len(good)
    assert rej.read_text() == "{bad\n"


def test_collect_sigint_and_kill_9_then_resume(tmp_path):
    out = tmp_path / "c.jsonl"
    args = [sys.executable, "-m", "sadcli", "collect", "--env", COUNTER, "-n", "12", "--env-opt", "games=12",
            "--env-opt", "delay=0.05", "-q", "-o", str(out)]
    full = tmp_path / "full.jsonl"
    assert sad("collect", "--env", COUNTER, "-n", "12", "--env-opt", "games=12", "-q", "-o", full).exit_code == 0
    for sig, extra in ((signal.SIGINT, []), (signal.SIGKILL, ["--resume"])):
        before = out.read_text() if out.exists() else ""
        proc = subprocess.Popen(args + extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(),
                                preexec_fn=_sigint_default)
        n0 = len(before.splitlines())
        assert _wait(lambda n0=n0: out.exists() and len(out.read_text().splitlines()) >= n0 + 2, proc), \
            proc.stderr.read().decode()
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        err = err.decode()
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and "Interrupted" in err and "Traceback" not in err, err
        else:
            assert proc.returncode == -signal.SIGKILL
        assert out.read_text().startswith(before)                      # earlier episodes intact
        for line in out.read_text().splitlines()[:-1]:
            json.loads(line)
    p = subprocess.run(args + ["--resume"], capture_output=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    got = sorted(json.loads(x)["id"] for x in out.read_text().splitlines())
    assert got == sorted(json.loads(x)["id"] for x in full.read_text().splitlines())


def test_distill_sigint_and_kill_9_then_resume(tmp_path, seg_file, tiny_teacher):
    out = tmp_path / "student"
    out.mkdir()
    (out / "notes.txt").write_text(OLD)
    args = [sys.executable, "-m", "sadcli", "distill", seg_file, "--teacher", tiny_teacher, "--student-layers", "1",
            "--max-length", "64", "--batch-size", "2", "--max-steps", "4", "--save-every", "1", "-q",
            "-o", str(out), "--log", str(tmp_path / "log.jsonl")]
    for sig, step in ((signal.SIGINT, 1), (signal.SIGKILL, 2)):
        ckpt = out / "checkpoints" / f"step-{step:08d}" / "trainer_state.json"
        proc = subprocess.Popen(args + (["--resume"] if step > 1 else []), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=_env(SAD_DISTILL_STEP_SLEEP="1.0"),
                                preexec_fn=_sigint_default)
        assert _wait(ckpt.exists, proc, timeout=300), proc.stderr.read().decode()
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
        err = err.decode()
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and "Interrupted" in err and "Traceback" not in err, err
        else:
            assert proc.returncode == -signal.SIGKILL
        assert (out / "notes.txt").read_text() == OLD
        assert not (out / "model.safetensors").exists()
    p = subprocess.run(args + ["--resume"], capture_output=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    assert (out / "model.safetensors").exists() and (out / "notes.txt").read_text() == OLD
    assert [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]
