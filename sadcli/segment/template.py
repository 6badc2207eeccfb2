"""User templates: regexes for the markers of a format nobody here foresaw, in a small TOML file.

Example (``my_format.toml``)::

    field = "log"                  # record field holding the trajectory text (default: text/trajectory/output)
    task_field = "goal"            # optional: record field holding the task
    reason = '^\\s*PLAN:'           # each regex matches a marker; the content runs to the next marker
    action = '^\\s*CALL:'
    observation = '^\\s*RESULT:'
    task = '^\\s*GOAL:'             # optional

Regexes are Python syntax, compiled with MULTILINE (and IGNORECASE unless ``case_sensitive = true``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from sadcli.errors import InputError
from sadcli.segment.steps import Part

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class Template:
    pattern: re.Pattern
    field: str | None = None
    task_field: str | None = None
    source: str = "<template>"

    def parts(self, text: str) -> list[Part]:
        parts: list[Part] = []
        matches = list(self.pattern.finditer(text))
        head = text[: matches[0].start()] if matches else text
        if head.strip():
            parts.append(Part("text", head.strip()))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            parts.append(Part(m.lastgroup or "text", text[m.end(): end].strip()))
        return parts


def load_template(path: str) -> Template:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"no such template file: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML: {e}", file=path) from None
    flags = re.M | (0 if data.get("case_sensitive") else re.I)
    groups = []
    for key, kind in (("reason", "reason"), ("action", "act"), ("observation", "obs"), ("task", "task")):
        rx = data.get(key)
        if rx is None:
            continue
        if not isinstance(rx, str):
            raise InputError(f"'{key}' must be a regex string", file=path)
        try:
            re.compile(rx, flags)
        except re.error as e:
            raise InputError(f"'{key}' is not a valid regex: {e}", file=path,
                             hint="use Python regex syntax, e.g. '^\\s*Thought:'") from None
        groups.append(f"(?P<{kind}>{rx})")
    if not any(k in data for k in ("reason", "action")):
        raise InputError("a template needs at least 'reason' or 'action'", file=path,
                         hint="give regexes for reason, action and observation markers")
    for key in ("field", "task_field"):
        if key in data and not isinstance(data[key], str):
            raise InputError(f"'{key}' must be a string", file=path)
    return Template(re.compile("|".join(groups), flags), data.get("field"), data.get("task_field"), path)
