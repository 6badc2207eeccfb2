"""Environment slots: one environment each, in a worker process (default) or in this process.

A slot answers three requests — ``hello`` (prompt, limits, parser facts), ``tasks`` and ``reset`` /
``step`` — with plain dicts. Requests are sent first and answered later (``send`` then ``receive``),
so all worker processes step at the same time while the policy waits.

Faults: an exception inside the environment comes back as an error answer and the worker rebuilds its
environment; a worker that dies (JVM crash, segfault) or stops answering within ``timeout`` seconds
is killed and started again. Either way the caller gets :class:`EnvFault` and records the episode
as failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import signal
import sys
import traceback
from typing import Any

from sadcli.envs.base import Task
from sadcli.envs.registry import EnvSpec


class EnvFault(Exception):
    """The environment failed on a request (raised an error, crashed, or timed out)."""


def _snapshot(env, observation: str, extra: dict | None = None) -> dict:
    plan = getattr(env, "expert_plan", None)
    admissible = getattr(env, "admissible_actions", None)
    expert = getattr(env, "expert_action", None)
    state_info = getattr(env, "state_info", None)
    success = getattr(env, "success", None)
    out = {
        "observation": observation,
        "expert": expert() if callable(expert) else None,
        "expert_plan": plan() if callable(plan) else None,
        "admissible": admissible() if callable(admissible) else None,
        "state": state_info() if callable(state_info) else {},
        "success": bool(success()) if callable(success) else False,
    }
    if extra:
        out.update(extra)
    return out


def _parse(env, text: str) -> str | None:
    parser = getattr(env, "parse_action", None)
    if callable(parser):
        return parser(text)
    line = (text or "").strip().split("\n", 1)[0].strip()
    return line or None


class EnvHandler:
    """Answers requests for one environment instance; rebuilt after an error."""

    def __init__(self, spec: EnvSpec):
        self.spec = spec
        self.env = None

    def _env(self):
        if self.env is None:
            self.env = self.spec.make()
        return self.env

    def rebuild(self) -> None:
        if self.env is not None:
            with contextlib.suppress(Exception):
                self.env.close()
        self.env = None

    def handle(self, kind: str, arg: Any) -> Any:
        env = self._env()
        if kind == "hello":
            prompt = getattr(env, "prompt", None)
            if dataclasses.is_dataclass(prompt):
                prompt = dataclasses.asdict(prompt)
            elif isinstance(prompt, str):
                prompt = {"instruction": prompt}
            else:
                prompt = None
            return {"name": getattr(env, "name", self.spec.name), "prompt": prompt,
                    "max_steps": int(getattr(env, "max_steps", 50)),
                    "default_split": getattr(env, "default_split", None)}
        if kind == "tasks":
            return [t.to_dict() for t in env.tasks(arg)]
        if kind == "reset":
            obs = env.reset(Task.from_dict(arg))
            return _snapshot(env, obs)
        if kind == "step":
            parsed = _parse(env, arg)
            raw_line = (arg or "").strip().split("\n", 1)[0].strip()
            tr = env.step(parsed if parsed is not None else raw_line)
            info = dict(getattr(tr, "info", None) or {})
            invalid = parsed is None or bool(info.get("invalid"))
            return _snapshot(env, tr.observation, {
                "reward": float(tr.reward or 0.0), "done": bool(tr.done),
                "action": parsed if parsed is not None else raw_line, "invalid": invalid,
                "info": {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool, type(None)))},
            })
        if kind == "close":
            self.rebuild()
            return None
        raise ValueError(f"unknown request {kind}")


def _worker_main(conn, spec: EnvSpec) -> None:  # pragma: no cover - runs in a child process
    # Ctrl-C is the parent's to handle: it closes (or kills) its workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # stdout carries data in the parent: nothing printed by an environment (or a JVM it starts) may reach it
    with contextlib.suppress(Exception):
        os.dup2(2, 1)
    sys.stdout = sys.stderr
    handler = EnvHandler(spec)
    while True:
        try:
            kind, arg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):  # the parent went away
            break
        if kind == "exit":
            break
        try:
            conn.send(("ok", handler.handle(kind, arg)))
        except KeyboardInterrupt:
            break
        except BaseException as e:  # noqa: BLE001 - every env error becomes an answer
            msg = f"{type(e).__name__}: {e}"
            tb = traceback.format_exc(limit=4)
            handler.rebuild()
            try:
                conn.send(("err", msg, tb))
            except Exception:
                break
    handler.rebuild()


class LocalSlot:
    """The environment in this process (tests, debugging, envs that cannot be pickled)."""

    def __init__(self, spec: EnvSpec, timeout: float | None = None):
        self.handler = EnvHandler(spec)
        self._answer: tuple | None = None
        self.restarts = 0

    def send(self, kind: str, arg: Any = None) -> None:
        try:
            with contextlib.redirect_stdout(sys.stderr):
                self._answer = ("ok", self.handler.handle(kind, arg))
        except Exception as e:  # noqa: BLE001
            self.handler.rebuild()
            self._answer = ("err", f"{type(e).__name__}: {e}", traceback.format_exc(limit=4))

    def receive(self) -> Any:
        ans, self._answer = self._answer, None
        assert ans is not None, "receive() without send()"
        if ans[0] == "err":
            raise EnvFault(ans[1])
        return ans[1]

    def request(self, kind: str, arg: Any = None) -> Any:
        self.send(kind, arg)
        return self.receive()

    def ready(self) -> bool:
        """Whether ``receive()`` would answer at once (always: the request ran in ``send``)."""
        return True

    def close(self) -> None:
        self.handler.rebuild()


class ProcessSlot:
    """The environment in a spawned worker process, restarted when it dies or hangs."""

    def __init__(self, spec: EnvSpec, timeout: float | None = 300.0):
        self.spec = spec
        self.timeout = timeout
        self.restarts = 0
        self._ctx = mp.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self.conn, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_worker_main, args=(child, self.spec), daemon=True)
        self.proc.start()
        child.close()
        self._pending = False
        self._send_failed: str | None = None

    def _restart(self) -> None:
        self._kill()
        self.restarts += 1
        self._start()

    def _kill(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)

    def send(self, kind: str, arg: Any = None) -> None:
        try:
            self.conn.send((kind, arg))
            self._pending = True
        except (BrokenPipeError, EOFError, OSError):
            self.proc.join(timeout=1)
            code = self.proc.exitcode
            self._restart()
            self._send_failed = f"environment worker died (exit code {code}; restarted)"
            return
        self._send_failed = None

    def receive(self) -> Any:
        if self._send_failed:
            msg, self._send_failed = self._send_failed, None
            raise EnvFault(msg)
        try:
            if self.timeout is not None and not self.conn.poll(self.timeout):
                self._restart()
                raise EnvFault(f"environment did not answer within {self.timeout:g} s (worker restarted)")
            ans = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            code = self.proc.exitcode
            self._restart()
            raise EnvFault(f"environment worker died (exit code {code}; restarted)") from None
        self._pending = False
        if ans[0] == "err":
            raise EnvFault(ans[1])
        return ans[1]

    def request(self, kind: str, arg: Any = None) -> Any:
        self.send(kind, arg)
        return self.receive()

    def ready(self) -> bool:
        """Whether ``receive()`` would answer without waiting (an answer, or a fault, is there)."""
        if self._send_failed:
            return True
        try:
            return self.conn.poll(0)
        except (EOFError, OSError):
            return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self._pending:
                self.conn.send(("exit", None))
        self.proc.join(timeout=5)
        self._kill()


def make_slot(spec: EnvSpec, *, in_process: bool = False, timeout: float | None = 300.0):
    return LocalSlot(spec) if in_process else ProcessSlot(spec, timeout=timeout)
