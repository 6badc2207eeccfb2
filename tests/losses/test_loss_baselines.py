"""Baselines and ablations: relations between them, and the random-spans shuffle."""

from __future__ import annotations

import pytest
import torch

from sadcli.labels import ACT, OBS, PAD, PROMPT, REASON
from sadcli.losses import LossConfig, compute_loss, shuffle_span_labels

torch.set_num_threads(2)
V, H = 97, 16


def batch(seed=0, B=3, T=12):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = torch.randint(0, 4, (B, T), generator=g)
    return ids, labels, torch.randn(B, T, H, generator=g), torch.randn(V, H, generator=g), torch.randn(B, T, V,
                                                                                                      generator=g)


def loss(name, ids, labels, h, W, t, **kw):
    return compute_loss(LossConfig(name=name, **kw), input_ids=ids, token_labels=labels, student_hidden=h,
                        lm_head=W, teacher=t)


def test_shuffle_keeps_counts_and_other_labels_and_is_deterministic():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(-1, 4, (4, 64), generator=g)
    ids = torch.randint(0, V, (4, 64), generator=g)
    a = shuffle_span_labels(labels, ids, seed=3)
    assert torch.equal(a, shuffle_span_labels(labels, ids, seed=3))
    assert not torch.equal(a, shuffle_span_labels(labels, ids, seed=4))
    assert not torch.equal(a, labels)
    agent = (labels == REASON) | (labels == ACT)
    assert torch.equal(a[~agent], labels[~agent])
    assert ((a[agent] == REASON) | (a[agent] == ACT)).all()
    for b in range(4):
        assert int((a[b] == REASON).sum()) == int((labels[b] == REASON).sum())
        assert int((a[b] == ACT).sum()) == int((labels[b] == ACT).sum())


def test_shuffle_does_not_depend_on_batch_mates_or_padding():
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 4, (3, 40), generator=g)
    ids = torch.randint(0, V, (3, 40), generator=g)
    together = shuffle_span_labels(labels, ids, seed=0)
    alone = shuffle_span_labels(labels[1:2], ids[1:2], seed=0)
    assert torch.equal(together[1:2], alone)
    padded_l = torch.cat([labels[1:2], torch.full((1, 9), PAD)], 1)
    padded_i = torch.cat([ids[1:2], torch.zeros(1, 9, dtype=torch.long)], 1)
    assert torch.equal(shuffle_span_labels(padded_l, padded_i, seed=0)[:, :40], alone)


def test_random_spans_is_sad_on_shuffled_labels():
    ids, labels, h, W, t = batch(3)
    rs = loss("random-spans", ids, labels, h, W, t, seed=5)
    sad = loss("sad", ids, shuffle_span_labels(labels, ids, 5), h, W, t)
    torch.testing.assert_close(rs.total, sad.total)
    assert (rs.n_reason, rs.n_act) == (sad.n_reason, sad.n_act)


def test_one_term_losses_add_up_to_sad():
    ids, labels, h, W, t = batch(4)
    kw = dict(lambda_reason=0.3, lambda_act=1.9)
    sad = loss("sad", ids, labels, h, W, t, **kw)
    r = loss("only-reason", ids, labels, h, W, t, **kw)
    a = loss("only-act", ids, labels, h, W, t, **kw)
    torch.testing.assert_close(r.total + a.total, sad.total)
    torch.testing.assert_close(r.cot, sad.cot)
    torch.testing.assert_close(a.act, sad.act)
    assert float(r.act) == 0.0 and float(a.cot) == 0.0


def test_token_kd_is_the_token_weighted_mean():
    ids, labels, h, W, t = batch(5)
    sad = loss("sad", ids, labels, h, W, t)
    tok = loss("token-kd", ids, labels, h, W, t)
    expect = (sad.cot * sad.n_reason + sad.act * sad.n_act) / (sad.n_reason + sad.n_act)
    torch.testing.assert_close(tok.total.detach(), expect)


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_kd_interpolates_between_token_kd_and_seqkd(tau):
    ids, labels, h, W, t = batch(6)
    kd0 = loss("kd", ids, labels, h, W, t, alpha=0.0, temperature=tau)
    kd1 = loss("kd", ids, labels, h, W, t, alpha=1.0, temperature=tau)
    kdm = loss("kd", ids, labels, h, W, t, alpha=0.3, temperature=tau)
    torch.testing.assert_close(kd0.total, loss("token-kd", ids, labels, h, W, t, temperature=tau).total)
    torch.testing.assert_close(kd1.total, loss("seqkd", ids, labels, h, W, None).total)
    torch.testing.assert_close(kdm.total, 0.3 * kd1.total + 0.7 * kd0.total)
    torch.testing.assert_close(kdm.ce, kd1.total.detach())


def test_seqkd_is_cross_entropy_on_agent_tokens():
    ids, labels, h, W, _ = batch(7)
    out = loss("seqkd", ids, labels, h, W, None)
    logits = h @ W.T
    ces = []
    for b in range(labels.shape[0]):
        for i in range(1, labels.shape[1]):
            if int(labels[b, i]) in (REASON, ACT):
                ces.append(torch.nn.functional.cross_entropy(logits[b, i - 1][None], ids[b, i][None]))
    torch.testing.assert_close(out.total, torch.stack(ces).mean())


def test_flat_includes_prompt_and_observations():
    ids, labels, h, W, t = batch(8)
    flat = loss("flat", ids, labels, h, W, t)
    assert flat.n_other > 0
    agent_only = torch.where((labels == PROMPT) | (labels == OBS), torch.full_like(labels, PAD), labels)
    torch.testing.assert_close(loss("flat", ids, agent_only, h, W, t).total,
                               loss("token-kd", ids, labels, h, W, t).total)
    n = flat.n_reason + flat.n_act + flat.n_other
    expect = (flat.cot * flat.n_reason + flat.act * flat.n_act + flat.other * flat.n_other) / n
    torch.testing.assert_close(flat.total.detach(), expect)
