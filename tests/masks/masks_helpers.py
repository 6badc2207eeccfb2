"""Hand-made segmented records for the mask tests (independent of `sad segment`)."""

from __future__ import annotations

MARKERS = {"paper": ("[REASON] ", "[ACT] ", "[OBS] "), "native": ("Thought: ", "Action: ", "Observation: ")}


def make_record(task, steps, *, system=None, markers="paper", rid="t1"):
    """A schema-v1 segmented record built by hand (independent of ``sad segment``).

    ``steps``: list of (reason|None, action|None, observation|None).
    """
    mr, ma, mo = MARKERS[markers]
    text, spans = "", []

    def emit(kind, s, step):
        nonlocal text
        if s:
            spans.append({"kind": kind, "start": len(text), "end": len(text) + len(s), "step": step})
            text += s

    emit("prompt", (system + "\n\n" if system else "") + task + "\n", -1)
    for i, (r, a, o) in enumerate(steps):
        if r is not None:
            emit("reason", mr + r + "\n", i)
        if a is not None:
            emit("act", ma + a + "\n", i)
        if o is not None:
            emit("obs", mo + o + "\n", i)
    rec = {"schema": 1, "id": rid, "task": task,
           "steps": [{"reason": r, "action": a, "observation": o} for r, a, o in steps],
           "text": text, "spans": spans}
    if system:
        rec["system"] = system
    return rec


HOTPOT = [("I need to search Badr Hari.", "search[Badr Hari]", "Badr Hari is a Moroccan-Dutch kickboxer."),
          ("Badr Hari fits.", "finish[Badr Hari]", "Episode finished, reward = True")]
