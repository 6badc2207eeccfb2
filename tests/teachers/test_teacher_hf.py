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

    def spy(prompts, stops):
        sizes.append(len(prompts))
        out = orig(prompts, stops)
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
