"""`sad collect` in WebShop and HotPotQA-ReAct: --parallel, --resume, model teachers, piped into `sad segment`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

pytest.importorskip("bm25s", reason="WebShop and HotPotQA search need bm25s (the webshop / hotpotqa extras)")
pytest.importorskip("rapidfuzz", reason="WebShop's reward needs rapidfuzz (the webshop extra)")

from sadcli.cli import app  # noqa: E402

runner = CliRunner()


@pytest.fixture
def webshop_dir(shared):
    return str(shared("webshop/products_1k_processed.jsonl").parent)


@pytest.fixture
def hotpotqa_dir(shared):
    return str(shared("hotpotqa/dev_distractor_200.jsonl").parent)


def records(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def assert_segmented(jsonl: str, n: int) -> None:
    seg = runner.invoke(app, ["segment", "-", "--show", "--limit", "1"], input=jsonl)
    assert seg.exit_code == 0, seg.output
    assert "[REASON]" in seg.stderr or "REASON" in seg.stderr  # the colored preview went to stderr
    recs = records(seg.stdout)
    assert len(recs) == n
    for rec in recs:
        kinds = [s["kind"] for s in rec["spans"]]
        assert kinds[0] == "prompt" and {"reason", "act", "obs"} <= set(kinds)
        acts = [rec["text"][s["start"]:s["end"]] for s in rec["spans"] if s["kind"] == "act"]
        assert all(("search[" in a or "click[" in a or "lookup[" in a or "finish[" in a) for a in acts)


def test_webshop_collect_parallel_resume_and_segment(webshop_dir, tmp_path):
    out = tmp_path / "ws.jsonl"
    base = ["collect", "--env", "webshop", "--data-dir", webshop_dir, "-o", str(out)]
    r = runner.invoke(app, [*base, "-n", "2", "-p", "2"])
    assert r.exit_code == 0, r.output
    assert "webshop/train: 2 episodes played, 2 successful (100%)" in r.stderr
    r = runner.invoke(app, [*base, "-n", "3", "--resume"])
    assert r.exit_code == 0, r.output
    assert "1 episodes played" in r.stderr and "2 already there (--resume)" in r.stderr
    recs = records(out.read_text())
    assert sorted(x["id"] for x in recs) == [f"webshop/train/goal{i}/0" for i in range(500, 503)]
    assert all(x["success"] and x["reward"] == 1.0 and x["meta"]["final_info"]["score"] == 1.0 for x in recs)
    assert_segmented(out.read_text(), 3)


def test_hotpotqa_collect_pipes_into_segment(hotpotqa_dir):
    r = runner.invoke(app, ["collect", "--env", "wikiqa", "--corpus", "hotpotqa", "--data-dir", hotpotqa_dir,
                            "--split", "dev", "-n", "3"])
    assert r.exit_code == 0, r.output
    recs = records(r.stdout)
    assert [x["id"].split("/")[1] for x in recs] == ["dev"] * 3 and all(x["success"] for x in recs)
    assert all(x["meta"]["final_info"]["f1"] == 1.0 for x in recs)
    assert_segmented(r.stdout, 3)
    # --questions has no place with the built-in corpus; a missing folder is a clean error
    bad = runner.invoke(app, ["collect", "--env", "wikiqa", "--corpus", "hotpotqa", "--data-dir", "/nonexistent"])
    assert bad.exit_code == 1 and "is missing" in bad.stderr and "Traceback" not in bad.output
    bad = runner.invoke(app, ["collect", "--env", "webshop", "--game", "x"])
    assert bad.exit_code == 2 and "--game does not apply to --env webshop" in bad.output


class FireActLike(BaseHTTPRequestHandler):
    """A chat endpoint answering as a FireAct-tuned model: search the first capitalized words, then finish."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        msgs = body["messages"]
        turns = sum(1 for m in msgs if m["role"] == "assistant")
        if turns == 0:
            text = "Thought: I need to search Scott Derrickson.\nAction: search[Scott Derrickson]"
        else:
            text = "Thought: He is an American director, so the answer is yes.\nAction: finish[yes]"
        FireActLike.seen.append(msgs)
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text},
                                        "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_openai_teacher_in_hotpotqa_speaks_fireact(hotpotqa_dir, tmp_path):
    FireActLike.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FireActLike)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1#fireact"
        r = runner.invoke(app, ["collect", "--env", "wikiqa", "--corpus", "hotpotqa", "--data-dir", hotpotqa_dir,
                                "--split", "dev", "-n", "2", "-p", "2", "--teacher", f"openai:{url}"])
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.exit_code == 0, r.output
    recs = sorted(records(r.stdout), key=lambda x: x["id"])
    assert len(recs) == 2
    first = next(x for x in recs if x["id"] == "wikiqa/dev/5a8b57f25542995d1e6f1371/0")
    assert first["success"] and [s["action"] for s in first["steps"]] == ["search[Scott Derrickson]", "finish[yes]"]
    assert first["steps"][0]["reason"] == "I need to search Scott Derrickson."
    assert first["steps"][0]["observation"].startswith("Scott Derrickson (born July 16, 1966)")
    # the model saw FireAct's turns: the bare question as a user turn, then Observation: turns
    last = max((m for m in FireActLike.seen if m[1]["content"] == first["task"]), key=len)
    assert last[1] == {"role": "user", "content": first["task"]}
    assert last[2]["content"].startswith("Thought: I need to search") and last[3]["content"].startswith("Observation: ")
    assert_segmented(r.stdout, 2)


@pytest.mark.slow
def test_hf_teacher_acts_in_webshop(webshop_dir):
    from sadcli.models.spec import is_installed

    if not is_installed("smollm2-135m"):
        pytest.skip("the embedded model is not converted yet (python -m sadcli.models --ensure smollm2-135m)")
    r = runner.invoke(app, ["collect", "--env", "webshop", "--data-dir", webshop_dir, "--split", "test", "-n", "1",
                            "--max-steps", "1", "--teacher", "hf:smollm2-135m", "--teacher-opt", "examples=false",
                            "--teacher-opt", "max_new_tokens=16", "--teacher-opt", "device=cpu"])
    assert r.exit_code == 0, r.output
    recs = records(r.stdout)
    assert len(recs) == 1 and all(x["teacher"] == "hf:smollm2-135m" and len(x["steps"]) == 1 for x in recs)
    assert all(s["observation"] for x in recs for s in x["steps"])
