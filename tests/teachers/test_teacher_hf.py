"""The local transformers teacher (embedded smollm2-135m): batched over episodes, stop sequences."""

from __future__ import annotations

import pathlib

import pytest

from sadcli.agent.loop import EnvPool, run_episodes
from sadcli.envs.registry import EnvSpec
from sadcli.errors import InputError
from sadcli.teachers import make_teacher
from sadcli.teachers.hf import cut_at_stop

COUNTER = str(pathlib.Path(__file__).resolve().parents[1] / "envs" / "counter_env.py") + ":make"


def test_cut_at_stop():
    assert cut_at_stop(" think\nAction: go\nObservation: x", ["\nObservation:", "\n\n"]) == " think\nAction: go"
    assert cut_at_stop("a\n\nb\nObservation:", ["\nObservation:", "\n\n"]) == "a"
    assert cut_at_stop("abc", []) == "abc"


def test_unknown_generation_option_is_a_clean_error():
    with pytest.raises(InputError, match="unknown teacher option"):
        make_teacher("hf:smollm2-135m", beams=4)


@pytest.fixture(scope="module")
def torch_threads():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)


@pytest.mark.slow
def test_batched_generation_for_all_active_episodes(torch_threads):
    from sadcli.models.spec import is_installed

    if not is_installed("smollm2-135m"):
        pytest.skip("the embedded model is not converted yet (python -m sadcli.models --ensure smollm2-135m)")
    teacher = make_teacher("hf:smollm2-135m", max_new_tokens=6, examples=False, device="cpu")
    sizes = []
    orig = teacher.gen._generate

    def spy(prompts, stops, holders=None):
        sizes.append(len(prompts))
        out = orig(prompts, stops, holders)
        assert all(isinstance(t, str) for t in out)
        assert not any(s in t for t in out for s in stops)  # cut at the stop sequences
        return out

    teacher.gen._generate = spy
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 3}), 3, in_process=True) as pool:
        recs = list(run_episodes(pool, pool.tasks("train"), teacher, max_steps=2))
    assert sizes[0] == 3  # one batch for the three active episodes
    assert len(recs) == 3 and all(r["teacher"] == "hf:smollm2-135m" for r in recs)
    for r in recs:
        assert 1 <= len(r["steps"]) <= 2
        for s in r["steps"]:
            assert isinstance(s["action"], str) and s["observation"]


@pytest.mark.slow
def test_rationalize_keeps_expert_actions(torch_threads):
    from sadcli.models.spec import is_installed

    if not is_installed("smollm2-135m"):
        pytest.skip("the embedded model is not converted yet (python -m sadcli.models --ensure smollm2-135m)")
    teacher = make_teacher("expert+rationalize:smollm2-135m", max_new_tokens=8, examples=False, device="cpu")
    with EnvPool(EnvSpec.parse(COUNTER, {"games": 2}), 2, in_process=True) as pool:
        recs = list(run_episodes(pool, pool.tasks("train"), teacher))
    assert all(r["success"] for r in recs)
    for r in recs:
        assert [s["action"] for s in r["steps"]] == [f"say[{k}]" for k in range(1, len(r["steps"]) + 1)]
        assert all(s["reason"] is None or "\n" not in s["reason"] for s in r["steps"])
        assert any(s["reason"] for s in r["steps"])


