"""Why an episode ended: ``success | step_cap | invalid_format | repeated_action | context_overflow | error``.

Rules, in order (``classify``):

1. ``success`` — the episode was won;
2. ``context_overflow`` — the policy stopped because the prompt no longer fit the model's context
   (``meta.error`` starts with ``context_overflow``);
3. ``error`` — any other environment fault or policy failure (``meta.error``);
4. ``invalid_format`` — the last ``window`` steps (3) were all outputs without a parsable action
   line (``step.invalid_format``), or every step was;
5. ``repeated_action`` — the last ``window`` actions were the same action;
6. ``step_cap`` — the episode ran out of steps (the step cap);
7. ``failed`` — the environment ended the episode without success (e.g. a wrong ``finish[...]`` answer in
   wiki-QA). Not in the issue's list; it keeps "ran out of steps" and "ended wrong" apart.
"""

from __future__ import annotations

TERMINATIONS = ("success", "step_cap", "failed", "invalid_format", "repeated_action", "context_overflow", "error")
WINDOW = 3


def classify(rec: dict, window: int = WINDOW) -> str:
    meta = rec.get("meta") or {}
    if rec.get("success"):
        return "success"
    err = meta.get("error")
    if err:
        return "context_overflow" if "context_overflow" in str(err) else "error"
    steps = rec.get("steps") or []
    if steps:
        tail = steps[-window:]
        if len(tail) == window or len(tail) == len(steps):
            if all(s.get("invalid_format") for s in tail):
                return "invalid_format"
            if len(tail) == window and len({(s.get("action") or "").strip().lower() for s in tail}) == 1:
                return "repeated_action"
    if meta.get("truncated"):
        return "step_cap"
    return "failed" if steps else "error"
