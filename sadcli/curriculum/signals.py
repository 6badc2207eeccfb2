"""The per-trajectory signals of the complexity score: span lengths and teacher entropy.

Lengths: tokens labeled reasoning / action by the mask builder with the distillation tokenizer
(``render`` text or chat; with chat the assistant end-of-turn token counts as action, as in training).

Entropy: the teacher's mean token entropy ``H = -Σ_v p_T(v) log p_T(v)`` (nats, temperature 1) over the
supervised positions — the positions whose *next* token is reasoning or action, exactly the rows the
loss and the teacher cache use. Long trajectories are scored in step windows (``--max-length``,
:func:`sadcli.masks.build.step_windows`): every supervised token is scored once, with the task prompt
and as many earlier steps as fit in view — the same examples ``sad distill --window steps`` trains on.

Two sources:

- :func:`teacher_entropy`: a batched forward of the teacher (decoder once per batch, the LM head only
  at supervised positions, in chunks; the model's final-logit transform applied);
- :func:`cache_entropy`: a ``sad distill --cache-teacher`` directory, no model: with tail samples (the
  default) each row stores the dense ``Σ p log p`` computed by the teacher over the whole vocabulary,
  as float16 — the cached entropy equals the dense one up to fp16 rounding (relative error <= 2^-11
  per row). A pure top-k cache (``--tail-samples 0``) stores no entropy: the estimate is then the
  entropy of the bucketed distribution (top-k ids + one tail bucket), a lower bound:
  ``H_bucket = H_dense - p_tail · H(tail)``, and ``H(tail) <= log(V - k)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sadcli.errors import InputError
from sadcli.labels import ACT, REASON


@dataclass
class Sums:
    """Per-record sums of per-position entropies and their counts (``mean = total / count``)."""

    total: np.ndarray   # float64 [R]
    count: np.ndarray   # int64 [R]
    source: str         # "teacher" | "cache (dense, fp16)" | "cache (bucketed top-k, lower bound)"

    def mean(self) -> np.ndarray:
        """float64 ``[R]``; 0 for a record without supervised positions."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.total / np.maximum(self.count, 1), 0.0)


def lengths(examples: Sequence[Any], n_records: int) -> tuple[np.ndarray, np.ndarray]:
    """Reasoning and action tokens per record (int64 ``[R]`` each), summed over its examples.

    Step windows supervise every reasoning/action token exactly once and label their context as
    prompt, so summing over a record's windows counts each token once.
    """
    lr = np.zeros(n_records, dtype=np.int64)
    la = np.zeros(n_records, dtype=np.int64)
    for ex in examples:
        lab = np.asarray(ex.token_labels, dtype=np.int64)
        lr[ex.index] += int((lab == REASON).sum())
        la[ex.index] += int((lab == ACT).sum())
    return lr, la


def supervised_rows(examples: Sequence[Any]) -> np.ndarray:
    """Supervised positions per example (next token reasoning or action): int64 ``[E]``."""
    return np.asarray([int(np.isin(np.asarray(ex.token_labels[1:], dtype=np.int64), (REASON, ACT)).sum())
                       for ex in examples], dtype=np.int64)


def batches(examples: Sequence[Any], batch_size: int, pad_id: int) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """Length-sorted batches ``(example indices, pad_batch(...))`` for the teacher forward (less padding)."""
    from sadcli.distill.data import pad_batch

    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, pad_batch([examples[i] for i in idx], pad_id)


def teacher_entropy(examples: Sequence[Any], teacher: Any, n_records: int, *, batch_size: int = 8,
                    pad_id: int = 0, device: Any = None, chunk_size: int = 0, on_batch: Any = None) -> Sums:
    """Mean teacher entropy per record from a live forward pass (see the module docstring).

    Args:
        examples: masked examples (``index`` = the record's input position).
        teacher: a Hugging Face causal LM.
        on_batch: optional ``f(examples_done, examples_total)`` progress callback.
    """
    import torch

    from sadcli.losses.sad_loss import auto_chunk_size
    from sadcli.losses.teachers import as_head
    from sadcli.losses.transforms import logit_transform_for

    dev = torch.device(device) if device else next(teacher.parameters()).device
    teacher.eval().requires_grad_(False).to(dev)
    transform = logit_transform_for(teacher)
    head = as_head(teacher.get_output_embeddings())
    decoder = teacher.get_decoder()
    V = int(teacher.get_output_embeddings().weight.shape[0])
    chunk = int(chunk_size) or auto_chunk_size(V, dev)
    total = np.zeros(n_records, dtype=np.float64)
    count = np.zeros(n_records, dtype=np.int64)
    done = 0
    with torch.no_grad():
        for idx, b in batches(examples, batch_size, pad_id):
            out = decoder(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev), use_cache=False)
            hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]   # [B, T, H]
            nxt = b["token_labels"][:, 1:].to(dev)
            mask = (nxt == REASON) | (nxt == ACT)                                              # [B, T-1]
            h = hidden[:, :-1][mask]                                                           # [N, H]
            row_ex = mask.nonzero()[:, 0].cpu()                                                # [N]
            ent = torch.empty(h.shape[0], dtype=torch.float64)
            for s in range(0, h.shape[0], chunk):
                z = head(h[s:s + chunk])
                if transform is not None:
                    z = transform(z)
                ent[s:s + chunk] = entropy_from_logits(z).double().cpu()
            rec = torch.as_tensor([examples[i].index for i in idx], dtype=torch.long)[row_ex].numpy()
            np.add.at(total, rec, ent.numpy())
            np.add.at(count, rec, 1)
            done += len(idx)
            if on_batch is not None:
                on_batch(done, len(examples))
    return Sums(total, count, "teacher")


