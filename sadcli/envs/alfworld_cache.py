"""Cache of the PDDL translations an ALFWorld reset repeats: fast resets, the same game.

A reset of an ALFWorld game through ``textworld`` (1.7) translates the game's PDDL four times and
parses its text grammar once: ``PddlEnv.load`` and then ``PddlEnv.reset`` each build a
``PddlState``, and each ``PddlState`` calls ``fast_downward.pddl2sas`` twice (plain, and
``optimize=True`` for replanning); ``GameLogic`` parses the game's grammar with TatSu. These are pure
functions of the game file's text, so :class:`TranslationCache` keeps their results:

- in memory (per worker process, the last ``memory`` results), which turns the four translations of
  one reset into two (one with ``replan=False``, below); and
- on disk under ``$SAD_HOME/alfworld-cache/`` (one zlib-compressed pickle per result, about 40 KB,
  named by the SHA-256 of the input text, the kind of result and the package versions; written to a
  temporary file and renamed), so a game played before resets without translating at all.

With ``replan=False`` (what :class:`~sadcli.envs.alfworld.ALFWorldEnv` uses: neither of its experts
asks textworld for a plan — no ``policy_commands``, no ``walkthrough``, no ALFWorld ``PLANNER``
expert) the ``optimize=True`` translation is not made: the replanning slot of the planner library is
loaded with the plain translation of the same problem, a valid task that is never searched. A reset
of a new game then translates once instead of four times.

Every hit is unpickled afresh, so no two environments share a mutable object, and the game plays
exactly as without the cache (``tests/envs/test_alfworld_cache.py`` compares observations and
admissible commands step by step). A cache file that cannot be read is treated as missing and written
again. The files are pickles: only point ``$SAD_HOME`` at a folder you trust, as with any model cache.

The cache is switched on around a reset only (:meth:`TranslationCache.installed` patches
``fast_downward.pddl2sas`` and ``textworld.envs.pddl.logic._parse_and_convert`` and puts them back).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

MODES = ("disk", "memory", "off")


def default_dir() -> Path:
    from sadcli.models.spec import sad_home

    return sad_home() / "alfworld-cache"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("textworld", "fast-downward-textworld", "alfworld"):
        try:
            out.append(f"{pkg}={version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg}=?")
    return ";".join(out)


class TranslationCache:
    """Memoizes ``pddl2sas`` and the grammar parse by content; see the module docstring."""

    def __init__(self, directory: str | os.PathLike | None = None, memory: int = 8, replan: bool = True):
        self.directory = Path(directory) if directory is not None else None
        self.replan = replan
        self.memory = memory
        self._mem: OrderedDict[str, bytes] = OrderedDict()
        self._salt = _versions()
        self.hits = {"memory": 0, "disk": 0, "miss": 0}

    # ------------------------------------------------------------------ storage
    def _key(self, kind: str, *texts: str) -> str:
        h = hashlib.sha256(f"{kind}\0{self._salt}".encode())
        for t in texts:
            h.update(b"\0")
            h.update(t.encode("utf-8"))
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.pkl.z"

    def _get(self, key: str) -> bytes | None:
        blob = self._mem.get(key)
        if blob is not None:
            self._mem.move_to_end(key)
            self.hits["memory"] += 1
            return blob
        if self.directory is not None:
            try:
                blob = self._path(key).read_bytes()
            except OSError:
                blob = None
            if blob is not None:
                self._remember(key, blob)
                self.hits["disk"] += 1
                return blob
        return None

    def _remember(self, key: str, blob: bytes) -> None:
        if self.memory <= 0:
            return
        self._mem[key] = blob
        self._mem.move_to_end(key)
        while len(self._mem) > self.memory:
            self._mem.popitem(last=False)

    def _put(self, key: str, blob: bytes) -> None:
        self._remember(key, blob)
        if self.directory is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            pass  # a read-only or full cache folder only costs speed

    def _cached(self, key: str, compute):
        blob = self._get(key)
        if blob is not None:
            try:
                return pickle.loads(zlib.decompress(blob))
            except Exception:  # noqa: BLE001 - a damaged entry counts as missing and is written again
                self._mem.pop(key, None)
        self.hits["miss"] += 1
        value = compute()
        self._put(key, zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1))
        return value

    # ------------------------------------------------------------------ the two cached functions
    def pddl2sas(self, original, domain: str, problem: str, verbose: bool = False, optimize: bool = False):
        key = self._key(f"pddl2sas optimize={bool(optimize)}", domain, problem)
        return self._cached(key, lambda: original(domain, problem, verbose=verbose, optimize=optimize))

    def parse_logic(self, original, text: str, *args, **kwargs):
        key = self._key(f"logic {args!r} {sorted(kwargs.items())!r}", text)
        return self._cached(key, lambda: original(text, *args, **kwargs))

    @contextlib.contextmanager
    def installed(self) -> Iterator[TranslationCache]:
        """Route textworld's translations through this cache for the duration of the block."""
        import fast_downward
        from textworld.envs.pddl import logic

        orig_sas, orig_parse = fast_downward.pddl2sas, logic._parse_and_convert

        def pddl2sas(domain, problem, verbose=False, optimize=False):
            # no planner asked for: the replanning task gets the plain translation (see the module docstring)
            optimize = optimize and self.replan
            return self.pddl2sas(orig_sas, domain, problem, verbose=verbose, optimize=optimize)

        def parse_and_convert(text, *args, **kwargs):
            return self.parse_logic(orig_parse, text, *args, **kwargs)

        fast_downward.pddl2sas, logic._parse_and_convert = pddl2sas, parse_and_convert
        try:
            yield self
        finally:
            fast_downward.pddl2sas, logic._parse_and_convert = orig_sas, orig_parse


def make_cache(mode: str = "disk", directory: str | os.PathLike | None = None,
               replan: bool = True) -> TranslationCache | None:
    """``disk`` (memory and ``$SAD_HOME/alfworld-cache``), ``memory`` (this process only) or ``off``."""
    if mode == "off":
        return None
    if mode == "memory":
        return TranslationCache(None, replan=replan)
    if mode == "disk":
        return TranslationCache(directory if directory is not None else default_dir(), replan=replan)
    raise ValueError(mode)
