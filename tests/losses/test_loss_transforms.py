"""Model logit transforms: detection from HF configs and numeric verification against the model's forward."""

from __future__ import annotations

import pytest
import torch

from sadcli.errors import ModelSpecError
from sadcli.losses import LogitTransform, check_logit_transform, logit_transform_for

torch.set_num_threads(2)
TINY = dict(vocab_size=101, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8)


def test_transform_math():
    z = torch.linspace(-100, 100, 11)
    torch.testing.assert_close(LogitTransform(softcap=30.0)(z), 30.0 * torch.tanh(z / 30.0))
    torch.testing.assert_close(LogitTransform(scale=0.5)(z), z * 0.5)
    torch.testing.assert_close(LogitTransform(scale=0.5, softcap=10.0)(z), 10.0 * torch.tanh(z * 0.05))
    assert LogitTransform().is_identity


def test_detection_from_configs():
    from transformers import CohereConfig, Gemma2Config, GraniteConfig, LlamaConfig

    assert logit_transform_for(LlamaConfig(**TINY)) is None
    assert logit_transform_for(Gemma2Config(**TINY, final_logit_softcapping=30.0)) == LogitTransform(softcap=30.0)
    assert logit_transform_for(Gemma2Config(**TINY, final_logit_softcapping=None)) is None
    assert logit_transform_for(CohereConfig(**TINY, logit_scale=0.0625)) == LogitTransform(scale=0.0625)
    assert logit_transform_for(GraniteConfig(**TINY, logits_scaling=8.0)) == LogitTransform(scale=0.125)
    odd = LlamaConfig(**TINY)
    odd.output_multiplier = 2.0                       # something we cannot reproduce: refuse
    with pytest.raises(ModelSpecError, match="output_multiplier"):
        logit_transform_for(odd)


def _tiny(cls_name, **extra):
    import transformers

    cfg = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))(**TINY, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(cfg)
    with torch.no_grad():                            # make logits large enough for capping/scaling to matter
        model.get_output_embeddings().weight.mul_(50.0)
    return model


@pytest.mark.parametrize("cls_name,extra", [
    ("LlamaForCausalLM", {}),
    ("Gemma2ForCausalLM", {"final_logit_softcapping": 5.0}),
    ("CohereForCausalLM", {"logit_scale": 0.25}),
    ("GraniteForCausalLM", {"logits_scaling": 4.0}),
])
def test_detected_transform_reproduces_the_model_forward(cls_name, extra):
    model = _tiny(cls_name, **extra)
    t = logit_transform_for(model)
    check_logit_transform(model, t)                   # passes with the detected transform
    wrong = LogitTransform(scale=3.0) if t is None else None
    with pytest.raises(ModelSpecError, match="not transform"):
        check_logit_transform(model, wrong)
