"""``sad curriculum`` as a library call: segmented records in, the same records ordered easy -> hard out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sadcli.curriculum import score as sc
from sadcli.curriculum.signals import Sums, cache_entropy, lengths, teacher_entropy
from sadcli.errors import InputError, SadError


@dataclass
class CurriculumOptions:
    """The score's weights and scaling, the stages, and how the signals are measured."""

    alpha: float = 1.0             # weight of the reasoning length
    beta: float = 1.0              # weight of the action length
    gamma: float = 1.0             # weight of the teacher entropy (0: no teacher needed)
    scale: str = "cdf"             # cdf | zscore | raw (see sadcli.curriculum.score)
    stages: int = 4                # equal-count buckets of the rank
    render: str = "text"           # how the distillation tokenizer sees a trajectory (text | chat)
    max_length: int = 1024         # teacher forward: longer trajectories are scored in step windows
    batch_size: int = 8            # teacher forward batch

    def validate(self) -> CurriculumOptions:
        if self.scale not in sc.SCALES:
            raise InputError(f"unknown scale {self.scale!r}", hint="use one of: " + ", ".join(sc.SCALES))
        if self.stages < 1:
            raise InputError("--stages must be >= 1")
        if min(self.alpha, self.beta, self.gamma) < 0:
            raise InputError("--alpha, --beta and --gamma must be >= 0 (a weight, easy -> hard)")
        return self


@dataclass
class Scored:
    """The ordered records and, in the same (easy -> hard) order, what was measured."""

    records: list[dict[str, Any]]
    len_reason: np.ndarray
    len_act: np.ndarray
    entropy: np.ndarray | None
    score: np.ndarray
    rank: np.ndarray
    stage: np.ndarray
    entropy_source: str | None
    examples: int                  # examples the records became (step windows)
    options: CurriculumOptions = field(default_factory=CurriculumOptions)


def build(records: Sequence[dict[str, Any]], tokenizer: Any, opts: CurriculumOptions,
          located: Callable[[int, dict, SadError], None] | None = None) -> list[Any]:
    """The masked examples the signals are measured on: step windows of ``opts.max_length`` tokens."""
    from sadcli.masks.build import build_examples

    return list(build_examples(records, tokenizer, render=opts.render, max_length=opts.max_length, keep="start",
                               window="steps", on_error=located))


def score_records(records: Sequence[dict[str, Any]], tokenizer: Any, opts: CurriculumOptions | None = None, *,
                  teacher: Any = None, teacher_cache: str | None = None, examples: Sequence[Any] | None = None,
                  device: Any = None, on_batch: Callable[[int, int], None] | None = None,
                  located: Callable[[int, dict, SadError], None] | None = None) -> Scored:
    """Score and order records (easy -> hard), adding ``curriculum``, ``curriculum_rank``, ``curriculum_stage``.

    Args:
        records: schema-v1 segmented records.
        tokenizer: the distillation tokenizer (a fast Hugging Face tokenizer).
        teacher: a causal LM for the entropy (``gamma > 0``), or
        teacher_cache: a ``sad distill --cache-teacher`` directory built from these records.
        examples: prebuilt examples (:func:`build`), to skip re-tokenizing.
    """
    opts = (opts or CurriculumOptions()).validate()
    n = len(records)
    if examples is None:
        examples = build(records, tokenizer, opts, located)
    lr, la = lengths(examples, n)
    sums: Sums | None = None
    if opts.gamma:
        if teacher_cache is not None:
            sums = entropy_from_cache(teacher_cache, records, tokenizer, examples=examples, located=located)
        elif teacher is not None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            sums = teacher_entropy(examples, teacher, n, batch_size=opts.batch_size, pad_id=pad, device=device,
                                   on_batch=on_batch)
        else:
            raise InputError("--gamma > 0 needs the teacher's entropy",
                             hint="give --teacher SPEC or --teacher-cache DIR, or use --gamma 0")
    ent = sums.mean() if sums is not None else None
    s = sc.complexity(lr, la, ent, alpha=opts.alpha, beta=opts.beta, gamma=opts.gamma, how=opts.scale) \
        if n else np.zeros(0)
    rank = sc.ecdf(s)
    stage = sc.stages(rank, opts.stages) if n else np.zeros(0, dtype=np.int64)
    idx = sc.order(s)
    out = []
    for i in idx.tolist():
        rec = dict(records[i])
        rec["curriculum"] = {"len_reason": int(lr[i]), "len_act": int(la[i]),
                             "entropy": None if ent is None else round(float(ent[i]), 6),
                             "score": round(float(s[i]), 9)}
        rec["curriculum_rank"] = float(rank[i])
        rec["curriculum_stage"] = int(stage[i])
        out.append(rec)
    pick = lambda a: None if a is None else a[idx]  # noqa: E731
    return Scored(out, lr[idx], la[idx], pick(ent), s[idx], rank[idx], stage[idx],
                  sums.source if sums is not None else None, len(examples), opts)


def entropy_from_cache(path: str, records: Sequence[dict[str, Any]], tokenizer: Any, *,
                       examples: Sequence[Any] | None = None,
                       located: Callable[[int, dict, SadError], None] | None = None) -> Sums:
    """Per-record entropy sums from a teacher cache; the examples are rebuilt with the cache's own data
    settings (render, max length, truncation, windows) and must match its fingerprint."""
    from sadcli.distill.data import fingerprint_settings
    from sadcli.distill.teacher_cache import TeacherCache, data_fingerprint
    from sadcli.masks.build import build_examples

    data = TeacherCache.open(path).manifest.get("data", {})
    if data.get("emitted") or "render" not in data:
        raise InputError(f"the teacher cache {path} was built from `sad mask-check --emit` lines",
                         hint="build the cache from the segmented JSONL you score here")
    render, max_length = data.get("render", "text"), data.get("max_length")
    truncate, window = data.get("truncate", "start"), data.get("window", "truncate")
    settings = fingerprint_settings(render, max_length, truncate, window)
    if examples is not None and data_fingerprint(examples, **settings) == data.get("fingerprint"):
        built = list(examples)   # the curriculum's own examples are the cache's: no second tokenization
    else:
        built = list(build_examples(records, tokenizer, render=render, max_length=max_length, keep=truncate,
                                    window=window, on_error=located))
    fp = data_fingerprint(built, **settings)
    return cache_entropy(path, built, len(records), fingerprint=fp)