def entropy_from_logits(z: Any) -> Any:
    """``H = -Σ_v p log p`` of ``softmax(z)`` per row, in fp32: ``[n, V]`` -> ``[n]``.

    Computed with ``log p = z - logsumexp(z)`` formed in place and ``p log p`` in place (one extra
    ``[n, V]`` buffer, a few passes over the logits). Rows with ``-inf`` logits (a masked vocabulary)
    are recomputed with ``0 · log 0 = 0``.
    """
    import torch

    lp = z.float() if z.dtype != torch.float32 else z.clone()
    lp -= torch.logsumexp(lp, dim=-1, keepdim=True)                       # log p, in place
    plogp = lp.exp().mul_(lp)                                            # p log p, in place
    h = -plogp.sum(-1)                                                    # cascade sum: accurate in fp32
    bad = ~torch.isfinite(h)
    if bool(bad.any()):
        lq = lp[bad]
        q = lq.exp()
        h[bad] = -torch.where(q > 0, q * lq, torch.zeros_like(q)).sum(-1)
    return h


def cache_entropy(path: str, examples: Sequence[Any], n_records: int, *, fingerprint: str) -> Sums:
    """Mean teacher entropy per record read from a ``sad distill --cache-teacher`` directory.

    ``examples`` must be the cache's examples (same data and settings: checked by ``fingerprint``).
    """
    from sadcli.distill.teacher_cache import TeacherCache

    cache = TeacherCache.open(path)
    m = cache.manifest
    cache.check(fingerprint=fingerprint)
    if abs(float(m.get("temperature", 1.0)) - 1.0) > 1e-9:
        raise InputError(f"the teacher cache {path} holds log-probs at temperature {m.get('temperature')}; the "
                         "complexity score uses the entropy at temperature 1",
                         hint="build the cache with --temperature 1, or score with --teacher SPEC")
    per_ex = cache.rows_per_example()
    want = supervised_rows(examples)
    if m.get("positions") != "agent" or len(per_ex) != len(want) or not np.array_equal(per_ex, want):
        raise InputError(f"the teacher cache {path} holds other positions than the reasoning/action tokens "
                         f"(positions {m.get('positions')!r})",
                         hint="build it with a span loss (--loss sad) and the default --supervise")
    rows = [np.asarray(sh) for sh in cache.shards]
    names = rows[0].dtype.names if rows else ()
    if rows and "neg_entropy" in names:
        ent = -np.concatenate([r["neg_entropy"].astype(np.float64) for r in rows])
        source = "cache (dense, fp16)"
    else:
        ent = np.concatenate([bucketed_entropy(r) for r in rows]) if rows else np.zeros(0)
        source = "cache (bucketed top-k, lower bound)"
    total = np.zeros(n_records, dtype=np.float64)
    count = np.zeros(n_records, dtype=np.int64)
    owner = np.repeat(np.asarray([ex.index for ex in examples], dtype=np.int64), per_ex)   # [rows]
    np.add.at(total, owner, ent)
    np.add.at(count, owner, 1)
    return Sums(total, count, source)


def bucketed_entropy(arr: np.ndarray) -> np.ndarray:
    """Entropy of the bucketed distribution (top ids + one tail bucket) of encoded cache rows: float64 ``[N]``.

    Decoded as :func:`sadcli.distill.teacher_cache.decode` does (renormalized in log space).
    """
    from scipy.special import logsumexp

    top = arr["top"].astype(np.float64)
    step = arr["step"].astype(np.float64)
    lp = top[:, None] - arr["q"].astype(np.float64) * step[:, None]
    lt = arr["log_tail"].astype(np.float64)
    lt = np.where(lt <= -60000.0, -np.inf, lt)
    allp = np.concatenate([lp, lt[:, None]], axis=1)
    allp = allp - logsumexp(allp, axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        plogp = np.where(np.isfinite(allp), np.exp(allp) * allp, 0.0)
    return -plogp.sum(axis=1)
