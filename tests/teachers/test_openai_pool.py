"""Several OpenAI-compatible endpoints (fake servers on 127.0.0.1): least-loaded, sticky, a dying server."""

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
from sadcli.teachers.openai import parse_endpoints

COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"


def reply(payload: dict) -> str:
    """The next number of the counting game (the counter environment's expert, as a chat model)."""
    said = sum(1 for m in payload["messages"] if m["role"] == "user" and m["content"].startswith("Observation:"))
    return f" I have said {said}, so next comes {said + 1}.\nAction: say[{said + 1}]"


def _collect(teacher, games=3, parallel=2):
    with EnvPool(EnvSpec.parse(COUNTER, {"games": games}), parallel, in_process=True) as pool:
        return list(run_episodes(pool, pool.tasks("train"), teacher))


class Server:
    """A fake endpoint that remembers which episode (X-Episode-Id) each request belonged to; with
    ``die_after=n`` it answers n requests, then drops the connection of the next one and shuts down."""

    def __init__(self, die_after: int | None = None):
        self.die_after = die_after
        self.episodes: list[str] = []
        self.lock = threading.Lock()
        server = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    n = len(server.episodes)
                    dying = server.die_after is not None and n >= server.die_after
                    if not dying:
                        server.episodes.append(self.headers.get("X-Episode-Id"))
                if dying:  # no answer: the connection is closed and the server goes away
                    self.close_connection = True
                    threading.Thread(target=server.stop, daemon=True).start()
                    return
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply(body)},
                                                "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/v1"
        self.stopped = False
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.srv.shutdown()
            self.srv.server_close()


@pytest.fixture
def servers():
    made = []

    def start(*die_after):
        out = [Server(d) for d in die_after]
        made.extend(out)
        return out
    yield start
    for s in made:
        s.stop()


def _episodes_per_server(srvs):
    return [set(s.episodes) for s in srvs]


def test_spec_with_several_urls():
    assert parse_endpoints("openai:http://a:1/v1/, http://b:2/v1#m") == (["http://a:1/v1", "http://b:2/v1"], "m")
    for bad in ("openai:http://a/v1,b:2/v1#m", "openai:http://a/v1,http://a/v1#m", "openai:http://a/v1,#m"):
        with pytest.raises(InputError):
            parse_endpoints(bad)


def test_new_episodes_go_to_the_least_loaded_endpoint_and_stay_there(servers):
    srvs = servers(None, None, None)
    spec = "openai:" + ",".join(s.url for s in srvs) + "#m"
    recs = _collect(make_teacher(spec), games=9, parallel=6)
    assert len(recs) == 9 and all(r["success"] for r in recs)
    per = _episodes_per_server(srvs)
    # sticky: no episode was ever served by two endpoints
    assert sum(len(p) for p in per) == 9 and set().union(*per) == {r["id"] for r in recs}
    # least loaded: the first 6 episodes spread 2 / 2 / 2 (episode i on server i % 3); the 3 that follow go
    # where episodes finished first (short games: "count to 2" is episode 0, 3, 6)
    for i in range(6):
        assert f"counter/train/{2 + i % 3}/{i}" in per[i % 3], [sorted(p) for p in per]
    # every request of an episode went to the same server, one request per step
    steps = {r["id"]: r["meta"]["steps"] for r in recs}
    for s in srvs:
        for ep in set(s.episodes):
            assert s.episodes.count(ep) == steps[ep]


