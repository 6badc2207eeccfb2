"""Issue 9, items 1, 2, 3, 8, 10, 13: output paths that are not files, OS errors, skip bookkeeping,
collect's output, huge records, messages. Each test fails on main before the fix (170102b)."""

from __future__ import annotations

import json
import os
import pathlib
import stat

from typer.testing import CliRunner

from sadcli.cli import app

runner = CliRunner()
COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"


def sad(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def clean_error(r, *words):
    assert r.exit_code == 1, (r.exit_code, r.output)
    assert r.stderr.startswith("Error:") or "\nError:" in r.stderr, r.stderr
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def structured(tmp_path, n=3):
    p = tmp_path / "x.jsonl"
    p.write_text("".join(json.dumps({"id": f"r{i}", "task": "Count.", "steps": [
        {"reason": "I start.", "action": "say[1]", "observation": "ok"},
        {"reason": "Next.", "action": "say[2]", "observation": "done"}]}) + "\n" for i in range(n)))
    return p


def segmented(tmp_path, n=3):
    out = tmp_path / "seg.jsonl"
    assert sad("segment", structured(tmp_path, n), "-o", out, "-q").exit_code == 0
    return out


# --- item 1: a FIFO or device at -o is written in place, never replaced -------------------------

def test_fifo_output_is_streamed_not_replaced(tmp_path, fifo_reader):
    path, got = fifo_reader()
    r = sad("segment", structured(tmp_path), "-o", path, "-q")
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(os.stat(path).st_mode)          # main turned it into a regular file
    assert len(got().decode().splitlines()) == 3
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".sad-")]


def test_device_node_output_stays_a_device(tmp_path):
    if os.geteuid() != 0:  # mknod needs root: a FIFO stands in for a device (same code path)
        os.mkfifo(tmp_path / "null")
        import threading

        threading.Thread(target=lambda: open(tmp_path / "null", "rb").read(), daemon=True).start()
        want = stat.S_ISFIFO
    else:
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null in tmp_path
        want = stat.S_ISCHR
    r = sad("segment", structured(tmp_path), "-o", tmp_path / "null", "-q")
    assert r.exit_code == 0, r.output
    assert want(os.stat(tmp_path / "null").st_mode)


def test_fifo_without_reader_is_an_error_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "f")
    clean_error(sad("segment", structured(tmp_path), "-o", tmp_path / "f", "-q"), "FIFO")
    assert stat.S_ISFIFO(os.stat(tmp_path / "f").st_mode)


def test_new_files_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "seg.jsonl"
        assert sad("segment", structured(tmp_path), "-o", out, "-q").exit_code == 0
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o644   # main: 0600 (mkstemp)
        out.chmod(0o640)
        assert sad("segment", structured(tmp_path), "-o", out, "-q").exit_code == 0
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o640   # a replaced file keeps its mode
    finally:
        os.umask(old)


def test_symlink_output_replaces_the_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.jsonl"
    target.write_text("OLD\n")
    (tmp_path / "link.jsonl").symlink_to(target)
    assert sad("segment", structured(tmp_path), "-o", tmp_path / "link.jsonl", "-q").exit_code == 0
    assert (tmp_path / "link.jsonl").is_symlink()
    assert len(target.read_text().splitlines()) == 3


# --- item 2: mask-check --on-error skip with a bad JSON line before a good record ----------------

def test_mask_check_skip_counts_a_bad_json_line(tmp_path):
    seg = segmented(tmp_path, 2).read_text()
    rej, out = tmp_path / "rej.jsonl", tmp_path / "out.jsonl"
    r = sad("mask-check", "-", "--on-error", "skip", "--rejects", rej, "-o", out, "-q",
            input="{bad\n" + seg)
    assert r.exit_code == 0, r.output                      # main: KeyError: 0
    assert rej.read_text() == "{bad\n"
    assert out.read_text() == seg                          # input lines = output + rejects


# --- item 3: collect validates everything before it touches -o -----------------------------------

def test_collect_keeps_an_existing_file_when_options_are_bad(tmp_path):
    k = tmp_path / "k.jsonl"
    k.write_text('{"id": "old"}\n' * 5)
    r = sad("collect", "--env", COUNTER, "-n", "2", "--env-opt", "games=0", "-o", k, "-q")
    assert r.exit_code != 0
    assert k.read_text() == '{"id": "old"}\n' * 5          # main: emptied


