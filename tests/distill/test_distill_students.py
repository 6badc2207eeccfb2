"""Students made from teacher layers, or from a config file; vocabulary checks."""

from __future__ import annotations

import json

import pytest
import torch

from sadcli.distill.students import (
    block_influence,
    check_same_vocab,
    influence_indices,
    count_parameters,
    layer_indices,
    parse_layers,
    student_from_config,
    student_from_teacher,
)
from sadcli.errors import InputError, ModelSpecError


def tiny_llama(layers=5, vocab=320, tie=True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=tie)
    return LlamaForCausalLM(cfg).eval()


def test_layer_indices():
    assert layer_indices(30, 6) == [0, 6, 12, 17, 23, 29]
    assert layer_indices(30, 30) == list(range(30))
    assert layer_indices(30, 2) == [0, 29]
    assert layer_indices(30, [0, 6, 12, 18, 24, 29]) == [0, 6, 12, 18, 24, 29]
    assert parse_layers("0,6, 12") == [0, 6, 12] and parse_layers("6") == 6
    for bad in ([0, 30], [3, 2], 31, 0):
        with pytest.raises(InputError):
            layer_indices(30, bad)
    with pytest.raises(InputError, match="comma list"):
        parse_layers("six")


@pytest.mark.parametrize("tie", [True, False])
def test_student_equals_teacher_with_all_layers_and_copies_chosen_ones(tie):
    teacher = tiny_llama(tie=tie)
    ids = torch.randint(0, 320, (2, 9))
    full, idx = student_from_teacher(teacher, 5)
    assert idx == [0, 1, 2, 3, 4]
    torch.testing.assert_close(full(ids).logits, teacher(ids).logits, rtol=0, atol=0)
    small, idx = student_from_teacher(teacher, [0, 2, 4])
    assert small.config.num_hidden_layers == 3 and teacher.config.num_hidden_layers == 5
    for new, old in enumerate(idx):
        a, b = small.model.layers[new].mlp.up_proj.weight, teacher.model.layers[old].mlp.up_proj.weight
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()   # copied, not shared
    assert (small.lm_head.weight.data_ptr() == small.model.embed_tokens.weight.data_ptr()) == tie
    assert count_parameters(small) < count_parameters(teacher)
    # the student's forward is the teacher's forward restricted to those layers
    h = teacher.model.embed_tokens(ids)
    pos = torch.arange(9)[None]
    cos_sin = teacher.model.rotary_emb(h, pos)
    for old in idx:
        h = teacher.model.layers[old](h, position_embeddings=cos_sin, attention_mask=None, position_ids=pos)
        h = h[0] if isinstance(h, tuple) else h
    # causal mask: compare only the first position, which attends to itself alone
    ref = teacher.lm_head(teacher.model.norm(h))[:, 0]
    torch.testing.assert_close(small(ids).logits[:, 0], ref, rtol=1e-4, atol=1e-5)


def test_student_from_config(tmp_path):
    cfg = {"model_type": "llama", "vocab_size": 320, "hidden_size": 16, "intermediate_size": 32,
           "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
    f = tmp_path / "student.json"
    f.write_text(json.dumps(cfg))
    a, b = student_from_config(str(f), seed=3), student_from_config(str(f), seed=3)
    assert a.config.num_hidden_layers == 1
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=False))
    (tmp_path / "nomodel.json").write_text("{}")
    with pytest.raises(InputError, match="model_type"):
        student_from_config(str(tmp_path / "nomodel.json"))
    with pytest.raises(InputError, match="no such"):
        student_from_config(str(tmp_path / "missing.json"))


def test_vocab_mismatch_names_both_sizes():
    with pytest.raises(ModelSpecError, match="49152.*320"):
        check_same_vocab(49152, 320)
    check_same_vocab(49152, 49152, 49152)


def test_block_influence_against_hidden_states():
    """BI_i = 1 - mean cos(input of layer i, its output), over every token of every sequence (ShortGPT).

    Naive reference: the model's own hidden states (``output_hidden_states``), with the final norm replaced
    by the identity so that the last entry is the last layer's output, not its normalized form.
    """
    model = tiny_llama(layers=4)
    seqs = [[5, 9, 33, 7, 1, 2], [8, 8, 250, 3]]
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.model.layers]
    got = block_influence(model, seqs)
    assert hooks == [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.model.layers]  # removed
    norm, model.model.norm = model.model.norm, torch.nn.Identity()
    try:
        cos_sum, n = torch.zeros(4), 0
        with torch.no_grad():
            for s in seqs:
                hs = model(torch.tensor([s]), output_hidden_states=True).hidden_states
                for i in range(4):
                    cos_sum[i] += torch.nn.functional.cosine_similarity(hs[i][0], hs[i + 1][0], dim=-1).sum()
                n += len(s)
    finally:
        model.model.norm = norm
    assert len(got) == 4
    torch.testing.assert_close(torch.tensor(got), 1 - cos_sum / n, rtol=0, atol=1e-5)
    with pytest.raises(InputError):
        block_influence(model, [[]])


def test_influence_indices_keep_the_highest_in_model_order():
    scores = [0.9, 0.01, 0.2, 0.05, 0.2, 0.7]
    assert influence_indices(scores, 3) == [0, 2, 5]          # 0.9, 0.7, then the earlier of the two 0.2s
    assert influence_indices(scores, 6) == list(range(6))
    assert influence_indices(scores, 1) == [0]
    for bad in (0, 7):
        with pytest.raises(InputError):
            influence_indices(scores, bad)
