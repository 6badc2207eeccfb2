"""The OpenAI-compatible teacher against a fake server on 127.0.0.1 (http.server, no openai package)."""

from __future__ import annotations

import json
import pathlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sadcli.agent.loop import EnvPool, run_episodes
from sadcli.envs.registry import EnvSpec
from sadcli.errors import InputError
from sadcli.teachers import make_teacher
from sadcli.teachers.openai import parse_spec

COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"
KEY = "sk-test-SECRET-123"


class Fake:
    """Answers like a chat/completions endpoint: says the next number, after `fail_first` 503s."""

    def __init__(self, fail_first=0, always_fail=False, garbage=False):
        self.fail_first, self.always_fail, self.garbage = fail_first, always_fail, garbage
        self.requests, self.auth = [], []
        self.lock = threading.Lock()

    def reply(self, payload):
        if "messages" in payload:
            said = sum(1 for m in payload["messages"] if m["role"] == "user" and m["content"].startswith("Observation:"))
        else:
            said = payload["prompt"].split("Now it is your turn.")[-1].count("\nObservation:")
        if self.garbage:
            return "I refuse to count."
        return f" I have said {said}, so next comes {said + 1}.\nAction: say[{said + 1}]\nObservation: (made up)"


def serve(fake):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with fake.lock:
                fake.requests.append((self.path, body))
                fake.auth.append(self.headers.get("Authorization"))
                n = len(fake.requests)
            if fake.always_fail or n <= fake.fail_first:
                self.send_response(503)
                self.end_headers()
                self.wfile.write(b"busy")
                return
            text = fake.reply(body)
            toks = [{"token": t, "logprob": -0.5, "top_logprobs": [{"token": t, "logprob": -0.5},
                                                                    {"token": "x", "logprob": -2.0}]}
                    for t in text.split(" ")[:3]]
            if self.path.endswith("/chat/completions"):
                choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                if body.get("logprobs"):
                    choice["logprobs"] = {"content": toks}
            else:
                choice = {"text": text, "finish_reason": "stop"}
                if body.get("logprobs"):
                    choice["logprobs"] = {"tokens": [t["token"] for t in toks],
                                          "token_logprobs": [t["logprob"] for t in toks],
                                          "top_logprobs": [{t["token"]: -0.5, "x": -2.0} for t in toks]}
            data = json.dumps({"choices": [choice]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"


@pytest.fixture
def server():
    made = []

    def start(**kw):
        fake = Fake(**kw)
        srv, url = serve(fake)
        made.append(srv)
        return fake, url
    yield start
    for s in made:
        s.shutdown()
        s.server_close()


def _collect(teacher, games=3, parallel=2):
    with EnvPool(EnvSpec.parse(COUNTER, {"games": games}), parallel, in_process=True) as pool:
        return list(run_episodes(pool, pool.tasks("train"), teacher))


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_episodes_with_key_logprobs_and_stop(server, monkeypatch, api):
    fake, url = server()
    monkeypatch.setenv("MY_KEY", KEY)
    t = make_teacher(f"openai:{url}#fake-model", api=api, api_key_env="MY_KEY", logprobs=2)
    assert KEY not in repr(t) and t.name == "openai:fake-model"
    recs = _collect(t)
    assert all(r["success"] for r in recs)
    assert set(fake.auth) == {f"Bearer {KEY}"}
    assert KEY not in json.dumps(recs)
    path, body = fake.requests[0]
    assert path == ("/v1/chat/completions" if api == "chat" else "/v1/completions")
    assert body["model"] == "fake-model" and "\nObservation:" in body["stop"]
    step = recs[0]["steps"][0]
    assert step["reason"] == "I have said 0, so next comes 1." and step["action"] == "say[1]"
    # the text after the stop sequence is cut
    assert "made up" not in json.dumps(recs)
    lp = step["logprobs"]
    assert lp[0]["logprob"] == -0.5 and lp[0]["top"][1] == ["x", -2.0]


def test_no_key_no_header_and_no_logprobs_by_default(server, monkeypatch):
    fake, url = server()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    recs = _collect(make_teacher(f"openai:{url}#m"), games=1, parallel=1)
    assert recs[0]["success"] and set(fake.auth) == {None}
    assert "logprobs" not in recs[0]["steps"][0]


def test_retries_with_backoff_then_succeeds(server):
    fake, url = server(fail_first=2)
    recs = _collect(make_teacher(f"openai:{url}#m", retries=3, backoff=0.01), games=1, parallel=1)
    assert recs[0]["success"] and len(fake.requests) == 2 + recs[0]["meta"]["steps"]


def test_persistent_failure_fails_the_episode_not_the_run(server):
    fake, url = server(always_fail=True)
    recs = _collect(make_teacher(f"openai:{url}#m", retries=2, backoff=0.01), games=2, parallel=2)
    assert len(recs) == 2 and not any(r["success"] for r in recs)
    assert all("HTTP 503" in r["meta"]["error"] and "3 attempts" in r["meta"]["error"] for r in recs)


def test_unreachable_endpoint_fails_cleanly():
    recs = _collect(make_teacher("openai:http://127.0.0.1:9/v1#m", retries=1, backoff=0.01, timeout=2),
                    games=1, parallel=1)
    assert "policy failed" in recs[0]["meta"]["error"]


def test_garbage_output_is_an_invalid_action(server):
    fake, url = server(garbage=True)
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 1}), 1, in_process=True) as pool:
        (rec,) = list(run_episodes(pool, pool.tasks("train"), make_teacher(f"openai:{url}#m"), max_steps=2))
    assert rec["meta"]["invalid_actions"] == 2
    assert rec["steps"][0]["observation"] == "Invalid action: I refuse to count."
    assert rec["steps"][0]["raw"] == "I refuse to count."


