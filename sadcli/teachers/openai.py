"""``openai:<base-url>#<model>``: any OpenAI-compatible endpoint as a ReAct teacher (stdlib HTTP only).

Works with vLLM, llama.cpp's server, ollama, hosted APIs: ``/chat/completions`` by default, or
``/completions`` with ``api="completions"`` (the prompt then ends with ``Thought:`` and the model
continues it). The API key is read from an environment variable (``OPENAI_API_KEY`` unless told
otherwise); it is sent as a bearer token and never printed or stored. With ``logprobs=k`` the top-k
log-probabilities of every generated token are kept with the step (``step["logprobs"]``), for offline
distillation later. A request that fails (connection error, timeout, HTTP 429/5xx) is retried with
exponential backoff; after ``retries`` failures that episode fails, not the run. All active episodes
are requested concurrently.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sadcli.agent.loop import Decision, EpisodeState
from sadcli.envs.base import split_react
from sadcli.errors import InputError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointError(Exception):
    """A request that failed for good (after retries, or with a non-retryable status)."""


def parse_spec(spec: str) -> tuple[str, str]:
    """``openai:http://host:8000/v1#model`` (or without the ``openai:`` prefix) -> (base_url, model)."""
    body = spec[len("openai:"):] if spec.startswith("openai:") else spec
    url, sep, model = body.rpartition("#")
    if not sep or not url or not model:
        raise InputError(f"bad OpenAI teacher spec {spec!r}",
                         hint="write openai:<base-url>#<model>, e.g. openai:http://127.0.0.1:8000/v1#Qwen2.5-7B")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"bad base URL {url!r} in {spec!r}", hint="it must start with http:// or https://")
    return url.rstrip("/"), model


@dataclass
class OpenAIOptions:
    api: str = "chat"                 # chat | completions
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    logprobs: int = 0                 # top-k log-probs per generated token (0: none)
    timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0              # seconds before the first retry, doubled each time
    examples: bool = True             # include the environment's few-shot examples
    concurrency: int = 16


def _normalize_logprobs(choice: dict, api: str) -> list | None:
    lp = choice.get("logprobs")
    if not lp:
        return None
    out = []
    if api == "chat" and isinstance(lp.get("content"), list):
        for t in lp["content"]:
            top = [[x.get("token"), x.get("logprob")] for x in (t.get("top_logprobs") or [])]
            out.append({"token": t.get("token"), "logprob": t.get("logprob"), "top": top})
        return out
    tokens = lp.get("tokens") or []
    token_lps = lp.get("token_logprobs") or []
    tops = lp.get("top_logprobs") or [None] * len(tokens)
    for tok, lp_tok, top in zip(tokens, token_lps, tops, strict=False):
        out.append({"token": tok, "logprob": lp_tok,
                    "top": [[k, v] for k, v in (top or {}).items()]})
    return out


def _cut_at_stop(text: str, stops) -> str:
    cut = len(text)
    for s in stops:
        j = text.find(s)
        if j != -1:
            cut = min(cut, j)
    return text[:cut]


class OpenAITeacher:
    """A ReAct policy served by an OpenAI-compatible endpoint."""

    def __init__(self, spec: str, options: OpenAIOptions | None = None, **kw):
        self.base_url, self.model = parse_spec(spec)
        self.opts = options or OpenAIOptions(**kw)
        if self.opts.api not in ("chat", "completions"):
            raise InputError(f"unknown api {self.opts.api!r}", hint="use chat or completions")
        self.name = f"openai:{self.model}"
        self._key = os.environ.get(self.opts.api_key_env) or None

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAITeacher({self.base_url!r}, {self.model!r})"

    # -- HTTP ---------------------------------------------------------------------------------------
    def _post(self, path: str, payload: dict) -> dict:
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = "no attempt"
        for attempt in range(self.opts.retries + 1):
            if attempt:
                delay = self.opts.backoff * (2 ** (attempt - 1))
                time.sleep(delay * (0.75 + 0.5 * random.random()))
            req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.opts.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code} from {self.base_url}{path}"
                if e.code not in RETRY_STATUS:
                    body = e.read()[:300].decode("utf-8", "replace")
                    raise EndpointError(f"{last}: {body}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", e)
                last = f"{type(reason).__name__ if not isinstance(reason, str) else 'URLError'}: {reason}"
            except json.JSONDecodeError:
                last = f"invalid JSON from {self.base_url}{path}"
        raise EndpointError(f"{last} (gave up after {self.opts.retries + 1} attempts)")

    def complete(self, st: EpisodeState) -> Decision:
        o = self.opts
        stops = list(st.prompt.stop)[:4]  # the API allows 4 stop sequences
        payload: dict = {"model": self.model, "temperature": o.temperature, "top_p": o.top_p,
                         "max_tokens": o.max_tokens, "stop": stops}
        if o.api == "chat":
            payload["messages"] = st.prompt.messages(st.task_text, st.steps, examples=o.examples)
            if o.logprobs:
                payload["logprobs"] = True
                payload["top_logprobs"] = o.logprobs
            path = "/chat/completions"
        else:
            payload["prompt"] = st.prompt.render(st.task_text, st.steps, examples=o.examples)
            if o.logprobs:
                payload["logprobs"] = o.logprobs
            path = "/completions"
        try:
            resp = self._post(path, payload)
            choice = resp["choices"][0]
            text = choice["message"]["content"] if o.api == "chat" else choice["text"]
        except EndpointError as e:
            return Decision("", error=str(e))
        except (KeyError, IndexError, TypeError):
            return Decision("", error=f"unexpected response shape from {self.base_url}{path}")
        text = _cut_at_stop(text or "", stops)
        reason, action = split_react(text)
        if action is None:  # no "Action:" line: the output is sent as the action (an invalid one)
            reason, action = None, text.strip().split("\n", 1)[0]
        return Decision(action, reason=reason, raw=text,
                        logprobs=_normalize_logprobs(choice, o.api) if o.logprobs else None)

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        if len(states) <= 1:
            return [self.complete(s) for s in states]
        with ThreadPoolExecutor(max_workers=min(self.opts.concurrency, len(states))) as ex:
            return list(ex.map(self.complete, states))
