"""Training hyperparameters: one dataclass, help text per field, loadable from a TOML file.

Precedence (lowest to highest): dataclass defaults < ``--config distill.toml`` < options given on
the command line. The resolved values are echoed into ``sad_config.json`` next to the model.

A ``distill.toml`` holds the same names as the fields below, either at top level or under a
``[train]`` table::

    lr = 1e-4
    max_steps = 500
    batch_size = 8
    grad_accum = 4
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from sadcli.errors import InputError

SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class TrainConfig:
    """Hyperparameters of ``sad distill`` (the optimizer is AdamW)."""

    lr: float = field(default=1e-4, metadata={"help": "Peak learning rate (AdamW)."})
    schedule: str = field(default="cosine", metadata={
        "help": "Learning-rate schedule after warmup: cosine, linear (decay to 0) or constant."})
    warmup_steps: int = field(default=0, metadata={
        "help": "Linear warmup from 0 over this many optimizer steps (0 = warmup_ratio decides)."})
    warmup_ratio: float = field(default=0.03, metadata={
        "help": "Warmup as a fraction of the total steps, used when warmup_steps is 0."})
    epochs: float = field(default=1.0, metadata={
        "help": "Passes over the data; ignored when max_steps is set."})
    max_steps: int = field(default=0, metadata={
        "help": "Optimizer steps to run (0 = derive from epochs)."})
    batch_size: int = field(default=4, metadata={"help": "Sequences per micro-batch per device."})
    grad_accum: int = field(default=1, metadata={
        "help": "Micro-batches per optimizer step (effective batch = batch_size x grad_accum x devices)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (not on biases/norms)."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    grad_clip: float = field(default=1.0, metadata={"help": "Clip the gradient norm to this (0 = off)."})
    seed: int = field(default=0, metadata={"help": "Seed for data order, initialization and random-spans."})
    log_every: int = field(default=1, metadata={"help": "Write a metrics line every N optimizer steps."})
    save_every: int = field(default=0, metadata={
        "help": "Write a resumable checkpoint every N optimizer steps (0 = only at the end)."})
    keep_checkpoints: int = field(default=2, metadata={"help": "Keep only the newest N checkpoints."})
    length_group: int = field(default=50, metadata={
        "help": "Length grouping window, in batches: sequences of similar length are batched together "
                "inside windows of this many batches (1 = plain shuffle)."})
    mixed_precision: str = field(default="auto", metadata={
        "help": "auto (bf16 on GPUs that support it, else fp32), no, bf16 or fp16."})

    def validate(self) -> TrainConfig:
        def bad(msg: str, hint: str | None = None) -> None:
            raise InputError(msg, hint=hint)

        if self.lr <= 0:
            bad(f"lr must be > 0, got {self.lr}")
        if self.schedule not in SCHEDULES:
            bad(f"unknown schedule {self.schedule!r}", hint="use one of: " + ", ".join(SCHEDULES))
        if self.batch_size < 1 or self.grad_accum < 1:
            bad("batch_size and grad_accum must be >= 1")
        if self.max_steps < 0 or self.epochs <= 0 and self.max_steps == 0:
            bad("set max_steps > 0 or epochs > 0")
        if not 0 <= self.warmup_ratio < 1:
            bad(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.log_every < 1:
            bad("log_every must be >= 1")
        if self.save_every < 0 or self.keep_checkpoints < 1:
            bad("save_every must be >= 0 and keep_checkpoints >= 1")
        if self.length_group < 1:
            bad("length_group must be >= 1")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            bad(f"unknown mixed_precision {self.mixed_precision!r}", hint="use auto, no, bf16 or fp16")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def help(cls, name: str) -> str:
        return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)


def load_toml(path: str) -> dict[str, Any]:
    """Read a ``distill.toml``: returns the raw table (top level merged with ``[train]``)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"no such config file: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML: {e}", file=path) from None
    merged = {k: v for k, v in data.items() if not isinstance(v, dict)}
    merged.update(data.get("train", {}))
    return merged


def make_config(file_values: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then ``file_values`` (from TOML), then ``overrides`` that are not None.

    Unknown keys in ``file_values`` are an error naming the key (a typo must not be silently ignored).
    """
    names = {f.name: f for f in fields(TrainConfig)}
    values: dict[str, Any] = {}
    for key, value in (file_values or {}).items():
        k = key.replace("-", "_")
        if k not in names:
            raise InputError(f"unknown hyperparameter {key!r} in config file",
                             hint="known: " + ", ".join(sorted(names)))
        values[k] = value
    for key, value in overrides.items():
        if key not in names:
            raise TypeError(f"unknown hyperparameter {key}")
        if value is not None:
            values[key] = value
    for k, v in list(values.items()):  # coerce TOML ints to float fields etc.
        typ = type(names[k].default)
        try:
            values[k] = typ(v)
        except (TypeError, ValueError):
            raise InputError(f"hyperparameter {k} must be {typ.__name__}, got {v!r}") from None
    return TrainConfig(**values).validate()
