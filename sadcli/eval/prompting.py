"""The prompt format a distilled student was trained on (kept here for ``sad eval``'s imports).

The code lives in :mod:`sadcli.sadformat`, low in the package, because ``sad collect --teacher hf:DIR``
(:mod:`sadcli.teachers.hf`) prompts a ``sad distill`` output the same way and teachers do not import eval.
"""

from __future__ import annotations

from sadcli.sadformat import (  # noqa: F401 - re-exported
    SadFormat,
    detect_markers,
    format_from_config,
    format_from_record,
    parse_output,
    read_sad_config,
)
