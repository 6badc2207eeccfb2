"""``openai:<base-url>#<model>``: any OpenAI-compatible endpoint as a ReAct teacher (stdlib HTTP only).

Works with vLLM, llama.cpp's server, ollama, hosted APIs: ``/chat/completions`` by default, or
``/completions`` with ``api="completions"`` (the prompt then ends with ``Thought:`` and the model
continues it). The API key is read from an environment variable (``OPENAI_API_KEY`` unless told
otherwise); it is sent as a bearer token and never printed or stored. With ``logprobs=k`` the top-k
log-probabilities of every generated token are kept with the step (``step["logprobs"]``), for offline
distillation later. A request that fails (connection error, timeout, HTTP 429/5xx) is retried with
exponential backoff; after ``retries`` failures that episode fails, not the run. All active episodes
are requested concurrently.

Several endpoints: ``openai:http://a:8000/v1,http://b:8000/v1#model`` (base URLs separated by commas, one
model name). New episodes go to the endpoint with the fewest episodes in flight, an episode keeps its
endpoint (prefix caching), and an endpoint that fails for good (after ``retries``) is dropped: its
episodes resume on the others at the failed step (see :mod:`sadcli.teachers.endpoints`). Every request
carries the header ``X-Episode-Id`` (the episode's id), for server logs and sticky routers.

Security and robustness: redirects are never followed (a 3xx is an error naming the status, so the
key is never re-sent to another host); every error text that can reach stderr, logs or an output
record's ``meta.error`` is scrubbed of the key; ``timeout`` bounds the whole request (connect, headers
and body together: a server trickling bytes is cut off and retried like any timeout); options are
type-checked when the teacher is built (``timeout=abc`` is an error before any episode runs).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sadcli.agent.loop import Decision, EpisodeState
from sadcli.envs.base import split_react
from sadcli.errors import InputError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointError(Exception):
    """A request that failed for good (after retries, or with a non-retryable status).

    ``retryable``: the endpoint itself failed (connection, timeout, 5xx/429 after every retry) — another
    endpoint may answer; False for an answer another server would give too (HTTP 400, a redirect)."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


def parse_endpoints(spec: str) -> tuple[list[str], str]:
    """``openai:http://a/v1[,http://b/v1...]#model`` (or without the ``openai:`` prefix) -> (base URLs, model)."""
    body = spec[len("openai:"):] if spec.startswith("openai:") else spec
    urls, sep, model = body.rpartition("#")
    if not sep or not urls or not model:
        raise InputError(f"bad OpenAI teacher spec {spec!r}",
                         hint="write openai:<base-url>#<model>, e.g. openai:http://127.0.0.1:8000/v1#Qwen2.5-7B "
                              "(several servers: openai:http://a:8000/v1,http://b:8000/v1#model)")
    out = []
    for url in urls.split(","):
        url = url.strip()
        if not url.startswith(("http://", "https://")):
            raise InputError(f"bad base URL {url!r} in {spec!r}",
                             hint="each base URL must start with http:// or https:// (several: separate by commas)")
        out.append(url.rstrip("/"))
    if len(set(out)) != len(out):
        raise InputError(f"a base URL is listed twice in {spec!r}", hint="list each server once")
    return out, model


