"""Token-level continuous batching (sadcli.agent.scheduler + sadcli.teachers.continuous) against a naive
reference: every episode played alone, every token computed by a full forward over the whole text.

A tiny config-built model (2 layers, 64 dims, the real tokenizer) writes near-random text, so to make
rows end at different tokens (the point of continuous batching) a quarter of the vocabulary counts as
end-of-sequence; the counter environment echoes an invalid action into the next observation, so a wrong
token anywhere changes every later prompt.
"""

from __future__ import annotations

import pathlib

import pytest

from sadcli.agent.loop import Decision, EnvPool, run_episodes
from sadcli.agent.scheduler import play
from sadcli.envs.registry import EnvSpec

COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"
MAX_NEW = 10


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(2)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(2.0)
        for layer in model.model.layers:  # sharp attention: outputs depend on positions and on which keys
            layer.self_attn.q_proj.weight.mul_(12.0)
            layer.self_attn.k_proj.weight.mul_(12.0)
    out = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return str(out)


def _teacher(tiny_dir: str, **kw):
    from sadcli.teachers import make_teacher

    t = make_teacher(f"hf:{tiny_dir}", max_new_tokens=MAX_NEW, examples=False, device="cpu", chat="no", **kw)
    t.gen.eos_ids = set(range(0, len(t.gen.tok), 6))  # rows end after ~6 tokens, at varied steps
    return t


class NaivePolicy:
    """One episode at a time; each new token from a full forward over prompt + tokens so far (no cache)."""

    def __init__(self, teacher):
        self.teacher, self.name = teacher, teacher.name

    def act(self, states):
        import torch

        g = self.teacher.gen
        out = []
        for st in states:
            ids = g.encode(self.teacher.prompt(st))
            stops = self.teacher._stops(st.prompt)
            toks: list[int] = []
            with torch.inference_mode():
                while len(toks) < MAX_NEW:
                    x = torch.tensor([ids + toks])
                    t = int(g.model(input_ids=x).logits[0, -1].argmax())
                    if t in g.eos_ids:
                        break
                    toks.append(t)
                    if g._stopped(toks, t, stops, None):
                        break
            text = g.tok.decode(toks, skip_special_tokens=True)
            from sadcli.teachers.hf import cut_at_stop

            out.append(self.teacher.decide(cut_at_stop(text, stops), len(toks)))
        return out


def _episodes(records):
    return {r["id"]: [(s["action"], s.get("raw"), s["observation"]) for s in r["steps"]] for r in records}


def test_continuous_batching_equals_one_episode_at_a_time(tiny_dir):
    teacher = _teacher(tiny_dir)
    joins = []  # (rows decoding, rows joining) at every decode step
    from sadcli.teachers.continuous import RowBatch

    orig, orig_rebuild = RowBatch._place, RowBatch._rebuild
    rebuilds = []

    def spy(self, joined):
        joins.append((sum(r is not None for r in self.rows), len(joined)))
        return orig(self, joined)

    def spy_rebuild(self, joined):
        rebuilds.append(len(joined))
        return orig_rebuild(self, joined)

    RowBatch._place, RowBatch._rebuild = spy, spy_rebuild
    try:
        with EnvPool(EnvSpec.parse(COUNTER, {"games": 7}), 3, in_process=True) as pool:
            tasks = pool.tasks("train")
            fast = list(play(pool, tasks, teacher, max_steps=4))
    finally:
        RowBatch._place, RowBatch._rebuild = orig, orig_rebuild
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 7}), 1, in_process=True) as pool:
        slow = list(run_episodes(pool, tasks, NaivePolicy(_teacher(tiny_dir)), max_steps=4))
    assert len(fast) == len(slow) == 7
    a, b = _episodes(fast), _episodes(slow)
    assert a == b
    # the workload exercised what it should: rows that joined while others kept decoding, varied lengths,
    # several steps per episode, and outputs that are not all empty
    assert any(stay and new for stay, new in joins)
    assert max(stay + new for stay, new in joins) == 3
    # most rows joined in place (into the free row of one that left), without rebuilding the buffer
    assert sum(new for _, new in joins) > 2 * sum(rebuilds)
    lengths = {len(raw or "") for steps in a.values() for _, raw, _ in steps}
    assert len(lengths) >= 3
    assert sum(len(v) for v in a.values()) >= 14
    assert sum(r["meta"].get("generated_tokens", 0) for r in fast) == sum(
        r["meta"].get("generated_tokens", 0) for r in slow) > 0


def test_round_loop_and_continuous_loop_write_the_same_records(tiny_dir):
    """``continuous=false`` (rounds, the previous path) and the scheduler give the same episodes."""
    runs = {}
    for continuous in (True, False):
        t = _teacher(tiny_dir, continuous=continuous)
        assert (t.stream() is not None) == continuous
        with EnvPool(EnvSpec.parse(COUNTER, {"games": 5}), 2, in_process=True) as pool:
            runs[continuous] = _episodes(play(pool, pool.tasks("train"), t, max_steps=3))
    assert runs[True] == runs[False]


def test_policy_failure_fails_its_episodes_and_the_run_goes_on(tiny_dir):
    teacher = _teacher(tiny_dir)
    calls = {"n": 0}
    from sadcli.teachers.continuous import RowBatch

    orig = RowBatch.step

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory")
        return orig(self)

    RowBatch.step = flaky
    try:
        with EnvPool(EnvSpec.parse(COUNTER, {"games": 4}), 2, in_process=True) as pool:
            recs = list(play(pool, pool.tasks("train"), teacher, max_steps=3))
    finally:
        RowBatch.step = orig
    assert len(recs) == 4
    failed = [r for r in recs if r["meta"].get("error")]
    assert 1 <= len(failed) <= 2
    assert all("out of memory" in r["meta"]["error"] for r in failed)
    assert all(r["steps"] for r in recs if not r["meta"].get("error"))


def test_decision_stream_rows_of_an_overflowing_prompt_come_back_without_decoding(tiny_dir):
    from sadcli.teachers.continuous import DecisionRows, RowBatch

    teacher = _teacher(tiny_dir)
    rows = DecisionRows(RowBatch(teacher.gen, []), lambda st: Decision("", error="context_overflow"),
                        teacher.decide)
    rows.add("a", object())
    assert len(rows) == 1
    assert rows.step() == [("a", Decision("", error="context_overflow"))]
    assert len(rows) == 0