def test_spec_parsing():
    assert parse_spec("openai:http://h:8000/v1/#Qwen/Qwen2.5-7B") == ("http://h:8000/v1", "Qwen/Qwen2.5-7B")
    with pytest.raises(InputError, match="bad OpenAI teacher spec"):
        parse_spec("openai:http://h:8000/v1")
    with pytest.raises(InputError, match="bad base URL"):
        parse_spec("openai:h:8000#m")
    with pytest.raises(InputError, match="unknown teacher option"):
        make_teacher("openai:http://h/v1#m", colour="red")
    with pytest.raises(InputError, match="unknown teacher"):
        make_teacher("gpt4")


# --- issue 9, item 5: the key never leaves for another host or lands in a record; whole-request timeout

def _serve_handler(handler_cls):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def _state():
    from sadcli.agent.loop import EpisodeState
    from sadcli.envs.base import PromptTemplate, Task

    return EpisodeState(task=Task("counter", "train", "2", 0, {}), env="counter",
                        prompt=PromptTemplate("Count.", []), task_text="Count to 2.")


def _quiet_handler(**methods):
    return type("H", (BaseHTTPRequestHandler,), {"log_message": lambda self, *a: None, **methods})


def test_redirect_is_not_followed_and_the_key_is_not_resent(monkeypatch):
    seen = []

    def target_any(self):
        seen.append((self.command, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()

    target, target_url = _serve_handler(_quiet_handler(do_GET=target_any, do_POST=target_any))

    def redirect(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(302)
        self.send_header("Location", target_url + "/steal")
        self.send_header("Content-Length", "0")
        self.end_headers()

    origin, origin_url = _serve_handler(_quiet_handler(do_POST=redirect))
    try:
        monkeypatch.setenv("MY_KEY", KEY)
        t = make_teacher(f"openai:{origin_url}/v1#m", api_key_env="MY_KEY", retries=0)
        d = t.act([_state()])[0]
        assert seen == []                                   # main: GET /steal with "Bearer sk-test-SECRET-123"
        assert "HTTP 302" in d.error and "not followed" in d.error and KEY not in d.error
    finally:
        for s in (origin, target):
            s.shutdown()
            s.server_close()


def test_key_echoed_in_an_error_body_is_scrubbed_from_meta_error(monkeypatch, tmp_path):
    def echo(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = f"unauthorized: you sent {self.headers.get('Authorization')}".encode()
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    srv, url = _serve_handler(_quiet_handler(do_POST=echo))
    try:
        monkeypatch.setenv("MY_KEY", KEY)
        out = tmp_path / "c.jsonl"
        from typer.testing import CliRunner

        from sadcli.cli import app

        r = CliRunner().invoke(app, ["collect", "--env", COUNTER, "--env-opt", "games=1", "-n", "1", "-o", str(out),
                                     "--teacher", f"openai:{url}/v1#m", "--teacher-opt", "api_key_env=MY_KEY",
                                     "--teacher-opt", "retries=0"])
        assert r.exit_code == 0, r.output
        text = out.read_text()
        assert "HTTP 401" in text and "[REDACTED]" in text
        assert KEY not in text and KEY not in r.output            # main: the key in meta.error
    finally:
        srv.shutdown()
        srv.server_close()


def test_timeout_bounds_the_whole_request_against_a_trickling_server():
    import time

    calls, sent = [], []

    def trickle(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        calls.append(1)
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        n = 0
        try:
            for _ in range(40):                                   # one byte every 0.5 s: 20 s in all
                self.wfile.write(b" ")
                self.wfile.flush()
                n += 1
                time.sleep(0.5)
        except OSError:
            pass
        sent.append(n)

    srv, url = _serve_handler(_quiet_handler(do_POST=trickle))
    try:
        t = make_teacher(f"openai:{url}/v1#m", timeout=1.5, retries=1, backoff=0.01)
        d = t.act([_state()])[0]
        assert "TimeoutError" in d.error and "2 attempts" in d.error   # main: no timeout (each byte < 1.5 s)
        assert len(calls) == 2                                         # retried like any timeout
        deadline = time.monotonic() + 30
        while len(sent) < 2 and time.monotonic() < deadline:          # the server notices the cut
            time.sleep(0.1)
        assert len(sent) == 2 and max(sent) < 40                       # neither request ran to its end
    finally:
        srv.shutdown()
        srv.server_close()


def test_teacher_options_are_validated_before_any_episode(tmp_path):
    from typer.testing import CliRunner

    from sadcli.cli import app

    out = tmp_path / "c.jsonl"
    for bad, word in (("timeout=abc", "must be a number"), ("retries=-1", "out of range"),
                      ("concurrency=0", "out of range"), ("api=soap", "unknown api")):
        r = CliRunner().invoke(app, ["collect", "--env", COUNTER, "-n", "2", "-o", str(out),
                                     "--teacher", "openai:http://127.0.0.1:9/v1#m", "--teacher-opt", bad])
        assert r.exit_code == 1 and "Error:" in r.stderr and word in r.stderr, (bad, r.output)
        assert "Traceback" not in r.output
        assert not out.exists()
