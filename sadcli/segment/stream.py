"""Segmenting a stream of input lines, with the stop/skip error policy shared by the commands."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from sadcli.errors import InputError
from sadcli.jsonl import Line, parse_line
from sadcli.segment.core import default_id_for, segment_record
from sadcli.segment.template import Template


def segment_lines(lines: Iterable[Line], *, fmt: str = "auto", markers: str = "paper",
                  template: Template | None = None, on_error: str = "stop",
                  reject: Callable[[Line, InputError], None] | None = None) -> Iterator[dict]:
    """Yield segmented records. A bad line raises :class:`InputError` located at FILE:LINE, or, with
    ``on_error="skip"``, is passed to ``reject`` and skipped."""
    for line in lines:
        try:
            rec = parse_line(line)
            out = segment_record(rec, fmt=fmt, markers=markers, template=template,
                                 default_id=default_id_for(line.file, line.line))
        except InputError as e:
            e.located(line.file, line.line)
            if on_error == "skip":
                if reject is not None:
                    reject(line, e)
                continue
            raise
        yield out
