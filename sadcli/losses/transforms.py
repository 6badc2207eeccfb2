"""The model's own final-logit transform (scaling, soft-capping), applied after the LM head.

The losses compute logits themselves (``hidden @ W.T``, chunked, at supervised positions only), so
whatever a model's ``forward`` does to its logits after the LM head must be done here too — otherwise
the student would silently optimize a different objective. :func:`logit_transform_for` reads a Hugging
Face model/config and returns the transform, ``None`` when the model applies nothing, or raises
:class:`~sadcli.errors.ModelSpecError` when it cannot be sure. :func:`check_logit_transform` verifies a
transform numerically against the model's own forward (the trainer runs it once on a tiny input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sadcli.errors import ModelSpecError


@dataclass(frozen=True)
class LogitTransform:
    """``z -> softcap * tanh(z * scale / softcap)`` (``softcap`` None: ``z * scale``).

    Attributes:
        scale: multiplies the raw logits first (Cohere ``logit_scale``; Granite ``1 / logits_scaling``).
        softcap: Gemma-2/3 ``final_logit_softcapping`` (None = no capping).
    """

    scale: float = 1.0
    softcap: float | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """``[..., V]`` -> ``[..., V]`` (same dtype)."""
        z = logits
        if self.scale != 1.0:
            z = z * self.scale
        if self.softcap is not None:
            z = torch.tanh(z / self.softcap) * self.softcap
        return z

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.softcap is None


# model_type prefix -> how its forward changes logits after lm_head
_MULTIPLY = {"cohere": "logit_scale", "hyperclovax": "logits_scaling"}
_DIVIDE = {"granite": "logits_scaling"}
_SOFTCAP = "final_logit_softcapping"
# attributes that hint at some logit post-processing we do not know how to reproduce
_SUSPICIOUS = ("logit_scale", "logits_scaling", "output_multiplier", "output_logit_soft_cap",
               "logit_softcap", "logit_softcapping", "softcap", "lm_head_multiplier", "mup_width_multiplier",
               "dim_model_base", "width_multiplier")


def _text_config(obj: Any) -> Any:
    cfg = getattr(obj, "config", obj)
    getter = getattr(cfg, "get_text_config", None)
    if callable(getter):
        try:
            cfg = getter()
        except Exception:  # noqa: BLE001 - odd configs: keep the top-level one
            pass
    return cfg


def logit_transform_for(model_or_config: Any) -> LogitTransform | None:
    """The final-logit transform a Hugging Face causal LM applies after its LM head.

    Args:
        model_or_config: a ``PreTrainedModel`` or its ``PretrainedConfig``.
    Returns:
        a :class:`LogitTransform`, or None when the model's logits are exactly ``lm_head(hidden)``.
    Raises:
        ModelSpecError: the config has a logit-scaling/capping setting this library does not know how to
            reproduce exactly (rather than silently training on different logits).
    """
    cfg = _text_config(model_or_config)
    model_type = str(getattr(cfg, "model_type", "") or "")
    scale = 1.0
    softcap = getattr(cfg, _SOFTCAP, None)
    handled = {_SOFTCAP}
    for prefix, attr in _MULTIPLY.items():
        if model_type.startswith(prefix) and getattr(cfg, attr, None) is not None:
            scale = float(getattr(cfg, attr))
            handled.add(attr)
    for prefix, attr in _DIVIDE.items():
        if model_type.startswith(prefix) and getattr(cfg, attr, None) is not None:
            scale = 1.0 / float(getattr(cfg, attr))
            handled.add(attr)
    unknown = [a for a in _SUSPICIOUS if a not in handled and getattr(cfg, a, None) not in (None, 1, 1.0)]
    if unknown:
        raise ModelSpecError(
            f"model type {model_type or '?'} sets {', '.join(unknown)}, a final-logit transform the "
            "distillation losses cannot reproduce exactly",
            hint="pass an explicit LogitTransform (and verify it with check_logit_transform), or use a "
                 "model without custom logit scaling")
    if softcap is not None:
        softcap = float(softcap)
        if softcap <= 0:
            raise ModelSpecError(f"final_logit_softcapping must be positive, got {softcap}")
    t = LogitTransform(scale=scale, softcap=softcap)
    return None if t.is_identity else t


def check_logit_transform(model: Any, transform: LogitTransform | None, input_ids: torch.Tensor | None = None,
                          *, atol: float = 1e-3, rtol: float = 1e-3) -> None:
    """Verify that ``transform(lm_head(last_hidden_state))`` reproduces ``model(input_ids).logits``.

    Args:
        model: a Hugging Face causal LM with ``get_decoder()`` (or ``.model``) and
            ``get_output_embeddings()``.
        transform: the transform to check (None = identity).
        input_ids: ``[B, T]``; default a tiny fixed input.
    Raises:
        ModelSpecError: the logits differ (the losses would optimize a different objective).
    """
    if input_ids is None:
        input_ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    device = next(model.parameters()).device
    input_ids = input_ids.to(device)
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    head = model.get_output_embeddings()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            full = model(input_ids=input_ids).logits.float()
            hidden = decoder(input_ids=input_ids).last_hidden_state
            ours = head(hidden)
            if transform is not None:
                ours = transform(ours)
            ours = ours.float()
    finally:
        model.train(was_training)
    if ours.shape != full.shape or not torch.allclose(ours, full, atol=atol, rtol=rtol):
        diff = (ours - full).abs().max().item() if ours.shape == full.shape else float("nan")
        raise ModelSpecError(
            f"the model's logits are not transform(lm_head(hidden states)) (max difference {diff:.3g})",
            hint="its forward post-processes logits in a way the losses do not reproduce; pass the right "
                 "LogitTransform")
