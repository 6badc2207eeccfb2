"""Chat formats: OpenAI ``messages`` and ShareGPT ``conversations``.

OpenAI: ``system`` is prompt; user turns before the first assistant turn are the task, later user
turns and ``tool`` replies are observations (a leading ``Observation:`` is stripped); assistant turns hold
reasoning + action (parsed with the ReAct markers or tags; ``tool_calls`` are actions and the text
beside them is reasoning). Assistant turns marked ``"weight": 0`` (OpenAI fine-tuning) or
``"loss": false`` (AgentInstruct) were not produced by the agent: they become prompt context.

ShareGPT: ``from`` human/user, gpt/assistant/model, system, function_call, observation/tool;
``value`` the text; mapped onto the OpenAI rules.
"""

from __future__ import annotations

import json
from typing import Any

from sadcli.errors import InputError
from sadcli.segment.alfworld import alfworld_parts
from sadcli.segment.react_text import react_parts, strip_observation_marker
from sadcli.segment.steps import Parsed, Part, StepBuilder, where_str
from sadcli.segment.tags import looks_like_tags, tag_parts

_ROLE = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant", "chatgpt": "assistant", "bing": "assistant",
    "system": "system",
    "function_call": "function_call", "tool_call": "function_call",
    "observation": "tool", "tool": "tool", "function": "tool", "function_response": "tool", "ipython": "tool",
}


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        out = []
        for item in content:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                out.append(item["text"])
        return "\n".join(out)
    raise InputError(f"{where}: content must be a string or a list of parts, got {type(content).__name__}")


def _tool_call_text(call: Any) -> str:
    if isinstance(call, dict):
        fn = call.get("function", call)
        name = fn.get("name", "")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        return json.dumps({"name": name, "arguments": args}, ensure_ascii=False, separators=(", ", ": "))
    return str(call)


def assistant_parts(text: str, where: Any, has_tool_calls: bool) -> tuple[list[Part], str | None]:
    """Parts of one assistant turn, and a warning when it had no markers."""
    if "<" in text and looks_like_tags(text):
        return tag_parts(text, where), None
    parts = react_parts(text, where)
    if any(p.kind in ("reason", "act") for p in parts):
        if parts[0].kind == "text":  # text before the first marker in an assistant turn is reasoning
            parts[0] = Part("reason", parts[0].text, parts[0].where)
        return parts, None
    if text.lstrip().startswith(">"):
        return alfworld_parts(text), None
    if not text.strip():
        return [], None
    if has_tool_calls:
        return [Part("reason", text.strip(), where)], None
    return [Part("act", text.strip(), where)], \
        f"{where_str(where)}: no reasoning/action markers; the turn was taken as the action"


def parse_messages(messages: Any, field: str = "messages") -> Parsed:
    if not isinstance(messages, list):
        raise InputError(f"field '{field}' must be a list of messages, got {type(messages).__name__}")
    b = StepBuilder()
    add = b.add
    system: list[str] = []
    seen_assistant = False
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InputError(f"{field}[{i}] must be an object, got {type(msg).__name__}")
        raw_role = msg.get("role")
        if raw_role is None:
            raw_role = msg.get("from")
        if not isinstance(raw_role, str):
            raise InputError(f"{field}[{i}]: missing 'role' (or 'from')", hint="each message needs a role")
        role = _ROLE.get(raw_role) or _ROLE.get(raw_role.lower())
        if role is None:
            raise InputError(f"{field}[{i}]: unknown role {raw_role!r}",
                             hint="roles: system, user/human, assistant/gpt, tool/observation")
        content = msg.get("content")
        if content is None:
            content = msg.get("value")
        text = content if type(content) is str else _content_text(content, f"{field}[{i}]")
        where = (field, i)
        if role == "user":
            if not seen_assistant:
                add(Part("task", text, where))
            else:
                add(Part("obs", strip_observation_marker(text), where))
        elif role == "assistant":
            if msg.get("weight") == 0 or msg.get("loss") is False:
                add(Part("context", text, where))
                continue
            seen_assistant = True
            calls = msg.get("tool_calls") or ([msg["function_call"]] if msg.get("function_call") else [])
            parts, warning = assistant_parts(text, where, bool(calls))
            if warning:
                b.warn("no-markers", warning, len(b.steps))
            for part in parts:
                add(part)
            for call in calls:
                add(Part("act", _tool_call_text(call), where))
        elif role == "tool":
            add(Part("obs", strip_observation_marker(text), where))
        elif role == "system":
            if seen_assistant:
                add(Part("context", text, where))
            else:
                system.append(text)
        else:  # function_call
            seen_assistant = True
            add(Part("act", text.strip(), where))
    sys_text = "\n\n".join(s for s in system if s) or None
    return b.finish(system=sys_text)