@pytest.mark.slow
def test_own_decoding_matches_generate_and_batching(torch_threads):
    """Greedy: our KV-cache loop gives model.generate's tokens, and a left-padded batch gives each prompt's
    own continuation (rows leave the batch when they stop)."""
    from sadcli.models.spec import is_installed

    if not is_installed("smollm2-135m"):
        pytest.skip("the embedded model is not converted yet (python -m sadcli.models --ensure smollm2-135m)")
    import torch

    from sadcli.teachers.hf import GenOptions, HFGenerator

    g = HFGenerator("smollm2-135m", GenOptions(max_new_tokens=8, device="cpu", chat="no"))
    prompts = ["The capital of France is", "Thought: I need to find a mug. A mug is often in the",
               "1, 2, 3, 4,"]
    enc = g.tok(prompts[1], return_tensors="pt")
    with torch.inference_mode():
        ref = g.model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=g.tok.pad_token_id)
    ref_text = g.tok.decode(ref[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert g.generate([prompts[1]], []) == [ref_text]
    alone = [g.generate([p], [","])[0] for p in prompts]
    assert g.generate(prompts, [","]) == alone
    assert all("," not in t for t in alone)


def test_common_prefix():
    from sadcli.teachers.kv_cache import common_prefix

    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([7, 8], [7, 8]) == 2
    assert common_prefix([1], [2, 1]) == 0


def _need_model():
    from sadcli.models.spec import is_installed

    if not is_installed("smollm2-135m"):
        pytest.skip("the embedded model is not converted yet (python -m sadcli.models --ensure smollm2-135m)")


@pytest.mark.slow
def test_cached_episodes_act_like_uncached_on_textworldexpress(torch_threads):
    """Several steps of real TextWorldExpress episodes, batched: keeping each episode's KV cache between
    steps (and sharing the prompts' common prefix) gives the same greedy outputs as re-encoding every
    prompt, while feeding far fewer tokens."""
    _need_model()
    pytest.importorskip("textworld_express")
    runs = {}
    fed = {}
    for cached in (True, False):
        teacher = make_teacher("hf:smollm2-135m", max_new_tokens=12, examples=False, device="cpu",
                               prefix_cache=cached)
        orig = teacher.gen._forward
        fed[cached] = []

        def count(ids, mask, pos, cache, _orig=orig, _fed=fed[cached], **kw):
            _fed.append(int(ids.shape[0] * ids.shape[1]))
            return _orig(ids, mask, pos, cache, **kw)

        teacher.gen._forward = count
        raw = {}
        orig_act = teacher.act

        def act(states, _orig=orig_act, _raw=raw):
            out = _orig(states)
            for st, d in zip(states, out, strict=True):
                _raw.setdefault(st.id, []).append(d.raw)
            return out

        teacher.act = act
        with EnvPool(EnvSpec.parse("twx", {"game": "twc"}), 3, in_process=True) as pool:
            tasks = pool.tasks("train")[:3]
            recs = list(run_episodes(pool, tasks, teacher, max_steps=4))
        runs[cached] = (raw, {r["id"]: r["steps"] for r in recs})
        if cached:
            assert teacher.gen._shared is not None and len(teacher.gen._shared.ids) >= 8  # shared prefix
    assert runs[True][0] == runs[False][0]  # the same raw model outputs, step by step
    assert runs[True][1] == runs[False][1]
    assert sum(len(v) for v in runs[True][0].values()) >= 6  # several steps were played
    assert sum(fed[True]) < 0.7 * sum(fed[False])  # the cache was really used


@pytest.mark.slow
def test_prefix_reuse_falls_back_where_tokens_differ(torch_threads):
    """The next prompt reuses the cache only up to the first differing *token*: a boundary where BPE
    merges differently, an edited history, or an unrelated prompt (full re-encode); the output is always
    the uncached one."""
    _need_model()
    from sadcli.teachers.hf import _CACHE_KEY, GenOptions, HFGenerator
    from sadcli.teachers.kv_cache import common_prefix

    g = HFGenerator("smollm2-135m", GenOptions(max_new_tokens=8, device="cpu", chat="no"))
    ref = HFGenerator("smollm2-135m", GenOptions(max_new_tokens=8, device="cpu", chat="no", prefix_cache=False))
    base = "Task: put the apple in the fridge.\nObservation: You see a counter and a fridge.\nThought:"
    h: dict = {}
    first = g.generate([base], ["\n\n"], [h])
    assert first == ref.generate([base], ["\n\n"])
    entry = h[_CACHE_KEY]
    assert entry.ids[:len(g.encode(base))] == g.encode(base)
    for k, v in entry.kv:  # one position per fed token, all layers
        assert k.shape[2] == v.shape[2] == len(entry.ids)
    grown = base + first[0] + "\nObservation: The fridge is closed.\nThought:"
    # the final ":" and an appended ":" merge into one "::" token: the prefix ends before that token
    merged = base + ": I look around\nThought:"
    edited = base.replace("apple", "pear") + " I open the fridge\nThought:"
    other = "1, 2, 3, 4,"
    for prompt in (grown, merged, edited, other):
        x = g.encode(prompt)
        own = h[_CACHE_KEY]
        n, src = g._reuse(x, h)
        expect = max(common_prefix(own.ids, x), common_prefix(g._shared.ids, x) if g._shared else 0)
        assert n == min(expect, len(x) - 1)
        if prompt is other:
            assert n == 0 and src is None
        if prompt is grown:
            assert n >= len(g.encode(base)) - 1
        if prompt is merged:  # reused up to the token before the merge, not beyond
            assert 0 < n < len(g.encode(base))
            assert x[:len(g.encode(base))] != g.encode(base)
        assert g.generate([prompt], ["\n\n"], [h]) == ref.generate([prompt], ["\n\n"]), prompt
        h = {_CACHE_KEY: own}  # the next case starts from the same cached step
    # a batch mixing a reused row, a fresh row and a row that holds no episode gives each row's own output
    prompts = [grown, other, merged]
    assert g.generate(prompts, ["\n\n"], [{_CACHE_KEY: own}, {}, None]) == ref.generate(prompts, ["\n\n"])
    g._full_attention = False  # models with sliding-window / linear layers take the plain path
    assert g.generate(prompts, ["\n\n"], [{_CACHE_KEY: own}, {}, None]) == ref.generate(prompts, ["\n\n"])