def test_pool_counts_in_flight_episodes_and_releases_finished_ones():
    import gc

    from sadcli.agent.loop import EpisodeState
    from sadcli.envs.base import PromptTemplate, Task
    from sadcli.teachers.endpoints import EndpointPool

    pool = EndpointPool(["http://a", "http://b", "http://c"])
    prompt = PromptTemplate("x", [])
    states = [EpisodeState(task=Task("e", "s", "g", i), env="e", prompt=prompt) for i in range(6)]
    assert [pool.pin(st).index for st in states] == [0, 1, 2, 0, 1, 2]
    assert [pool.pin(st).index for st in states] == [0, 1, 2, 0, 1, 2]          # sticky
    assert [e.in_flight for e in pool.endpoints] == [2, 2, 2]
    del states[1], states[3]                                                     # two of b's episodes finish
    gc.collect()
    assert [e.in_flight for e in pool.endpoints] == [2, 0, 2]
    new = EpisodeState(task=Task("e", "s", "g", 9), env="e", prompt=prompt)
    assert pool.pin(new).index == 1                                              # the least loaded
    pool.mark_dead(pool.endpoints[0], "gone")
    assert pool.pin(states[0]).index == 1 and pool.pin(states[2]).index == 1     # a's episodes move (ties: b first)
    assert [e.in_flight for e in pool.endpoints] == [0, 3, 2]


def test_a_dying_endpoint_hands_its_episodes_over_nothing_duplicated(servers):
    srvs = servers(None, 5, None)     # the second one answers 5 requests, then dies mid-run
    spec = "openai:" + ",".join(s.url for s in srvs) + "#m"
    teacher = make_teacher(spec, retries=1, backoff=0.01, timeout=5)
    recs = _collect(teacher, games=9, parallel=6)
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)) == 9                          # each episode written once
    assert all(r["success"] and "error" not in r["meta"] for r in recs)
    dead = teacher.pool.endpoints[1]
    assert srvs[1].stopped and dead.dead is not None and len(srvs[1].episodes) == 5
    moved = set(srvs[1].episodes)
    assert moved, "the dying server served some episodes before it died"
    steps = {r["id"]: r["meta"]["steps"] for r in recs}
    handed_over = 0
    for ep in moved:  # resumed elsewhere at the failed step: total requests = steps, none repeated
        n_alive = sum(s.episodes.count(ep) for s in (srvs[0], srvs[2]))
        assert srvs[1].episodes.count(ep) + n_alive == steps[ep]
        assert sum(ep in s.episodes for s in (srvs[0], srvs[2])) <= 1   # it moved to one endpoint only
        handed_over += n_alive > 0
    assert handed_over >= 1, "some episode was cut by the death and finished elsewhere"
    for s in (srvs[0], srvs[2]):       # the live servers' own episodes never moved
        for ep in set(s.episodes) - moved:
            assert s.episodes.count(ep) == steps[ep]
    assert all(e.in_flight == 0 for e in teacher.pool.endpoints)      # released when the loop let go


def test_all_endpoints_dead_fails_the_episodes_not_the_run(servers):
    srvs = servers(0, 0)
    teacher = make_teacher("openai:" + ",".join(s.url for s in srvs) + "#m", retries=0, backoff=0.01, timeout=5)
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 2}), 2, in_process=True) as pool:
        recs = list(run_episodes(pool, pool.tasks("train"), teacher))
    assert len(recs) == 2 and not any(r["success"] for r in recs)
    assert all("every endpoint failed" in r["meta"]["error"] for r in recs)


def test_eval_and_collect_cli_take_several_urls(servers, tmp_path):
    from typer.testing import CliRunner

    from sadcli.cli import app

    srvs = servers(None, None)
    spec = "openai:" + ",".join(s.url for s in srvs) + "#fake"
    runner = CliRunner()
    r = runner.invoke(app, ["collect", "--env", COUNTER, "--env-opt", "games=4", "-n", "4", "-p", "2", "-t", spec,
                            "-o", str(tmp_path / "c.jsonl"), "-q"], prog_name="sad")
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 4
    r = runner.invoke(app, ["eval", "-m", spec, "--env", COUNTER, "--env-opt", "games=4", "-n", "all", "-p", "2",
                            "-o", str(tmp_path / "e.jsonl")], prog_name="sad")
    assert r.exit_code == 0, r.output
    assert "4/4" in r.stderr
    assert all(s.episodes for s in srvs)  # both servers took episodes in both commands
