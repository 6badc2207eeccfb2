"""Sparse (top-k + tail) teachers: exact bucketed divergences, k = V equals dense, cache helper."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loss_reference import naive_bucketed_forward_kl

from sadcli.errors import SadError
from sadcli.labels import ACT, PAD, PROMPT, REASON
from sadcli.losses import (
    LossConfig,
    SparseTeacher,
    bucket_logprobs,
    compute_loss,
    divergence,
    loss_positions,
    teacher_topk,
)

torch.set_num_threads(2)
V, H = 97, 16


def make_batch(B=3, T=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = torch.randint(0, 4, (B, T), generator=g)
    labels[:, 0] = PROMPT
    labels[-1, -2:] = PAD
    h = torch.randn(B, T, H, generator=g) * 2.0
    W = torch.randn(V, H, generator=g) * 0.5
    t = torch.randn(B, T, V, generator=g) * 3.0
    return ids, labels, h, W, t


def run(cfg, ids, labels, h, W, teacher):
    hh, WW = h.clone().requires_grad_(True), W.clone().requires_grad_(True)
    out = compute_loss(cfg, input_ids=ids, token_labels=labels, student_hidden=hh, lm_head=WW, teacher=teacher)
    out.total.backward()
    return out, hh.grad, WW.grad


def close(a, b, rtol=1e-5):
    torch.testing.assert_close(a, b, rtol=rtol, atol=max(1e-6, rtol * float(b.abs().max())))


@pytest.mark.parametrize("div", ["forward", "reverse", "jsd"])
@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_top_k_with_k_equal_v_equals_dense(div, tau):
    ids, labels, h, W, t = make_batch(seed=1)
    cfg = LossConfig(divergence=div, temperature=tau, chunk_size=4)
    pos = loss_positions(cfg, labels, ids)
    sparse = teacher_topk(V, logits=pos.gather(t), temperature=tau, chunk_size=5)
    assert torch.isinf(sparse.tail_logprob).all()          # nothing left in the tail
    dense = run(cfg, ids, labels, h, W, t)
    bucketed = run(cfg, ids, labels, h, W, sparse)
    torch.testing.assert_close(bucketed[0].total, dense[0].total, rtol=1e-5, atol=1e-6)
    for a, b in zip(bucketed[1:], dense[1:], strict=True):
        assert torch.isfinite(a).all()
        close(a, b)


@pytest.mark.parametrize("div", ["forward", "reverse", "jsd"])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_top_k_matches_naive_bucketed_reference(div, k):
    ids, labels, h, W, t = make_batch(seed=2 + k)
    cfg = LossConfig(divergence=div, chunk_size=3, lambda_reason=0.7)
    pos = loss_positions(cfg, labels, ids)
    sparse = teacher_topk(k, logits=pos.gather(t))
    out, gh, gw = run(cfg, ids, labels, h, W, sparse)
    # naive: fp64, one position at a time, tail as 1 - sum(top-k)
    hd, Wd = h.double().requires_grad_(True), W.double().requires_grad_(True)
    logits = hd @ Wd.T
    sums, n = {REASON: 0.0, ACT: 0.0}, {REASON: 0, ACT: 0}
    T = labels.shape[1]
    for i in range(len(pos)):
        b, p = divmod(int(pos.index[i]), T)
        kind = int(pos.kinds[i])
        d = naive_bucketed_forward_kl(logits[b, p], sparse.ids[i], sparse.logprobs[i].double(),
                                      sparse.tail_logprob[i].double(), kind=div)
        sums[kind] = sums[kind] + d
        n[kind] += 1
    ref = 0.7 * sums[REASON] / n[REASON] + sums[ACT] / n[ACT]
    ref.backward()
    torch.testing.assert_close(out.total.detach(), ref.detach().float(), rtol=1e-5, atol=1e-6)
    close(gh, hd.grad.float())
    close(gw, Wd.grad.float())


def test_bucketed_divergence_never_exceeds_dense_and_tail_mass_sums_to_one():
    g = torch.Generator().manual_seed(3)
    zt, zs = torch.randn(50, V, generator=g) * 3, torch.randn(50, V, generator=g) * 3
    sp = teacher_topk(10, logits=zt)
    total = sp.logprobs.exp().sum(-1) + sp.tail_logprob.exp()
    torch.testing.assert_close(total, torch.ones(50), rtol=1e-5, atol=1e-6)
    top = torch.log_softmax(zt, -1).topk(10, dim=-1)
    torch.testing.assert_close(sp.logprobs, top.values)
    ls = torch.log_softmax(zs, -1)
    lt = torch.log_softmax(zt, -1)
    bs = bucket_logprobs(ls, sp.ids)
    torch.testing.assert_close(bs.exp().sum(-1), torch.ones(50), rtol=1e-5, atol=1e-6)
    for div in ("forward", "reverse", "jsd"):
        dense = divergence(div, lt, ls)
        bucket = divergence(div, torch.cat([sp.logprobs, sp.tail_logprob[:, None]], -1), bs)
        assert (bucket <= dense + 1e-5).all()          # data-processing inequality


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, V), scale=st.floats(0.1, 20.0))
def test_property_bucketing_is_a_coarsening(seed, k, scale):
    g = torch.Generator().manual_seed(seed)
    zt, zs = torch.randn(4, V, generator=g) * scale, torch.randn(4, V, generator=g) * scale
    sp = teacher_topk(k, logits=zt)
    lt, ls = torch.log_softmax(zt, -1), torch.log_softmax(zs, -1)
    bt = torch.cat([sp.logprobs, sp.tail_logprob[:, None]], -1)
    for div in ("forward", "reverse", "jsd"):
        b = divergence(div, bt, bucket_logprobs(ls, sp.ids))
        d = divergence(div, lt, ls)
        assert torch.isfinite(b).all()
        assert (b <= d * (1 + 1e-4) + 1e-4).all()
        assert (b >= -1e-5).all()


def test_teacher_topk_from_hidden_equals_from_logits_and_is_chunk_independent():
    g = torch.Generator().manual_seed(4)
    th, tW = torch.randn(23, H, generator=g), torch.randn(V, H, generator=g)
    a = teacher_topk(7, logits=th @ tW.T, chunk_size=100)
    b = teacher_topk(7, hidden=th, lm_head=tW, chunk_size=4)
    assert torch.equal(a.ids, b.ids)
    torch.testing.assert_close(a.logprobs, b.logprobs)
    torch.testing.assert_close(a.tail_logprob, b.tail_logprob)


def test_restricted_sparse_rows_equal_dense_restricted():
    ids, labels, h, W, t = make_batch(seed=5)
    va = torch.arange(0, V, 3)
    cfg = LossConfig(action_vocab="restricted", action_vocab_ids=va, divergence="jsd", chunk_size=4)
    pos = loss_positions(cfg, labels, ids)
    is_act = pos.kinds == ACT
    sp = teacher_topk(va.numel(), logits=pos.gather(t), vocab_ids=va, restricted_rows=is_act)
    assert torch.isin(sp.ids[is_act], va).all()
    torch.testing.assert_close(sp.logprobs[is_act].exp().sum(-1), torch.ones(int(is_act.sum())), rtol=1e-5, atol=1e-6)
    dense = run(cfg, ids, labels, h, W, t)
    sparse = run(cfg, ids, labels, h, W, sp)
    # action rows hold all of V_a (k = |V_a|): exact; reasoning rows are a top-33 of the full vocabulary
    torch.testing.assert_close(sparse[0].act, dense[0].act, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sparse[0].per_token_div[is_act], dense[0].per_token_div[is_act], rtol=1e-5, atol=1e-6)
    assert float(sparse[0].cot) < float(dense[0].cot)
    only_act = LossConfig(name="only-act", action_vocab="restricted", action_vocab_ids=va, divergence="jsd")
    pos_a = loss_positions(only_act, labels, ids)                    # only-act supervises the action rows only
    sp_a = teacher_topk(va.numel(), logits=pos_a.gather(t), vocab_ids=va, restricted_rows=pos_a.kinds == ACT)
    d_act, s_act = run(only_act, ids, labels, h, W, t), run(only_act, ids, labels, h, W, sp_a)
    torch.testing.assert_close(s_act[0].total, d_act[0].total, rtol=1e-5, atol=1e-6)
    for a, b in zip(s_act[1:], d_act[1:], strict=True):
        close(a, b)
    # a smaller k still works and differs
    sp5 = teacher_topk(5, logits=pos.gather(t), vocab_ids=va, restricted_rows=is_act)
    out5 = run(cfg, ids, labels, h, W, sp5)[0]
    assert torch.isfinite(out5.total) and float(out5.act) < float(dense[0].act)


def test_sparse_teacher_mismatches_are_clear_errors():
    ids, labels, h, W, t = make_batch(seed=6)
    cfg = LossConfig()
    pos = loss_positions(cfg, labels, ids)
    sp = teacher_topk(5, logits=pos.gather(t))
    kw = dict(input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W)
    with pytest.raises(SadError, match="temperature"):
        compute_loss(LossConfig(temperature=2.0), teacher=sp, **kw)
    with pytest.raises(SadError, match="rows"):
        compute_loss(cfg, teacher=SparseTeacher(sp.ids[1:], sp.logprobs[1:], sp.tail_logprob[1:]), **kw)
    dup = sp.ids.clone()
    dup[0, 1] = dup[0, 0]
    with pytest.raises(SadError, match="distinct"):
        compute_loss(cfg, teacher=SparseTeacher(dup, sp.logprobs, sp.tail_logprob), **kw)
    bad = sp.ids.clone()
    bad[0, 0] = V + 3
    with pytest.raises(SadError, match="outside the vocabulary"):
        compute_loss(cfg, teacher=SparseTeacher(bad, sp.logprobs, sp.tail_logprob), **kw)
    va = torch.arange(10)
    restricted = LossConfig(action_vocab="restricted", action_vocab_ids=va)
    with pytest.raises(SadError, match="renormalized"):
        compute_loss(restricted, teacher=sp, **kw)
    r_rows = teacher_topk(5, logits=pos.gather(t), vocab_ids=va, restricted_rows=pos.kinds == ACT)
    with pytest.raises(SadError, match="restricted"):
        compute_loss(cfg, teacher=r_rows, **kw)
    other_va = LossConfig(action_vocab="restricted", action_vocab_ids=torch.arange(50, 60))
    with pytest.raises(SadError, match="outside the action vocabulary"):
        compute_loss(other_va, teacher=r_rows, **kw)


def test_from_tail_mass_matches_tail_logprob():
    g = torch.Generator().manual_seed(7)
    sp = teacher_topk(6, logits=torch.randn(9, V, generator=g))
    again = SparseTeacher.from_tail_mass(sp.ids, sp.logprobs, sp.tail_logprob.exp())
    torch.testing.assert_close(again.tail_logprob, sp.tail_logprob)
    implied = SparseTeacher.from_tail_mass(sp.ids, sp.logprobs)
    torch.testing.assert_close(implied.tail_logprob, sp.tail_logprob, rtol=1e-4, atol=1e-5)


def test_all_masked_with_sparse_teacher_is_zero():
    ids, labels, h, W, t = make_batch(seed=8)
    masked = torch.full_like(labels, PROMPT)
    empty = SparseTeacher(torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, 4), torch.zeros(0))
    out, gh, gw = run(LossConfig(), ids, masked, h, W, empty)
    assert float(out.total.detach()) == 0.0 and torch.isfinite(gh).all() and gw.abs().max() == 0


def test_teacher_topk_auto_chunk_size_matches_explicit():
    """chunk_size=0 means auto (as in LossConfig), never an empty result."""
    import torch

    from sadcli.losses import teacher_topk

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(23, 16, generator=g)
    head = torch.nn.Linear(16, 97, bias=False)
    auto = teacher_topk(5, hidden=hidden, lm_head=head, chunk_size=0)
    seven = teacher_topk(5, hidden=hidden, lm_head=head, chunk_size=7)
    assert auto.ids.shape == (23, 5)
    assert torch.equal(auto.ids, seven.ids)
    assert torch.allclose(auto.logprobs, seven.logprobs)
    logits = head(hidden).detach()
    from_logits = teacher_topk(5, logits=logits, chunk_size=0)
    assert torch.equal(from_logits.ids, seven.ids)
