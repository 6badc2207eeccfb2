"""``--emit`` records: token ids and per-token labels as JSONL, read back without re-tokenizing.

One line per trajectory::

    {"schema": 1, "id": str, "input_ids": [int], "token_labels": [int],
     "mask": {"tokenizer": str, "render": "text"|"chat", "max_length": int|null, "keep": "start"|"end"},
     "mask_stats": {...}, "success"?, "reward"?, "teacher"?, "env"?, "meta"?}

``token_labels`` use sadcli.labels (PROMPT=0, REASON=1, ACT=2, OBS=3); ``attention_mask`` (all ones)
and ``labels`` (ids at REASON/ACT, -100 elsewhere) are derived on reading.
"""

from __future__ import annotations

from collections.abc import Iterator

from sadcli.errors import InputError
from sadcli.jsonl import read_records
from sadcli.labels import ACT, OBS, PROMPT, REASON
from sadcli.masks.types import ExampleStats, MaskedExample, Window, supervised_labels

_VALID = frozenset((PROMPT, REASON, ACT, OBS))


def to_emit_record(ex: MaskedExample, *, tokenizer: str | None = None, render: str = "text",
                   max_length: int | None = None, keep: str = "start", window: str = "truncate") -> dict:
    out = {"schema": 1, "id": ex.id, "input_ids": ex.input_ids, "token_labels": ex.token_labels,
           "mask": {"tokenizer": tokenizer, "render": render, "max_length": max_length, "keep": keep,
                    "window": window},
           "mask_stats": ex.stats.to_dict()}
    if ex.window is not None:
        out["window"] = ex.window.to_dict()
    out.update(ex.extra)
    return out


def example_from_record(rec: dict, index: int = 0) -> MaskedExample:
    """A :class:`MaskedExample` from one emitted record; raises :class:`InputError` when malformed."""
    ids, labels = rec.get("input_ids"), rec.get("token_labels")
    if not isinstance(ids, list) or not isinstance(labels, list):
        raise InputError("record has no 'input_ids'/'token_labels' lists: it is not a `sad mask-check --emit` record",
                         hint="produce it with `sad mask-check IN.jsonl --emit -o masks.jsonl`")
    if len(ids) != len(labels):
        raise InputError(f"'input_ids' has {len(ids)} entries but 'token_labels' has {len(labels)}")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
        raise InputError("'input_ids' must hold integers")
    if not _VALID.issuperset(labels):
        bad = sorted(set(labels) - _VALID, key=str)[:3]
        raise InputError(f"'token_labels' holds {bad}; expected PROMPT=0, REASON=1, ACT=2, OBS=3")
    from sadcli.masks.build import CARRY

    extra = {k: rec[k] for k in CARRY if k in rec}
    win = rec.get("window")
    try:
        window = Window.from_dict(win) if isinstance(win, dict) else None
    except (KeyError, TypeError, ValueError):
        raise InputError(f"malformed 'window' {win!r}", hint="re-emit with `sad mask-check --emit`") from None
    return MaskedExample(id=str(rec.get("id", index)), input_ids=ids, attention_mask=[1] * len(ids),
                         token_labels=labels, labels=supervised_labels(ids, labels),
                         stats=ExampleStats.from_dict(rec.get("mask_stats")), index=index, extra=extra,
                         window=window)


def read_examples(path: str) -> Iterator[MaskedExample]:
    """Stream the examples of an ``--emit`` file (or ``-``); errors name file and line."""
    for i, (line, rec) in enumerate(read_records(path)):
        try:
            yield example_from_record(rec, i)
        except InputError as e:
            raise e.located(line.file, line.line) from None
