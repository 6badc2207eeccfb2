"""Fixtures of the reliability tests: temp dirs only, tiny models, a FIFO with a reader, a full disk."""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import subprocess
import threading
import types

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fifo_reader(tmp_path):
    """``make() -> (path, result)``: a FIFO in tmp_path with a thread reading it; ``result()`` joins
    and returns the bytes read."""
    threads = []  # (thread, path)

    def make(name="fifo"):
        path = tmp_path / name
        os.mkfifo(path)
        got = bytearray()

        def read():
            with open(path, "rb") as f:
                while chunk := f.read(65536):
                    got.extend(chunk)

        t = threading.Thread(target=read, daemon=True)
        t.start()
        threads.append((t, path))

        def result(timeout=60):
            t.join(timeout)
            return bytes(got)

        return path, result

    yield make
    for t, path in threads:  # a reader still waiting: open the write end once so it sees the end
        if t.is_alive():
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _try_tmpfs(path: pathlib.Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """``.path``: a folder where writing fails with ENOSPC: a 64 KiB tmpfs (``.mounted``) when this
    process may mount one (the test fills it), else (unprivileged CI) ``write`` on files opened there
    through ``os.fdopen`` (sad's writer) patched to raise ENOSPC."""
    d = tmp_path / "full"
    d.mkdir()
    mounted = _try_tmpfs(d, "64k")
    if not mounted:
        import sadcli.fsutil as fsutil

        real_fdopen = os.fdopen

        class Full:
            def __init__(self, fh):
                self.fh = fh

            def write(self, data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def __getattr__(self, name):
                return getattr(self.fh, name)

        def fdopen(fd, *a, **kw):
            fh = real_fdopen(fd, *a, **kw)
            return Full(fh) if str(os.readlink(f"/proc/self/fd/{fd}")).startswith(str(d)) else fh

        monkeypatch.setattr(fsutil.os, "fdopen", fdopen)
    yield types.SimpleNamespace(path=d, mounted=mounted)
    if mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path, monkeypatch):
    """A folder nothing can be created in: chmod 0500 for a normal user; for root (who ignores
    permissions) the immutable attribute, else mkstemp/open patched to raise EACCES there."""
    d = tmp_path / "ro"
    d.mkdir()
    (d / "old.jsonl").write_text("OLD\n")
    if os.geteuid() != 0:
        d.chmod(0o500)
        yield d
        d.chmod(0o700)
        return
    r = subprocess.run(["chattr", "+i", str(d)], capture_output=True)
    if r.returncode == 0:
        yield d
        subprocess.run(["chattr", "-i", str(d)], capture_output=True)
        return
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **kw):
        if dir is not None and str(dir).startswith(str(d)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    yield d
