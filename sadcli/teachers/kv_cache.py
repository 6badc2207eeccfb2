"""KV-cache plumbing for :class:`sadcli.teachers.hf.HFGenerator`: preallocated batch buffers and
per-episode prefix caches.

A ReAct prompt only grows between steps (step n+1 = step n + the generated action + the new
observation), so each episode keeps the keys/values of the tokens it has already fed
(:class:`PrefixEntry`) and the next step feeds only what follows the longest common *token* prefix
of the cached ids and the new prompt's ids. The comparison is on token ids, not text: BPE may merge
across the old/new boundary, or the prompt may re-render the generated text differently; the cache
is then used up to the first differing token (exact, since the keys/values at position ``i`` depend
only on tokens ``0..i``), and a prompt that shares nothing is encoded in full.

torch is imported lazily (inside functions), as everywhere in ``sadcli``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token-id lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class PrefixEntry:
    """Keys/values of ``ids`` for every layer: ``kv[layer] = (k, v)``, each ``[1, kv_heads, len(ids), head_dim]``."""

    ids: list[int]
    kv: list[tuple[Any, Any]]
    owner: int = 0  # id() of the generator that computed it (caches are model-specific)

    def cropped(self, n: int) -> PrefixEntry:
        """The first ``n`` tokens (views, no copy)."""
        return PrefixEntry(self.ids[:n], [(k[:, :, :n], v[:, :, :n]) for k, v in self.kv], self.owner)


def full_attention_only(model_config) -> bool:
    """Whether every layer of the model is plain full attention (what :class:`BufferLayer` caches)."""
    try:
        from transformers.cache_utils import get_layer_types_and_kwargs

        cfg = model_config.get_text_config(decoder=True)
        types, _ = get_layer_types_and_kwargs(cfg)
        return bool(types) and all(t == "full_attention" for t in types)
    except Exception:  # noqa: BLE001 - an unknown config: take the safe, plain path
        return False


def _buffer_layer_class():
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        """A cache layer over a preallocated ``[batch, kv_heads, capacity, head_dim]`` buffer.

        ``update`` writes the new keys/values in place and returns views of the filled part, so a decode
        step does not copy the whole cache (``DynamicLayer`` concatenates, O(batch x length) per token).
        The buffer doubles when full.
        """

        def __init__(self, kbuf, vbuf, length: int):
            super().__init__()
            self.kbuf, self.vbuf, self.n = kbuf, vbuf, length
            self.device = kbuf.device
            self.is_initialized = True
            self._views()

        def _views(self):
            self.keys = self.kbuf[:, :, : self.n]
            self.values = self.vbuf[:, :, : self.n]

        def lazy_initialization(self, key_states, value_states) -> None:  # already initialized
            return None

        def update(self, key_states, value_states, *args, **kwargs):
            import torch

            m = key_states.shape[-2]
            if self.n + m > self.kbuf.shape[2]:
                cap = max(2 * self.kbuf.shape[2], self.n + m)
                grow = (*self.kbuf.shape[:2], cap, self.kbuf.shape[3])
                k = torch.zeros(grow, dtype=self.kbuf.dtype, device=self.device)
                v = torch.zeros((*grow[:3], self.vbuf.shape[3]), dtype=self.vbuf.dtype, device=self.device)
                k[:, :, : self.n] = self.kbuf[:, :, : self.n]
                v[:, :, : self.n] = self.vbuf[:, :, : self.n]
                self.kbuf, self.vbuf = k, v
            self.kbuf[:, :, self.n: self.n + m] = key_states
            self.vbuf[:, :, self.n: self.n + m] = value_states
            self.n += m
            self._views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.n

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove < 0:
                self.n = max(0, self.n + tokens_to_remove)
                self._views()

        def batch_select_indices(self, indices) -> None:
            self.kbuf, self.vbuf = self.kbuf[indices], self.vbuf[indices]
            self._views()

        def batch_repeat_interleave(self, repeats: int) -> None:
            self.kbuf = self.kbuf.repeat_interleave(repeats, dim=0)
            self.vbuf = self.vbuf.repeat_interleave(repeats, dim=0)
            self._views()

        def reorder_cache(self, beam_idx) -> None:
            self.batch_select_indices(beam_idx)

        def row(self, j: int, positions) -> tuple[Any, Any]:
            """Row ``j``'s keys/values at ``positions`` (a 1-D index tensor), as new ``[1, H, len, D]`` tensors."""
            return (self.kbuf[j:j + 1, :, positions].contiguous(), self.vbuf[j:j + 1, :, positions].contiguous())

    return BufferLayer


_LAYER_CLASS = None


def batch_cache(model_config, batch: int, capacity: int, dtype, device, rows: list[tuple[int, PrefixEntry | None]],
                width: int):
    """A ``Cache`` of ``batch`` rows, each left-padded to ``width`` cached positions.

    ``rows[j] = (n, entry)``: row ``j`` starts with the first ``n`` tokens of ``entry`` (right-aligned,
    i.e. at positions ``width - n .. width - 1``), or nothing when ``n == 0``. The caller masks the
    padding with its attention mask.
    """
    import torch
    from transformers.cache_utils import Cache

    global _LAYER_CLASS
    if _LAYER_CLASS is None:
        _LAYER_CLASS = _buffer_layer_class()
    cfg = model_config.get_text_config(decoder=True) if hasattr(model_config, "get_text_config") else model_config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    layers = []
    for li in range(cfg.num_hidden_layers):
        k = torch.zeros((batch, heads, capacity, head_dim), dtype=dtype, device=device)
        v = torch.zeros_like(k)
        for j, (n, entry) in enumerate(rows):
            if n and entry is not None:
                ek, ev = entry.kv[li]
                k[j, :, width - n: width] = ek[0, :, :n]
                v[j, :, width - n: width] = ev[0, :, :n]
        layers.append(_LAYER_CLASS(k, v, width))
    return Cache(layers=layers)


def row_cache(cache, j: int):
    """A one-row ``Cache`` that writes into row ``j`` of a :func:`batch_cache` (views, no copy)."""
    from transformers.cache_utils import Cache

    return Cache(layers=[_LAYER_CLASS(layer.kbuf[j:j + 1], layer.vbuf[j:j + 1], layer.n) for layer in cache.layers])


def set_length(cache, n: int) -> None:
    """Set the filled length of every layer of a :func:`batch_cache` (after filling rows through :func:`row_cache`)."""
    for layer in cache.layers:
        layer.n = n
        layer._views()


def is_batch_cache(cache) -> bool:
    return _LAYER_CLASS is not None and bool(getattr(cache, "layers", None)) and isinstance(cache.layers[0], _LAYER_CLASS)


def extract(cache, j: int, positions, ids: list[int], owner: int) -> PrefixEntry:
    """Row ``j`` of a :func:`batch_cache` (its real, unpadded ``positions``) as a :class:`PrefixEntry`."""
    return PrefixEntry(list(ids), [layer.row(j, positions) for layer in cache.layers], owner)