def test_collect_refuses_a_non_empty_output_without_resume_or_force(tmp_path):
    k = tmp_path / "k.jsonl"
    k.write_text('{"id": "old"}\n')
    clean_error(sad("collect", "--env", COUNTER, "-n", "2", "-o", k, "-q"), "--resume", "--force")
    assert k.read_text() == '{"id": "old"}\n'
    r = sad("collect", "--env", COUNTER, "-n", "2", "-o", k, "-q", "--force")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["id"] for x in k.read_text().splitlines()] == ["counter/train/2/0", "counter/train/3/1"]


# --- item 8: OS errors are Error: lines; every output checked before the main one -----------------

def test_output_is_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    clean_error(sad("segment", structured(tmp_path), "-o", tmp_path / "d", "-q"), "directory")
    clean_error(sad("mask-check", segmented(tmp_path), "-o", tmp_path / "d", "-q"), "directory")
    clean_error(sad("collect", "--env", COUNTER, "-n", "1", "-o", tmp_path / "d", "-q"), "directory")


def test_bad_side_output_fails_before_the_main_output_exists(tmp_path):
    (tmp_path / "d").mkdir()
    out = tmp_path / "out.jsonl"
    clean_error(sad("segment", structured(tmp_path), "-o", out, "--html", tmp_path / "d", "-q"), "--html")
    assert not out.exists()
    clean_error(sad("mask-check", segmented(tmp_path), "-o", out, "--plot", tmp_path / "d", "-q"), "--plot")
    assert not out.exists()                                 # main: out.jsonl written, then a traceback


def test_output_under_a_file_is_an_error(tmp_path):
    (tmp_path / "f").write_text("x")
    clean_error(sad("segment", structured(tmp_path), "-o", tmp_path / "f" / "out.jsonl", "-q"))


# --- item 10: a huge record is cut by characters before tokenizing --------------------------------

def test_huge_record_is_cut_before_tokenizing(tmp_path, tokenizer, monkeypatch):
    from sadcli.masks import build
    from sadcli.masks.charcut import char_bound
    from sadcli.segment import segment_record

    rec = segment_record({"id": "big", "task": "Count.", "steps": [
        {"reason": "word " * 400_000, "action": "say[1]", "observation": "ok"}]})   # 2 MB of reasoning
    seen = []
    real = build._Encoder.__call__

    def spy(self, texts, add_special_tokens):
        seen.extend(len(t) for t in texts)
        return real(self, texts, add_special_tokens)

    monkeypatch.setattr(build._Encoder, "__call__", spy)
    ex = next(build.build_examples([rec], tokenizer, max_length=64, window="truncate"))
    assert max(seen) <= char_bound(tokenizer, 64) < len(rec["text"]) / 10   # main: all 2 MB tokenized
    full = next(build.build_examples([segment_record({"id": "s", "task": "Count.", "steps": [
        {"reason": "word " * 2000, "action": "say[1]", "observation": "ok"}]})], tokenizer, max_length=64,
        window="truncate"))
    assert ex.input_ids == full.input_ids                   # the kept tokens are the same
    assert ex.stats.truncated_reason > 300_000              # the cut is counted (estimated)


def test_huge_record_cut_keeps_the_end_too(tokenizer):
    from sadcli.masks import build
    from sadcli.segment import segment_record

    steps = [{"reason": "word " * 300_000, "action": "say[1]", "observation": "ok"},
             {"reason": "Now the end.", "action": "say[2]", "observation": "done"}]
    rec = segment_record({"id": "big", "task": "Count.", "steps": steps})
    ex = next(build.build_examples([rec], tokenizer, max_length=32, keep="end", window="truncate"))
    want = tokenizer(rec["text"][-5000:])["input_ids"][-32:]
    assert ex.input_ids == want
    assert len(ex.input_ids) == 32


# --- item 13: messages --------------------------------------------------------------------------

def test_invalid_utf8_is_named_with_its_byte(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"id": "caf\xe9"}\n')
    r = sad("segment", p, "-q")
    clean_error(r, "invalid UTF-8 at byte 11")
    assert "surrogates" not in r.stderr


def test_segment_still_suggests_on_error_skip(tmp_path):
    clean_error(sad("segment", "-", "-q", input="{bad\n"), "--on-error skip")
