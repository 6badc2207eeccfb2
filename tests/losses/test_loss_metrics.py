"""Teacher entropy (curriculum), per-span divergence (eval), action vocabulary."""

from __future__ import annotations

import pytest
import torch

from sadcli.labels import ACT, OBS, PROMPT, REASON
from sadcli.losses import (
    LogitTransform,
    LossConfig,
    build_action_vocab,
    compute_loss,
    span_divergence,
    token_entropy,
)

torch.set_num_threads(2)
V, H = 97, 16


def test_token_entropy_matches_naive_for_logits_and_hidden():
    g = torch.Generator().manual_seed(0)
    h, W = torch.randn(2, 5, H, generator=g), torch.randn(V, H, generator=g)
    tf = LogitTransform(softcap=4.0)
    logits = tf(h @ W.T)
    ref = torch.empty(2, 5)
    for b in range(2):
        for t in range(5):
            p = torch.softmax(logits[b, t].double() / 1.5, -1)
            ref[b, t] = float(-(p * p.log()).sum())
    torch.testing.assert_close(token_entropy(logits=logits, temperature=1.5, chunk_size=3), ref, rtol=1e-5, atol=1e-6)
    got = token_entropy(hidden=h, lm_head=W, transform=tf, temperature=1.5, chunk_size=4)
    assert got.shape == (2, 5)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    flat = token_entropy(hidden=h.reshape(10, H), lm_head=W, transform=tf, temperature=1.5)
    torch.testing.assert_close(flat, ref.reshape(10), rtol=1e-5, atol=1e-6)


def test_span_divergence_sums_per_span_and_sequence():
    g = torch.Generator().manual_seed(1)
    B, T = 3, 11
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = torch.randint(0, 4, (B, T), generator=g)
    h, W, t = torch.randn(B, T, H, generator=g), torch.randn(V, H, generator=g), torch.randn(B, T, V, generator=g)
    sd = span_divergence(input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W, teacher=t)
    logits = h @ W.T
    sums = torch.zeros(B, 2)
    counts = torch.zeros(B, 2)
    for b in range(B):
        for i in range(1, T):
            k = int(labels[b, i])
            if k in (REASON, ACT):
                lt, ls = torch.log_softmax(t[b, i - 1], -1), torch.log_softmax(logits[b, i - 1], -1)
                sums[b, k - 1] += (lt.exp() * (lt - ls)).sum()
                counts[b, k - 1] += 1
    torch.testing.assert_close(sd.seq_reason_sum, sums[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sd.seq_act_sum, sums[:, 1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sd.seq_n_reason, counts[:, 0])
    assert sd.n_act == int(counts[:, 1].sum())
    out = compute_loss(LossConfig(), input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W, teacher=t)
    assert sd.reason == pytest.approx(float(out.cot), rel=1e-5)
    assert sd.act == pytest.approx(float(out.act), rel=1e-5)
    none = span_divergence(input_ids=ids, token_labels=torch.full_like(labels, OBS), student_hidden=h, lm_head=W,
                           teacher=t)
    assert none.reason == 0.0 and none.act == 0.0


def test_build_action_vocab():
    ids = torch.tensor([[5, 6, 7, 8, 9], [1, 2, 3, 4, 5]])
    labels = torch.tensor([[PROMPT, ACT, ACT, OBS, ACT], [REASON, ACT, -1, ACT, ACT]])
    va = build_action_vocab([(ids, labels), ([10, 11], [ACT, OBS])], extra_ids=[0])
    assert va.tolist() == [0, 2, 4, 5, 6, 7, 9, 10]
