"""Student models: a subset of the teacher's layers (DistilBERT-style), a fresh config, or a given model.

``--student-layers 6`` keeps 6 evenly spaced teacher layers, first and last included
(30 -> 0, 6, 12, 17, 23, 29); ``--student-layers 0,6,12,18,24,29`` keeps exactly those;
``--student-layers 6 --layer-pick influence`` keeps the 6 layers that change their input most on the
distillation data (ShortGPT's block influence, :func:`block_influence`).
Embeddings, final norm and LM head are copied from the teacher, so the student starts close to it.
``--student-config FILE`` builds a freshly initialized model from a Hugging Face ``config.json``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from typing import Any

from sadcli.errors import InputError, ModelSpecError

# Where common causal-LM architectures keep their decoder blocks.
_LAYER_LISTS = ("model.layers", "transformer.h", "model.decoder.layers", "gpt_neox.layers",
                "transformer.blocks", "model.language_model.layers")


def parse_layers(value: str | int | Sequence[int]) -> int | list[int]:
    """``"6"`` -> 6 (a count); ``"0,6,12"`` -> [0, 6, 12] (explicit indices)."""
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return [int(v) for v in value]
    text = value.strip()
    try:
        if "," in text:
            return [int(v) for v in text.split(",") if v.strip()]
        return int(text)
    except ValueError:
        raise InputError(f"--student-layers must be a count (6) or a comma list (0,6,12), got {value!r}") from None


def layer_indices(n_teacher: int, layers: int | Sequence[int]) -> list[int]:
    """Teacher layer indices the student keeps, in order.

    An int ``n`` picks ``round(i * (n_teacher - 1) / (n - 1))`` for i in 0..n-1 (first and last
    included); a list is validated (in range, strictly increasing) and returned.
    """
    if isinstance(layers, int):
        n = layers
        if not 1 <= n <= n_teacher:
            raise InputError(f"--student-layers {n}: the teacher has {n_teacher} layers",
                             hint=f"use a count between 1 and {n_teacher}")
        if n == 1:
            return [n_teacher - 1]
        return [round(i * (n_teacher - 1) / (n - 1)) for i in range(n)]
    idx = list(layers)
    if not idx:
        raise InputError("--student-layers: empty layer list")
    bad = [i for i in idx if not 0 <= i < n_teacher]
    if bad:
        raise InputError(f"--student-layers: layer {bad[0]} does not exist, the teacher has layers "
                         f"0..{n_teacher - 1}")
    if any(b <= a for a, b in zip(idx, idx[1:], strict=False)):
        raise InputError("--student-layers: indices must be strictly increasing", hint=",".join(map(str, idx)))
    return idx


LAYER_PICKS = ("even", "influence")


def block_influence(model: Any, sequences: Sequence[Sequence[int]]) -> list[float]:
    """Block influence of every decoder layer on ``sequences`` (token id lists), one float per layer.

    ShortGPT (Men et al., 2024, "ShortGPT: Layers in Large Language Models are More Redundant Than You
    Expect"): ``BI_i = 1 - mean_t cos(x_i[t], x_{i+1}[t])``, the cosine between the hidden state entering
    layer ``i`` and the one leaving it, averaged over every token of every sequence. A layer that barely
    turns its input (low BI) is the cheapest to drop. Input and output are captured with hooks on the
    layer modules (not ``output_hidden_states``, whose last entry is after the final norm).
    """
    import torch

    _, blocks = _layer_list(model)
    sums = [0.0] * len(blocks)
    entering: dict[int, Any] = {}
    tokens = 0

    def first_tensor(x):
        return x[0] if isinstance(x, (tuple, list)) else x

    def pre(i):
        def hook(_mod, args, kwargs):
            entering[i] = first_tensor(args) if args else kwargs["hidden_states"]
        return hook

    def post(i):
        def hook(_mod, _args, _kwargs, output):
            a, b = entering.pop(i), first_tensor(output)
            cos = torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)  # [1, T]
            sums[i] += float(cos.sum())
        return hook

    handles = []
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_pre_hook(pre(i), with_kwargs=True))
        handles.append(block.register_forward_hook(post(i), with_kwargs=True))
    dev = next(model.parameters()).device
    try:
        with torch.inference_mode():
            for seq in sequences:
                if not len(seq):
                    continue
                model(input_ids=torch.tensor([list(seq)], dtype=torch.long, device=dev), use_cache=False)
                tokens += len(seq)
    finally:
        for h in handles:
            h.remove()
    if not tokens:
        raise InputError("--layer-pick influence needs at least one non-empty example")
    return [1.0 - s / tokens for s in sums]


def influence_indices(scores: Sequence[float], n: int) -> list[int]:
    """The ``n`` layers of highest block influence, in model order (ties: the earlier layer)."""
    if not 1 <= n <= len(scores):
        raise InputError(f"--student-layers {n}: the teacher has {len(scores)} layers",
                         hint=f"use a count between 1 and {len(scores)}")
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:n])


def _layer_list(model: Any) -> tuple[str, Any]:
    for path in _LAYER_LISTS:
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return path, obj
    raise ModelSpecError(f"cannot find the decoder layers of {type(model).__name__}",
                         hint="use --student-config FILE or --student SPEC for this architecture")


def student_from_teacher(teacher: Any, layers: int | Sequence[int]) -> tuple[Any, list[int]]:
    """A new model with the teacher's config but only the chosen layers, weights copied.

    Returns (student, kept teacher layer indices). The student is a fresh module (no shared tensors
    with the teacher) in the teacher's dtype.
    """
    from transformers import AutoModelForCausalLM

    path, blocks = _layer_list(teacher)
    idx = layer_indices(len(blocks), layers)
    cfg = copy.deepcopy(teacher.config)
    cfg.num_hidden_layers = len(idx)
    for name in ("layer_types",):  # per-layer config lists (sliding/full attention...)
        per_layer = getattr(cfg, name, None)
        if isinstance(per_layer, list) and len(per_layer) == len(blocks):
            setattr(cfg, name, [per_layer[i] for i in idx])
    student = AutoModelForCausalLM.from_config(cfg, dtype=teacher.dtype)
    remap = {old: new for new, old in enumerate(idx)}
    pattern = re.compile(rf"^{re.escape(path)}\.(\d+)\.(.*)$")
    state = {}
    for key, tensor in teacher.state_dict().items():
        m = pattern.match(key)
        if m:
            old = int(m.group(1))
            if old not in remap:
                continue
            key = f"{path}.{remap[old]}.{m.group(2)}"
        state[key] = tensor.detach().clone()
    missing, unexpected = student.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:  # pragma: no cover - an architecture we do not map correctly
        raise ModelSpecError(f"could not copy teacher layers into the student: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}", hint="use --student-config FILE instead")
    if getattr(cfg, "tie_word_embeddings", False):
        student.tie_weights()
    return student, idx


def student_from_config(path: str, *, seed: int = 0) -> Any:
    """A freshly initialized model from a Hugging Face ``config.json`` (file or directory)."""
    import os

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    file = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        with open(file, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise InputError(f"no such student config: {file}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON in student config: {e.msg}", file=file, line=e.lineno) from None
    if "model_type" not in raw:
        raise InputError("student config has no \"model_type\"", file=file,
                         hint="write a Hugging Face config.json, e.g. {\"model_type\": \"llama\", ...}")
    model_type = raw.pop("model_type")
    try:
        cfg = AutoConfig.for_model(model_type, **raw)
    except (ValueError, KeyError) as e:
        raise InputError(f"cannot build a config for model_type {model_type!r}: {e}", file=file) from None
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg)


def vocab_size(model: Any) -> int:
    """Rows of the model's output layer (what the logits are indexed by)."""
    return int(model.get_output_embeddings().weight.shape[0])


def check_same_vocab(teacher_vocab: int, student_vocab: int, tokenizer_len: int | None = None,
                     *, teacher: str = "teacher", student: str = "student") -> None:
    """Teacher and student must index the same vocabulary (cross-tokenizer KD is out of scope)."""
    if teacher_vocab != student_vocab:
        raise ModelSpecError(
            f"vocabulary mismatch: {teacher} has {teacher_vocab} tokens, {student} has {student_vocab}",
            hint="teacher and student must share a tokenizer; pick a student of the same family or "
                 "use --student-layers / --student-config with the teacher's vocab_size")
    if tokenizer_len is not None and tokenizer_len > teacher_vocab:
        raise ModelSpecError(f"the tokenizer has {tokenizer_len} tokens but the models only {teacher_vocab}",
                             hint="use the teacher's own tokenizer")


def count_parameters(model: Any) -> int:
    """Unique parameters (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
