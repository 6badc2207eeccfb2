"""Writing output files safely: check first, write to a temp file, rename; never replace what is not a file.

- A regular file (or a path that does not exist yet) is written atomically: a temp file ``.sad-*.tmp`` in
  the same folder, renamed over the path on success, removed on any failure (a full disk, Ctrl-C). A new
  file gets the usual permissions (``0666 & ~umask``); a replaced file keeps its mode. A symlink is
  followed: its target is replaced, the link stays.
- Anything else at the path — a FIFO, a character device (``/dev/null``), ``/dev/stdout`` — is written
  in place, streamed, with no temp file: it is never turned into a regular file.
- :func:`check_output` validates a path before any work starts (a directory, a missing or read-only
  folder, a FIFO nobody reads), so a bad ``--plot`` or ``--html`` fails before the main output exists.
- :func:`os_error` turns an ``OSError`` into a :class:`~sadcli.errors.SadError` naming the path with a
  hint (``Error: out.jsonl: no space left on device — free some space...``), never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO

from sadcli.errors import SadError

TMP_PREFIX = ".sad-"
TMP_SUFFIX = ".tmp"
# paths that name an already open stream of this process: always written in place
_STREAM_PATHS = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/")

_HINTS = {
    errno.ENOSPC: "free some space or write somewhere else",
    errno.EDQUOT: "free some space or write somewhere else",
    errno.EACCES: "check the permissions, or write somewhere else",
    errno.EPERM: "check the permissions, or write somewhere else",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.EISDIR: "give a file path, not a directory",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.ENOENT: "check the path",
    errno.ENXIO: "start the reader of the FIFO first, or write to a file",
    errno.ENAMETOOLONG: "use a shorter path",
}


# temp files not yet renamed into place. Python can skip an inner ``__exit__`` when Ctrl-C lands in a
# blocking read (the interrupt is raised again at the start of that ``__exit__``), so the command's error
# boundary (``cli_errors``) removes whatever is still listed here.
_PENDING: set[str] = set()


def discard_pending() -> None:
    """Remove every temp file of a write that did not finish (called on error or interrupt)."""
    for tmp in list(_PENDING):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _PENDING.discard(tmp)


def os_error(e: OSError, path: str | None = None, what: str | None = None) -> SadError:
    """A person-readable :class:`SadError` for ``e`` (``PATH: reason — hint``)."""
    where = path or e.filename
    reason = e.strerror or str(e)
    if e.errno == errno.ENXIO:
        reason = "a FIFO that nobody reads"
    msg = f"{what}: {reason}" if what else reason
    return SadError(msg, hint=_HINTS.get(e.errno or -1, "check the path"),
                    file=str(where) if where is not None else None)


def umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def new_file_mode() -> int:
    return 0o666 & ~umask()


def new_dir_mode() -> int:
    return 0o777 & ~umask()


def is_stream_path(path: str) -> bool:
    """True when ``path`` must be written in place: not a regular file and not absent."""
    if path.startswith(_STREAM_PATHS):
        return True
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def check_output(path: str | None, what: str = "output") -> None:
    """Raise :class:`SadError` now if ``path`` cannot be written later (nothing is created).

    Accepts a writable regular file, a new file in a writable (or creatable) folder, a FIFO or a
    device. Refuses a directory, a path under a file, a folder that cannot be written.
    """
    if path is None or path == "-" or path.startswith(_STREAM_PATHS):
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise os_error(e, path, f"cannot use {what} path") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise SadError(f"{what} path is a directory", hint="give a file path, not a directory", file=path)
        if not stat.S_ISREG(st.st_mode):
            return  # FIFO, device: written in place
        if not os.access(path, os.W_OK):
            raise SadError(f"{what} file is not writable", hint=_HINTS[errno.EACCES], file=path)
    folder = os.path.dirname(os.path.abspath(os.path.realpath(path)))
    _check_folder(folder, path, what)


def _check_folder(folder: str, path: str, what: str) -> None:
    probe = folder
    while not os.path.exists(probe):  # the nearest existing ancestor must be a writable folder
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise SadError(f"cannot create {what}: {probe} is not a folder", hint=_HINTS[errno.ENOTDIR], file=path)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SadError(f"cannot create {what}: folder {probe} is not writable", hint=_HINTS[errno.EACCES],
                       file=path)
    # root passes os.access everywhere: try for real (an immutable or read-only folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=probe)
    except OSError as e:
        raise os_error(e, path, f"cannot create {what}") from None
    try:
        os.close(fd)
    finally:
        os.unlink(tmp)


def check_output_dir(path: str, what: str = "output directory") -> None:
    """Raise :class:`SadError` unless ``path`` is (or can be made) a writable directory."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise SadError(f"{what} exists and is not a directory", hint="give a new or existing folder", file=path)
    if os.path.isdir(path):
        _check_folder(os.path.abspath(path), path, what)
    else:
        _check_folder(os.path.dirname(os.path.abspath(path)), path, what)


