"""Token masks from spans: the paper's m_r (reasoning), m_a (action) and m_o (prompt + observation).

Stable library API (used by ``sad distill``)::

    from sadcli.masks import build_examples, collate, read_examples

    build_examples(records, tokenizer, *, render="text"|"chat", max_length=None, keep="start"|"end",
                   batch_size=64, add_special_tokens=None, keep_alignment=False, check=True,
                   on_error=None) -> Iterator[MaskedExample]
    build_example(record, tokenizer, **same) -> MaskedExample
    collate(examples, pad_token_id, *, padding_side="right", pad_to_multiple_of=None)
        -> {"input_ids", "attention_mask", "labels", "token_labels"}: torch.long [B, T]
           (padding: pad_token_id / 0 / -100 / PAD=-1)
    span_masks(token_labels [B, T]) -> (m_r, m_a, m_o) bool [B, T]
    to_emit_record(example, tokenizer=, render=, max_length=, keep=) -> dict      (``--emit`` lines)
    read_examples(path) -> Iterator[MaskedExample]      (read ``--emit`` files back, no re-tokenizing)
    Auditor(tokenizer, render=).check(example) -> list[Violation]; MaskReport (totals, Rich tables)

``MaskedExample``: ``id``, ``input_ids``, ``attention_mask``, ``token_labels`` (PROMPT=0, REASON=1,
ACT=2, OBS=3 from :mod:`sadcli.labels`), ``labels`` (input id at REASON/ACT tokens, -100 elsewhere),
``stats`` (:class:`ExampleStats`: straddling tokens, reason/act tokens cut by truncation, record spans
that got no token), ``index`` (input position), ``extra`` (success/reward/teacher/env/meta carried
from the record) and, with ``keep_alignment=True``, ``alignment`` (offsets, spans).

Modules: ``render`` (text / chat-template rendering), ``align`` (labels from offsets; the straddling
rule), ``build`` (batched streaming builder), ``collate``, ``emit``, ``audit`` (the checks),
``report`` (totals), ``show`` (previews, plots). Nothing here imports torch at import time.
"""

from sadcli.masks.audit import CHECKS, Auditor, Violation, check_labels
from sadcli.masks.build import RENDERS, build_example, build_examples, check_tokenizer
from sadcli.masks.collate import collate, span_masks
from sadcli.masks.emit import example_from_record, read_examples, to_emit_record
from sadcli.masks.report import MaskReport, span_stats
from sadcli.masks.types import Alignment, ExampleStats, MaskedExample, Rendered, supervised_labels

__all__ = ["CHECKS", "RENDERS", "Alignment", "Auditor", "ExampleStats", "MaskReport", "MaskedExample",
           "Rendered", "Violation", "build_example", "build_examples", "check_labels", "check_tokenizer",
           "collate", "example_from_record", "read_examples", "span_masks", "span_stats", "supervised_labels",
           "to_emit_record"]
