"""What gets tokenized: the record's linearized ``text`` (``render="text"``) or a chat-template
rendering of its turns (``render="chat"``), with every span located in the rendered string.

Chat rendering builds messages from the segmented steps: the system text (when the prompt span starts
with the record's ``system``) as the system turn, the rest of the prompt as the first user turn, each
step's reason + action spans — markers included, exactly as ``text`` has them (``[REASON] ...\\n[ACT] ...``
or ``Thought: ...\\nAction: ...``) — as one assistant turn (one per step, also without an
observation between steps), and each observation span (and any
mid-trajectory context) as the following user turn. Whitespace at the edges of a turn is dropped (the
template adds its own). The tokenizer's chat template renders the messages; each message content is then
found, in order, in the rendered string. Template text between contents is PROMPT; the first special
token after each assistant content (``<|im_end|>`` for SmolLM2, ``<|eot_id|>`` for Llama 3) is the
end-of-turn token and is labeled ACT, so the student learns to stop.
"""

from __future__ import annotations

from typing import Any

from sadcli.errors import InputError, SadError
from sadcli.labels import ACT, KIND_TO_LABEL, OBS, PROMPT, REASON
from sadcli.masks.types import Rendered
from sadcli.schema import validate_segmented

_VERIFY = 16


def render_text(rec: dict, *, check: bool = True) -> Rendered:
    """The record's own ``text`` and ``spans``."""
    if check:
        validate_segmented(rec)
    spans = rec["spans"]
    return Rendered(
        text=rec["text"],
        starts=[sp["start"] for sp in spans],
        ends=[sp["end"] for sp in spans],
        labels=[KIND_TO_LABEL[sp["kind"]] for sp in spans],
        steps=[sp.get("step", -1) for sp in spans],
        sources=list(range(len(spans))),
    )


class ChatRenderer:
    """Renders segmented records with one tokenizer's chat template (see the module docstring)."""

    def __init__(self, tokenizer: Any):
        if not getattr(tokenizer, "chat_template", None):
            raise SadError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template",
                           hint="use --render text, or a chat model's tokenizer")
        self.tokenizer = tokenizer
        specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
        for tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
            if getattr(tok, "special", False):
                specials.add(str(tok))
        self.specials = sorted((s for s in specials if s), key=len, reverse=True)
        # fast path: the template compiled once and rendered directly (apply_chat_template re-normalizes
        # the messages on every call); trusted only after it matched apply_chat_template _VERIFY times
        self._compiled: Any = None
        self._verified = 0
        try:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            self._compiled = _compile_jinja_template(tokenizer.chat_template)
            self._kwargs = {k: v for k, v in (getattr(tokenizer, "special_tokens_map", None) or {}).items()
                            if isinstance(v, str)}
        except Exception:  # a private helper: any change in transformers just disables the fast path
            self._compiled = None

    def _apply(self, messages: list[dict]) -> str:
        if self._compiled is not None:
            try:
                fast = self._compiled.render(messages=messages, add_generation_prompt=False, **self._kwargs)
            except Exception:
                fast = None
            if fast is not None and self._verified >= _VERIFY:
                return fast
            slow = self.tokenizer.apply_chat_template(messages, tokenize=False)
            if fast == slow:
                self._verified += 1
            else:
                self._compiled = None
            return slow
        return self.tokenizer.apply_chat_template(messages, tokenize=False)

    def __call__(self, rec: dict, *, check: bool = True) -> Rendered:
        if check:
            validate_segmented(rec)
        turns = _turns(rec)
        messages = [{"role": role, "content": "".join(p[0] for p in pieces)} for role, pieces in turns]
        try:
            rendered = self._apply(messages)
        except Exception as e:  # jinja raises TemplateError, templates raise their own
            raise InputError(f"the chat template rejected this trajectory: {type(e).__name__}: {e}",
                             hint="use --render text for this tokenizer") from None
        if not isinstance(rendered, str):
            raise SadError("apply_chat_template did not return a string", hint="use --render text")
        # where each message content starts, in order
        found, pos = [], 0
        for m in messages:
            k = rendered.find(m["content"], pos)
            if k < 0:
                raise InputError(f"the chat template changes the content of a {m['role']} turn "
                                 "(it trims, escapes or drops it), so spans cannot be located",
                                 hint="use --render text for this tokenizer")
            found.append(k)
            pos = k + len(m["content"])
        out = Rendered(rendered, [], [], [], [], [])

        def add(start: int, end: int, label: int, step: int, source: int) -> None:
            if end > start:
                out.starts.append(start)
                out.ends.append(end)
                out.labels.append(label)
                out.steps.append(step)
                out.sources.append(source)

        pos = 0
        for t, ((role, pieces), k) in enumerate(zip(turns, found, strict=False)):
            add(pos, k, PROMPT, -1, -1)  # template text before this content
            pos = k
            for text, label, step, source in pieces:
                add(pos, pos + len(text), label, step, source)
                pos += len(text)
            if role == "assistant":
                out.turn_ends.append(pos)
                limit = found[t + 1] if t + 1 < len(found) else len(rendered)
                hit = self._first_special(rendered, pos, limit)
                if hit is not None:
                    add(pos, hit[0], PROMPT, -1, -1)
                    out.eot.append(len(out.starts))
                    add(hit[0], hit[1], ACT, pieces[-1][2], -1)
                    pos = hit[1]
        add(pos, len(rendered), PROMPT, -1, -1)
        return out

    def _first_special(self, s: str, lo: int, hi: int) -> tuple[int, int] | None:
        best: tuple[int, int] | None = None
        for sp in self.specials:  # longest first, so ties go to the longest token
            k = s.find(sp, lo, hi)
            if k >= 0 and (best is None or k < best[0]):
                best = (k, k + len(sp))
        return best


def _turns(rec: dict) -> list[tuple[str, list[tuple[str, int, int, int]]]]:
    """``[(role, [(text, label, step, source_span), ...]), ...]`` with whitespace trimmed at turn edges."""
    text, spans = rec["text"], rec["spans"]
    turns: list[tuple[str, list]] = []
    system = rec.get("system")
    for i, sp in enumerate(spans):
        piece = text[sp["start"]:sp["end"]]
        label = KIND_TO_LABEL[sp["kind"]]
        step = sp.get("step", -1)
        if i == 0 and label == PROMPT and isinstance(system, str) and system.strip() \
                and piece.startswith(system):
            turns.append(("system", [(system, PROMPT, -1, -1)]))
            piece = piece[len(system):]
        role = "assistant" if label in (REASON, ACT) else "user"
        # prompt text is re-cut at turn edges, so it is not a record span any more (source -1)
        item = (piece, label, step, i if label in (REASON, ACT, OBS) else -1)
        # one assistant turn per step; consecutive user-side pieces share a turn
        if turns and turns[-1][0] == role and (role != "assistant" or turns[-1][1][-1][2] == step):
            turns[-1][1].append(item)
        else:
            turns.append((role, [item]))
    out = []
    for role, pieces in turns:
        pieces = _trim(pieces)
        if pieces:
            out.append((role, pieces))
    return out


def _trim(pieces: list[tuple[str, int, int, int]]) -> list[tuple[str, int, int, int]]:
    pieces = list(pieces)
    while pieces and not pieces[0][0].strip():
        pieces.pop(0)
    while pieces and not pieces[-1][0].strip():
        pieces.pop()
    if pieces:
        t, *rest = pieces[0]
        pieces[0] = (t.lstrip(), *rest)
        t, *rest = pieces[-1]
        pieces[-1] = (t.rstrip(), *rest)
    return pieces