def _open_in_place(path: str) -> IO[bytes]:
    """Open a FIFO/device for writing without truncating or replacing it; a FIFO without reader is an error."""
    flags = os.O_WRONLY
    try:
        st = os.stat(path)
        fifo = stat.S_ISFIFO(st.st_mode)
    except OSError:
        fifo = False
    if fifo:
        fd = os.open(path, flags | os.O_NONBLOCK)  # ENXIO at once when nobody reads (instead of hanging)
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    else:
        fd = os.open(path, flags)
    return os.fdopen(fd, "wb")


class AtomicWriter:
    """``with AtomicWriter(path) as fh: fh.write(b"...")`` — see the module docstring.

    ``append=True`` opens a regular file for appending in place (a log). OS errors become
    :class:`SadError`; on any exception the temp file is removed and the path keeps its old content.
    """

    def __init__(self, path: str, *, append: bool = False, what: str = "output"):
        self.path = path
        self.append = append
        self.what = what
        self.fh: IO[bytes] | None = None
        self.tmp: str | None = None
        self.target = path

    def __enter__(self) -> IO[bytes]:
        try:
            if is_stream_path(self.path):
                self.fh = _open_in_place(self.path)
            elif self.append:
                d = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(d, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
                self.fh = os.fdopen(fd, "ab")
            else:
                self.target = os.path.realpath(self.path)  # replace a symlink's target, keep the link
                if os.path.isdir(self.target):
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.path)
                d = os.path.dirname(self.target)
                os.makedirs(d, exist_ok=True)
                fd, self.tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=d)
                _PENDING.add(self.tmp)
                self.fh = os.fdopen(fd, "wb")
        except OSError as e:
            raise os_error(e, self.path, f"cannot write {self.what}") from None
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        fh, tmp = self.fh, self.tmp
        self.fh = None
        if fh is None:
            return
        try:
            fh.close()
        except OSError as e:  # a full disk often shows up at the final flush
            self._discard()
            if exc_type is None:
                raise os_error(e, self.path, f"cannot write {self.what}") from None
            return
        if tmp is None:
            return
        if exc_type is not None:
            self._discard()
            return
        try:
            try:
                mode = stat.S_IMODE(os.stat(self.target).st_mode)
            except FileNotFoundError:
                mode = new_file_mode()
            os.chmod(tmp, mode)
            os.replace(tmp, self.target)
            _PENDING.discard(tmp)
            self.tmp = None
        except OSError as e:
            self._discard()
            raise os_error(e, self.path, f"cannot write {self.what}") from None

    def _discard(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            _PENDING.discard(self.tmp)
            self.tmp = None


def write_error(e: OSError, path: str, what: str = "output") -> SadError:
    return os_error(e, path, f"cannot write {what}")


@contextlib.contextmanager
def atomic_path(path: str, *, what: str = "output", suffix: str = "") -> Iterator[str]:
    """For writers that want a file name (matplotlib's ``savefig``): yield a temp path, then rename.

    A FIFO/device path is yielded as it is (written in place).
    """
    if is_stream_path(path):
        yield path
        return
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise SadError(f"{what} path is a directory", hint=_HINTS[errno.EISDIR], file=path)
    d = os.path.dirname(target)
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX + suffix, dir=d)
        _PENDING.add(tmp)
        os.close(fd)
    except OSError as e:
        raise os_error(e, path, f"cannot write {what}") from None
    try:
        yield tmp
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = new_file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        _PENDING.discard(tmp)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise os_error(e, path, f"cannot write {what}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes, *, what: str = "output") -> None:
    with AtomicWriter(path, what=what) as fh:
        try:
            fh.write(data)
        except OSError as e:
            raise os_error(e, path, f"cannot write {what}") from None


def atomic_write_text(path: str, text: str, *, what: str = "output") -> None:
    atomic_write_bytes(path, text.encode("utf-8"), what=what)
