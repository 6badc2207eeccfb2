"""Environment specs: a built-in name, or ``module:factory`` for a user's own environment.

``EnvSpec`` is a small picklable description (spec string + options) so that worker processes can
build their own environment instance: ``EnvSpec.parse("twx", {"game": "twc"}).make()``.

A plugin is ``package.module:factory`` (importable) or ``path/to/file.py:factory``; ``factory(**options)``
returns an object with the protocol of :class:`sadcli.envs.base.Env`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sadcli.errors import InputError

BUILTIN: dict[str, str] = {
    "alfworld": "sadcli.envs.alfworld:make",
    "twx": "sadcli.envs.twx:make",
    "scienceworld": "sadcli.envs.scienceworld:make",
    "wikiqa": "sadcli.envs.wikiqa:make",
    "webshop": "sadcli.envs.webshop:make",
}

REQUIRED = ("tasks", "reset", "step", "close")


def _load_factory(target: str) -> Callable[..., Any]:
    if ":" not in target:
        raise InputError(f"unknown environment {target!r}",
                         hint=f"use one of {', '.join(BUILTIN)}, or module:factory for your own")
    mod_name, _, attr = target.rpartition(":")
    try:
        if mod_name.endswith(".py") or os.sep in mod_name:
            path = os.path.abspath(mod_name)
            if not os.path.exists(path):
                raise InputError(f"no such file: {mod_name}", hint="give module:factory or path/to/file.py:factory")
            name = "sad_plugin_" + os.path.splitext(os.path.basename(path))[0]
            module = sys.modules.get(name)
            if module is None or getattr(module, "__file__", None) != path:
                spec = importlib.util.spec_from_file_location(name, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ImportError as e:
        raise InputError(f"cannot import {mod_name}: {e}",
                         hint="is the package installed (pip install 'sad[envs]'), or the module on PYTHONPATH?") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise InputError(f"{mod_name} has no attribute {attr!r}", hint="the part after ':' names the factory") from None


@dataclass
class EnvSpec:
    """What to build in each worker: ``spec`` is a built-in name or ``module:factory``."""

    spec: str
    options: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str, options: dict | None = None) -> EnvSpec:
        spec = spec.strip()
        if spec not in BUILTIN and ":" not in spec:
            raise InputError(f"unknown environment {spec!r}",
                             hint=f"use one of {', '.join(BUILTIN)}, or module:factory for your own")
        return cls(spec, dict(options or {}))

    @property
    def name(self) -> str:
        return self.spec if self.spec in BUILTIN else self.spec.rpartition(":")[2]

    def make(self):
        factory = _load_factory(BUILTIN.get(self.spec, self.spec))
        try:
            env = factory(**self.options)
        except TypeError as e:
            raise InputError(f"{self.spec}: bad environment options {sorted(self.options)}: {e}",
                             hint="check the --env-opt names") from None
        missing = [m for m in REQUIRED if not callable(getattr(env, m, None))]
        if missing:
            raise InputError(f"{self.spec} returned {type(env).__name__}, which lacks {', '.join(missing)}",
                             hint="an environment needs tasks(split), reset(task), step(action), close()")
        return env


def parse_env_opts(pairs: list[str] | None) -> dict:
    """``["game=twc", "max_steps=50"]`` -> ``{"game": "twc", "max_steps": 50}`` (ints, floats, bools parsed)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise InputError(f"bad --env-opt {pair!r}", hint="write KEY=VALUE, e.g. --env-opt game=twc")
        out[key.strip().replace("-", "_")] = _coerce(value.strip())
    return out


def _coerce(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    return value