def parse_spec(spec: str) -> tuple[str, str]:
    """-> (base URLs joined by commas — one URL for a single endpoint, model)."""
    urls, model = parse_endpoints(spec)
    return ",".join(urls), model


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

    def __post_init__(self) -> None:
        """Type- and range-check every option (values from ``--teacher-opt`` arrive parsed or as text)."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            want = {"str": str, "float": float, "int": int, "bool": bool}[str(f.type)]
            ok = (isinstance(v, want) and not (want is not bool and isinstance(v, bool))) or \
                (want is float and isinstance(v, int) and not isinstance(v, bool))
            if not ok:
                raise InputError(f"teacher option {f.name}={v!r} must be {_TYPE_WORDS[want]}",
                                 hint=f"e.g. --teacher-opt {f.name}={_EXAMPLES.get(f.name, f.default)}")
            if want is float:
                setattr(self, f.name, float(v))
        checks = {"timeout": self.timeout > 0, "retries": self.retries >= 0, "backoff": self.backoff >= 0,
                  "concurrency": self.concurrency >= 1, "max_tokens": self.max_tokens >= 1,
                  "logprobs": self.logprobs >= 0, "temperature": self.temperature >= 0,
                  "top_p": 0 < self.top_p <= 1}
        for name, good in checks.items():
            if not good:
                raise InputError(f"teacher option {name}={getattr(self, name)!r} is out of range",
                                 hint=f"e.g. --teacher-opt {name}={_EXAMPLES.get(name)}")
        if self.api not in ("chat", "completions"):
            raise InputError(f"unknown api {self.api!r}", hint="use --teacher-opt api=chat or api=completions")


_TYPE_WORDS = {str: "text", float: "a number", int: "an integer", bool: "true or false"}
_EXAMPLES = {"timeout": 60, "retries": 4, "backoff": 1.0, "concurrency": 16, "max_tokens": 256, "logprobs": 5,
             "temperature": 0.7, "top_p": 0.9, "api": "chat", "api_key_env": "MY_KEY", "examples": "false"}
REDACTED = "[REDACTED]"


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (and its URL-encoded form) replaced."""
    if not secret:
        return text
    for form in {secret, urllib.parse.quote(secret, safe="")}:
        text = text.replace(form, REDACTED)
    return text


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
        from sadcli.teachers.endpoints import EndpointPool

        urls, self.model = parse_endpoints(spec)
        self.base_url = urls[0]
        self.pool = EndpointPool(urls, on_dead=_tell_dead)
        self.opts = options or OpenAIOptions(**kw)
        self.name = f"openai:{self.model}"
        self._key = os.environ.get(self.opts.api_key_env) or None

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAITeacher({','.join(self.pool.urls)!r}, {self.model!r})"

    # -- HTTP ---------------------------------------------------------------------------------------
    def _request(self, base_url: str, path: str, data: bytes, headers: dict) -> tuple[int, dict, bytes]:
        """One POST with a deadline over the whole exchange; ``(status, headers, body)``.

        http.client never follows redirects. A watchdog shuts the socket down at the deadline, which
        wakes a blocked read: a slow or trickling server cannot hold a request past ``timeout``.
        """
        url = urllib.parse.urlsplit(base_url + path)
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        timeout = self.opts.timeout
        conn = cls(url.hostname, url.port, timeout=timeout)
        expired = threading.Event()
        held: list[socket.socket] = []  # the socket, kept: the response may take it over from conn

        def cut() -> None:
            expired.set()
            for sock in held or ([conn.sock] if conn.sock is not None else []):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(timeout, cut)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.connect()
            if conn.sock is not None:
                held.append(conn.sock)
            if expired.is_set():
                raise TimeoutError(f"timed out after {timeout:g} s")
            target = url.path + (f"?{url.query}" if url.query else "")
            conn.request("POST", target, body=data, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            if expired.is_set():
                raise TimeoutError(f"timed out after {timeout:g} s")
            return resp.status, dict(resp.getheaders()), body
        except (OSError, http.client.HTTPException) as e:
            if expired.is_set():
                raise TimeoutError(f"timed out after {timeout:g} s") from None
            raise e
        finally:
            watchdog.cancel()
            conn.close()

    def _post(self, path: str, payload: dict, base_url: str | None = None, episode: str | None = None) -> dict:
        base_url = base_url or self.base_url
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        if episode is not None:
            headers["X-Episode-Id"] = episode.encode("ascii", "replace").decode("ascii")
        where = f"{base_url}{path}"
        last = "no attempt"
        for attempt in range(self.opts.retries + 1):
            if attempt:
                delay = self.opts.backoff * (2 ** (attempt - 1))
                time.sleep(delay * (0.75 + 0.5 * random.random()))
            try:
                status, resp_headers, body = self._request(base_url, path, data, headers)
            except TimeoutError as e:
                last = f"TimeoutError: {e or 'timed out'}"
                continue
            except (OSError, http.client.HTTPException) as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if 300 <= status < 400:
                raise EndpointError(self._scrub(
                    f"HTTP {status} redirect from {where} (to {resp_headers.get('Location', '?')}) not followed: "
                    "give the final URL in the teacher spec"))
            if status >= 400:
                last = f"HTTP {status} from {where}"
                if status not in RETRY_STATUS:
                    text = body[:300].decode("utf-8", "replace")
                    raise EndpointError(self._scrub(f"{last}: {text}"))
                continue
            try:
                return json.loads(body.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                last = f"invalid JSON from {where}"
        raise EndpointError(self._scrub(f"{last} (gave up after {self.opts.retries + 1} attempts)"), retryable=True)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._key)

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
        while True:
            ep = self.pool.pin(st)
            if ep is None:
                return Decision("", error=self._scrub("every endpoint failed: " + "; ".join(
                    f"{e.url}: {e.dead}" for e in self.pool.endpoints)))
            try:
                resp = self._post(path, payload, ep.url, episode=st.id)
                choice = resp["choices"][0]
                text = choice["message"]["content"] if o.api == "chat" else choice["text"]
                break
            except EndpointError as e:
                if e.retryable and len(self.pool) > 1:
                    self.pool.mark_dead(ep, self._scrub(str(e)))  # this episode resumes on another endpoint
                    continue
                return Decision("", error=self._scrub(str(e)))
            except (KeyError, IndexError, TypeError):
                return Decision("", error=f"unexpected response shape from {ep.url}{path}")
        text = _cut_at_stop(text or "", stops)
        reason, action = split_react(text)
        if action is None:  # no "Action:" line: the output is sent as the action (an invalid one)
            reason, action = None, text.strip().split("\n", 1)[0]
        return Decision(action, reason=reason, raw=text,
                        logprobs=_normalize_logprobs(choice, o.api) if o.logprobs else None)

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        for st in states:  # pin new episodes in order (least loaded first), before any request goes out
            self.pool.pin(st)
        if len(states) <= 1:
            return [self.complete(s) for s in states]
        with ThreadPoolExecutor(max_workers=min(self.opts.concurrency, len(states))) as ex:
            return list(ex.map(self.complete, states))


def _tell_dead(ep, reason: str) -> None:
    from sadcli.console import console

    console.print(f"[yellow]endpoint {ep.url} given up ({reason}); its episodes continue on the other "
                  f"endpoints[/]", soft_wrap=True, highlight=False)
