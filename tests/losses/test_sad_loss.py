"""compute_loss against the naive reference: every loss, forward and gradients, plus invariances."""

from __future__ import annotations

import dataclasses
import zlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loss_reference import naive_loss

from sadcli.errors import SadError
from sadcli.labels import ACT, PAD, PROMPT, REASON
from sadcli.losses import (
    HiddenTeacher,
    LogitTransform,
    LossConfig,
    compute_loss,
    loss_positions,
)
from sadcli.losses.alignment import continuation_labels, positions_counts
from sadcli.losses.baselines import random_span_labels

torch.set_num_threads(2)

V, H = 97, 16
NAMES = ["sad", "token-kd", "kd", "seqkd", "sft", "flat", "only-reason", "only-act", "random-spans"]
RTOL, ATOL = 1e-5, 1e-6


def make_batch(B=3, T=10, seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = torch.randint(0, 4, (B, T), generator=g)
    labels[:, 0] = PROMPT
    if pad and T > 3:
        labels[-1, -2:] = PAD
    h = torch.randn(B, T, H, generator=g) * 2.0
    W = torch.randn(V, H, generator=g) * 0.5
    bias = torch.randn(V, generator=g) * 0.1
    t_logits = torch.randn(B, T, V, generator=g) * 3.0
    return ids, labels, h, W, bias, t_logits


def ours(cfg, ids, labels, h, W, bias, teacher, **kw):
    h = h.clone().requires_grad_(True)
    lin = torch.nn.Linear(H, V, bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(W)
        if bias is not None:
            lin.bias.copy_(bias)
    out = compute_loss(cfg, input_ids=ids, token_labels=labels, student_hidden=h, lm_head=lin, teacher=teacher, **kw)
    out.total.backward()
    return out, h.grad, lin.weight.grad, None if bias is None else lin.bias.grad


def reference(cfg, ids, labels, h, W, bias, t_logits, transform=None, counts=None):
    """The naive loss and its gradients, computed in float64 (returned as float32)."""
    h = h.double().requires_grad_(True)
    W = W.double().requires_grad_(True)
    b = None if bias is None else bias.double().requires_grad_(True)
    t_logits = t_logits.double()
    logits = h @ W.T + (b if b is not None else 0.0)
    if transform is not None:
        logits = transform(logits)
    lab = (random_span_labels(continuation_labels(labels), ids, cfg.seed) if cfg.name == "random-spans"
           else labels)
    va = None
    if cfg.action_vocab == "restricted":
        va = torch.as_tensor(cfg.action_vocab_ids)
    r = naive_loss(cfg.name, logits=logits, teacher_logits=None if cfg.name in ("seqkd", "sft") else t_logits,
                   input_ids=ids, labels=lab, divergence=cfg.divergence, beta=cfg.beta, temperature=cfg.temperature,
                   lambda_reason=cfg.lambda_reason, lambda_act=cfg.lambda_act, normalization=cfg.normalization,
                   vocab_a=va, alpha=cfg.alpha, counts=counts, supervise=cfg.supervise_names,
                   span_vocab=cfg.span_vocab_ids if cfg.span_vocab == "bucketed" else None)
    r["total"].backward()
    r["total"] = r["total"].float()
    for k in ("cot", "act"):
        if isinstance(r[k], torch.Tensor):
            r[k] = r[k].float()
    return r, h.grad.float(), W.grad.float(), None if b is None else b.grad.float()


def close(a, b, rtol=RTOL):
    """Element-wise to ``rtol`` relative, with an absolute floor of ``rtol`` times the tensor's scale (entries
    that are sums of cancelling fp32 terms cannot be relatively exact when they are near zero)."""
    torch.testing.assert_close(a, b, rtol=rtol, atol=max(ATOL, rtol * float(b.abs().max())))


def assert_matches(cfg, batch, **kw):
    ids, labels, h, W, bias, t_logits = batch
    out, gh, gw, gb = ours(cfg, ids, labels, h, W, bias, t_logits, **kw)
    r, rh, rw, rb = reference(cfg, ids, labels, h, W, bias, t_logits)
    torch.testing.assert_close(out.total, r["total"].detach(), rtol=RTOL, atol=ATOL)
    close(gh, rh)
    close(gw, rw)
    if bias is not None:
        close(gb, rb)
    assert torch.isfinite(out.total)
    return out, r


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("div", ["forward", "reverse", "jsd"])
def test_every_loss_matches_naive_reference(name, div):
    cfg = LossConfig(name=name, divergence=div, beta=0.3, chunk_size=4)
    out, r = assert_matches(cfg, make_batch(seed=zlib.crc32(f"{name}-{div}".encode()) % 1000))
    if name in ("sad", "random-spans", "only-reason", "only-act", "token-kd", "flat"):
        # the logged components are the reference's per-span terms
        if name != "only-act":
            torch.testing.assert_close(out.cot, torch.as_tensor(r["cot"]).detach().float(), rtol=RTOL, atol=ATOL)
        if name != "only-reason":
            torch.testing.assert_close(out.act, torch.as_tensor(r["act"]).detach().float(), rtol=RTOL, atol=ATOL)
    assert out.n_reason == r["n"]["r"] and out.n_act == r["n"]["a"]


@pytest.mark.parametrize("name", ["sad", "kd", "token-kd", "flat"])
@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_temperature_lambdas_alpha_sum(name, tau):
    for norm in ("per-span", "sum"):
        cfg = LossConfig(name=name, temperature=tau, lambda_reason=0.3, lambda_act=1.7, alpha=0.25,
                         normalization=norm, chunk_size=5)
        assert_matches(cfg, make_batch(seed=7))


def test_restricted_action_vocab_matches_reference():
    va = torch.tensor(sorted(set(torch.randint(0, V, (30,), generator=torch.Generator().manual_seed(3)).tolist())))
    for name in ("sad", "only-act", "random-spans"):
        for div in ("forward", "jsd"):
            cfg = LossConfig(name=name, divergence=div, action_vocab="restricted", action_vocab_ids=va, chunk_size=3)
            assert_matches(cfg, make_batch(seed=11))


def test_restricted_with_full_vocabulary_equals_full():
    batch = make_batch(seed=5)
    ids, labels, h, W, bias, t = batch
    full = ours(LossConfig(), ids, labels, h, W, bias, t)
    restr = ours(LossConfig(action_vocab="restricted", action_vocab_ids=torch.arange(V)), ids, labels, h, W, bias, t)
    for a, b in zip(full[1:], restr[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(full[0].total, restr[0].total, rtol=RTOL, atol=ATOL)


def test_restricted_differs_from_full_on_a_subset():
    ids, labels, h, W, bias, t = make_batch(seed=5)
    full = ours(LossConfig(), ids, labels, h, W, bias, t)[0]
    restr = ours(LossConfig(action_vocab="restricted", action_vocab_ids=torch.arange(10)), ids, labels, h, W, bias, t)[0]
    torch.testing.assert_close(full.cot, restr.cot)         # reasoning always uses the full vocabulary
    assert not torch.allclose(full.act, restr.act)


def test_sum_vs_per_span_relation():
    ids, labels, h, W, bias, t = make_batch(seed=9)
    per = ours(LossConfig(lambda_reason=0.5, lambda_act=2.0), ids, labels, h, W, bias, t)[0]
    tot = ours(LossConfig(lambda_reason=0.5, lambda_act=2.0, normalization="sum"), ids, labels, h, W, bias, t)[0]
    torch.testing.assert_close(tot.cot, per.cot * per.n_reason, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(tot.act, per.act * per.n_act, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(tot.total, 0.5 * per.cot * per.n_reason + 2.0 * per.act * per.n_act, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(per.total, 0.5 * per.cot + 2.0 * per.act, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("div", ["forward", "reverse", "jsd"])
def test_zero_for_identical_positive_otherwise(name, div):
    ids, labels, h, W, bias, _ = make_batch(seed=13)
    cfg = LossConfig(name=name, divergence=div)
    same = HiddenTeacher(h, torch.nn.Linear(H, V).requires_grad_(False))
    with torch.no_grad():
        same.lm_head.weight.copy_(W)
        same.lm_head.bias.copy_(bias)
    out, gh, gw, gb = ours(cfg, ids, labels, h, W, bias, same)
    if name in ("seqkd", "sft", "kd"):   # their cross-entropy term is not zero for identical distributions
        assert out.total > 0
        return
    assert abs(float(out.total.detach())) < 1e-6
    assert gh.abs().max() < 1e-5 and gw.abs().max() < 1e-5
    other = ours(cfg, ids, labels, h, W, bias, torch.randn(*labels.shape, V) * 2)[0]
    assert other.total > 1e-3


@pytest.mark.parametrize("name", ["sad", "kd", "flat", "only-act"])
def test_chunk_size_invariance(name):
    ids, labels, h, W, bias, t = make_batch(B=4, T=12, seed=17)
    n = len(loss_positions(LossConfig(name=name), labels, ids))
    results = [ours(LossConfig(name=name, chunk_size=c), ids, labels, h, W, bias, t) for c in (1, 7, n, 10 * n)]
    base = results[0]
    for res in results[1:]:
        torch.testing.assert_close(res[0].total, base[0].total, rtol=1e-6, atol=1e-6)
        for a, b in zip(res[1:], base[1:], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # float summation order only


@pytest.mark.parametrize("name", ["sad", "token-kd", "kd", "flat", "random-spans"])
def test_gradient_accumulation_8x1_vs_2x4(name):
    ids, labels, h, W, bias, t = make_batch(B=8, T=9, seed=21)
    cfg = LossConfig(name=name, chunk_size=5)
    c = positions_counts(loss_positions(cfg, labels, ids))
    counts = dict(num_reason=c.reason, num_act=c.act, num_other=c.other)
    full = ours(cfg, ids, labels, h, W, bias, t)

    def accumulate(micro):
        lin = torch.nn.Linear(H, V)
        with torch.no_grad():
            lin.weight.copy_(W)
            lin.bias.copy_(bias)
        hh = h.clone().requires_grad_(True)
        total = 0.0
        for s in range(0, 8, micro):
            sl = slice(s, s + micro)
            out = compute_loss(cfg, input_ids=ids[sl], token_labels=labels[sl], student_hidden=hh[sl], lm_head=lin,
                               teacher=t[sl], **counts)
            out.total.backward()
            total += float(out.total.detach())
        return total, hh.grad, lin.weight.grad, lin.bias.grad

    for micro in (1, 4):
        total, gh, gw, gb = accumulate(micro)
        assert total == pytest.approx(float(full[0].total.detach()), rel=1e-5)
        torch.testing.assert_close(gh, full[1], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gw, full[2], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gb, full[3], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_all_masked_batch_is_zero_without_nan(name):
    ids, labels, h, W, bias, t = make_batch(seed=23)
    masked = torch.where(labels == PAD, labels, torch.full_like(labels, PROMPT))   # only the task prompt
    out, gh, gw, gb = ours(LossConfig(name=name), ids, masked, h, W, bias, t)
    assert float(out.total.detach()) == 0.0 and float(out.cot) == 0.0 and float(out.act) == 0.0
    assert out.n_reason == out.n_act == 0
    for g in (gh, gw, gb):
        assert g is None or (torch.isfinite(g).all() and g.abs().max() == 0)


def test_one_term_without_tokens_is_zero():
    ids, labels, h, W, bias, t = make_batch(seed=25)
    no_reason = torch.where(labels == REASON, torch.full_like(labels, ACT), labels)
    out, r = assert_matches(LossConfig(), (ids, no_reason, h, W, bias, t))
    assert float(out.cot) == 0.0 and out.n_reason == 0 and float(out.act) > 0


def test_bf16_weights_finite_and_close_to_fp32():
    ids, labels, h, W, bias, t = make_batch(seed=27)
    ref = ours(LossConfig(chunk_size=4), ids, labels, h, W, bias, t)
    hb = h.to(torch.bfloat16).requires_grad_(True)
    lin = torch.nn.Linear(H, V, dtype=torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(bias)
    out = compute_loss(LossConfig(chunk_size=4), input_ids=ids, token_labels=labels, student_hidden=hb, lm_head=lin,
                       teacher=t.to(torch.bfloat16))
    out.total.backward()
    assert out.total.dtype == torch.float32 and torch.isfinite(out.total)
    assert hb.grad.dtype == torch.bfloat16 and lin.weight.grad.dtype == torch.bfloat16
    assert float(out.total.detach()) == pytest.approx(float(ref[0].total.detach()), rel=3e-2)
    for a, b in ((hb.grad, ref[1]), (lin.weight.grad, ref[2]), (lin.bias.grad, ref[3])):
        assert torch.isfinite(a).all()
        cos = torch.nn.functional.cosine_similarity(a.float().flatten(), b.flatten(), dim=0)
        assert cos > 0.99


def test_teacher_forms_agree():
    ids, labels, h, W, bias, _ = make_batch(seed=29)
    th = torch.randn(*labels.shape, 8)
    t_head = torch.nn.Linear(8, V)
    t_logits = t_head(th).detach()
    cfg = LossConfig(chunk_size=3)
    pos = loss_positions(cfg, labels, ids)
    forms = [t_logits, pos.gather(t_logits), (th, t_head), HiddenTeacher(pos.gather(th), t_head)]
    base = ours(cfg, ids, labels, h, W, bias, forms[0])
    for f in forms[1:]:
        res = ours(cfg, ids, labels, h, W, bias, f)
        torch.testing.assert_close(res[0].total, base[0].total, rtol=1e-6, atol=1e-6)
        for a, b in zip(res[1:], base[1:], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_student_logits_path_matches_reference():
    ids, labels, h, W, bias, t = make_batch(seed=31)
    for name in ("sad", "kd", "flat"):
        cfg = LossConfig(name=name, divergence="jsd", chunk_size=4)
        z = (h @ W.T + bias).requires_grad_(True)
        out = compute_loss(cfg, input_ids=ids, token_labels=labels, student_logits=z, teacher=t)
        out.total.backward()
        z2 = (h @ W.T + bias).requires_grad_(True)
        r = naive_loss(name, logits=z2, teacher_logits=t, input_ids=ids, labels=labels, divergence="jsd")
        r["total"].backward()
        torch.testing.assert_close(out.total, r["total"].detach(), rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(z.grad, z2.grad, rtol=RTOL, atol=ATOL)


class _Head(torch.nn.Module):
    """A non-Linear LM head (forces the checkpointed per-chunk path)."""

    def __init__(self, W, bias):
        super().__init__()
        self.weight = torch.nn.Parameter(W.clone())
        self.bias = torch.nn.Parameter(bias.clone())

    def forward(self, x):
        return x @ self.weight.T + self.bias


def test_opaque_head_module_matches_reference():
    ids, labels, h, W, bias, t = make_batch(seed=33)
    cfg = LossConfig(chunk_size=4)
    head = _Head(W, bias)
    hh = h.clone().requires_grad_(True)
    out = compute_loss(cfg, input_ids=ids, token_labels=labels, student_hidden=hh, lm_head=head, teacher=t)
    out.total.backward()
    r, rh, rw, rb = reference(cfg, ids, labels, h, W, bias, t)
    torch.testing.assert_close(out.total, r["total"].detach(), rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(hh.grad, rh, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(head.weight.grad, rw, rtol=RTOL, atol=ATOL)


def test_tied_embeddings_gradients():
    ids, labels, _, W, _, t = make_batch(seed=35)
    emb = torch.nn.Embedding(V, H)
    mix = torch.nn.Linear(H, H)
    cfg = LossConfig(chunk_size=5)

    def run(use_ours):
        emb.zero_grad(), mix.zero_grad()
        hidden = torch.tanh(mix(emb(ids)))
        if use_ours:
            out = compute_loss(cfg, input_ids=ids, token_labels=labels, student_hidden=hidden, lm_head=emb.weight,
                               teacher=t)
            out.total.backward()
        else:
            naive_loss("sad", logits=hidden @ emb.weight.T, teacher_logits=t, input_ids=ids,
                       labels=labels)["total"].backward()
        return emb.weight.grad.clone(), mix.weight.grad.clone()

    for a, b in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)


def test_logit_transform_is_applied_to_student_and_teacher():
    ids, labels, h, W, bias, _ = make_batch(seed=37)
    tf_s, tf_t = LogitTransform(scale=0.7, softcap=5.0), LogitTransform(softcap=3.0)
    th = torch.randn(*labels.shape, H) * 2
    tW = torch.randn(V, H)
    cfg = LossConfig(divergence="reverse", chunk_size=4)
    out, gh, gw, gb = ours(cfg, ids, labels, h, W, bias, HiddenTeacher(th, tW, tf_t), student_transform=tf_s)
    r, rh, rw, rb = reference(cfg, ids, labels, h, W, bias, tf_t(th @ tW.T), transform=tf_s)
    torch.testing.assert_close(out.total, r["total"].detach(), rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(gh, rh, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(gw, rw, rtol=RTOL, atol=ATOL)


def test_no_grad_evaluation_and_per_token_values():
    ids, labels, h, W, bias, t = make_batch(seed=39)
    with torch.no_grad():
        out = compute_loss(LossConfig(), input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W, teacher=t)
    assert not out.total.requires_grad
    pos = out.positions
    assert out.per_token.shape == (len(pos),)
    logits = h @ W.T
    for i in range(len(pos)):
        b, p = divmod(int(pos.index[i]), labels.shape[1])
        ls, lt = torch.log_softmax(logits[b, p], -1), torch.log_softmax(t[b, p], -1)
        assert float(out.per_token[i]) == pytest.approx(float((lt.exp() * (lt - ls)).sum()), rel=1e-5, abs=1e-6)


def test_extreme_logits_and_minus_inf_teacher_entries_stay_finite():
    ids, labels, h, W, bias, t = make_batch(seed=41)
    t = t.clone() * 1e3
    t[..., :10] = float("-inf")                   # e.g. masked vocabulary entries of the teacher
    for div in ("forward", "reverse", "jsd"):
        out, gh, gw, gb = ours(LossConfig(divergence=div), ids, labels, h * 100, W, bias, t)
        assert torch.isfinite(out.total) and torch.isfinite(gh).all() and torch.isfinite(gw).all()


def test_config_errors_are_sad_errors():
    for bad in (dict(name="nope"), dict(divergence="kl"), dict(divergence="jsd", beta=0.0), dict(temperature=0.0),
                dict(normalization="mean"), dict(action_vocab="restricted"), dict(alpha=1.5), dict(chunk_size=-1),
                dict(name="token-kd", action_vocab="restricted", action_vocab_ids=[1, 2]), dict(lambda_act=-1)):
        with pytest.raises(SadError):
            LossConfig(**bad).validate()
    ids, labels, h, W, bias, t = make_batch()
    with pytest.raises(SadError, match="needs a teacher"):
        compute_loss(LossConfig(), input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W)
    with pytest.raises(SadError, match="vocabulary"):
        compute_loss(LossConfig(), input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W, teacher=t[..., :50])
    with pytest.raises(SadError, match="rows"):
        compute_loss(LossConfig(), input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W, teacher=t[0])
    # seqkd needs no teacher
    out = compute_loss(LossConfig(name="seqkd"), input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W)
    assert torch.isfinite(out.total)


def test_config_options_have_help():
    opts = LossConfig.options()
    names = {o["name"] for o in opts}
    assert {"name", "divergence", "beta", "temperature", "lambda_reason", "lambda_act", "normalization",
            "action_vocab", "alpha", "chunk_size", "seed"} <= names
    assert "action_vocab_ids" not in names
    assert all(o["help"] for o in opts)
    assert dataclasses.replace(LossConfig(), name="kd").validate().name == "kd"


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 9), seed=st.integers(0, 10_000), chunk=st.integers(1, 9),
       name=st.sampled_from(NAMES), div=st.sampled_from(["forward", "reverse", "jsd"]))
def test_property_random_batches_match_reference(B, T, seed, chunk, name, div):
    batch = make_batch(B=B, T=T, seed=seed, pad=seed % 2 == 0)
    assert_matches(LossConfig(name=name, divergence=div, chunk_size=chunk, seed=seed), batch)


def _plain_identity(z):
    """A transform that is not a LogitTransform: forces the general per-chunk autograd path."""
    return z * 1.0


@pytest.mark.parametrize("name,div,tau", [("sad", "forward", 1.0), ("sad", "reverse", 2.0), ("kd", "forward", 1.0),
                                          ("kd", "reverse", 1.0), ("seqkd", "forward", 1.0), ("flat", "forward", 0.7),
                                          ("sad", "jsd", 1.0), ("kd", "jsd", 1.0), ("token-kd", "jsd", 3.0)])
def test_closed_form_gradients_equal_autograd_path(name, div, tau):
    """The closed-form fast path (no transform) against the per-chunk autograd path (opaque transform)."""
    ids, labels, h, W, bias, t = make_batch(B=4, T=12, seed=43)
    cfg = LossConfig(name=name, divergence=div, beta=0.3, temperature=tau, chunk_size=5)
    fast = ours(cfg, ids, labels, h, W, bias, t)
    slow = ours(cfg, ids, labels, h, W, bias, t, student_transform=_plain_identity)
    torch.testing.assert_close(fast[0].total, slow[0].total, rtol=1e-6, atol=1e-6)
    for a, b in zip(fast[1:], slow[1:], strict=True):
        close(a, b)


def test_backward_twice_is_a_clear_error_and_logits_with_transform_refused():
    ids, labels, h, W, bias, t = make_batch(seed=45)
    hh = h.clone().requires_grad_(True)
    out = compute_loss(LossConfig(), input_ids=ids, token_labels=labels, student_hidden=hh, lm_head=W, teacher=t)
    out.total.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        out.total.backward()
    with pytest.raises(SadError, match="student_transform"):
        compute_loss(LossConfig(), input_ids=ids, token_labels=labels, student_logits=h @ W.T, teacher=t,
                     student_transform=LogitTransform(softcap=3.0))


def test_scaled_backward_and_frozen_head():
    ids, labels, h, W, bias, t = make_batch(seed=47)
    base = ours(LossConfig(), ids, labels, h, W, bias, t)
    hh = h.clone().requires_grad_(True)
    out = compute_loss(LossConfig(), input_ids=ids, token_labels=labels, student_hidden=hh, lm_head=(W.clone(), bias.clone()),
                       teacher=t)   # head without grad: only the hidden states get gradients
    (3.0 * out.total).backward()
    close(hh.grad, 3.0 * base[1])


@pytest.mark.parametrize("div", ["forward", "reverse", "jsd"])
def test_closed_form_restricted_vocab_equals_autograd_path(div):
    ids, labels, h, W, bias, t = make_batch(B=4, T=12, seed=49)
    cfg = LossConfig(divergence=div, temperature=1.5, action_vocab="restricted", action_vocab_ids=torch.arange(3, 60, 2),
                     chunk_size=5)
    fast = ours(cfg, ids, labels, h, W, bias, t)
    slow = ours(cfg, ids, labels, h, W, bias, t, student_transform=_plain_identity)
    torch.testing.assert_close(fast[0].total, slow[0].total, rtol=1e-6, atol=1e-6)
    for a, b in zip(fast[1:], slow[1:], strict=True):
        close(a, b)


@pytest.mark.parametrize("tf", [LogitTransform(softcap=4.0), LogitTransform(scale=0.3), LogitTransform(0.5, 6.0)])
@pytest.mark.parametrize("name,div", [("sad", "forward"), ("sad", "jsd"), ("kd", "reverse")])
def test_closed_form_through_logit_transforms_equals_autograd(tf, name, div):
    ids, labels, h, W, bias, t = make_batch(B=3, T=12, seed=51)
    cfg = LossConfig(name=name, divergence=div, chunk_size=5)
    fast = ours(cfg, ids, labels, h * 3, W, bias, t, student_transform=tf)
    slow = ours(cfg, ids, labels, h * 3, W, bias, t, student_transform=lambda z: tf(z))
    torch.testing.assert_close(fast[0].total, slow[0].total, rtol=1e-6, atol=1e-6)
    for a, b in zip(fast[1:], slow[1:], strict=True):
        close(a, b)
    r, rh, rw, rb = reference(cfg, ids, labels, h * 3, W, bias, t, transform=tf)
    torch.testing.assert_close(fast[0].total, r["total"].detach(), rtol=RTOL, atol=ATOL)
    close(fast[1], rh)
    close(fast[2], rw)


# --- span_vocab="bucketed" (paper Eq. 8) -------------------------------------------------------------

def _span_vocab(seed=3):
    g = torch.Generator().manual_seed(seed)
    return {REASON: torch.tensor(sorted(set(torch.randint(0, V, (25,), generator=g).tolist()))),
            ACT: torch.tensor(sorted(set(torch.randint(0, V, (15,), generator=g).tolist())))}


@pytest.mark.parametrize("name", ["sad", "only-reason", "only-act", "random-spans"])
@pytest.mark.parametrize("div", ["forward", "reverse", "jsd"])
def test_bucketed_span_vocab_matches_float64_reference(name, div):
    cfg = LossConfig(name=name, divergence=div, beta=0.3, span_vocab="bucketed", span_vocab_ids=_span_vocab(),
                     chunk_size=4, temperature=1.5)
    assert_matches(cfg, make_batch(seed=zlib.crc32(f"bucketed-{name}-{div}".encode()) % 1000))


def test_bucketed_with_observations_and_sum_normalization_matches_reference():
    cfg = LossConfig(name="sad", span_vocab="bucketed", span_vocab_ids=_span_vocab(5), supervise="reason,act,obs",
                     normalization="sum", lambda_reason=0.4, chunk_size=3)
    out, r = assert_matches(cfg, make_batch(seed=51))
    assert out.n_other > 0


def test_bucketed_full_domain_equals_full_and_other_bucket_penalizes_mass_outside():
    ids, labels, h, W, bias, t = make_batch(seed=53)
    full = ours(LossConfig(), ids, labels, h, W, bias, t)
    everything = {REASON: torch.arange(V), ACT: torch.arange(V)}
    same = ours(LossConfig(span_vocab="bucketed", span_vocab_ids=everything), ids, labels, h, W, bias, t)
    torch.testing.assert_close(same[0].total, full[0].total, rtol=RTOL, atol=ATOL)
    for a, b in zip(same[1:], full[1:], strict=True):
        close(a, b)
    # a student with probability ~1 on a token outside V_a, where the teacher has mass ~1 inside V_a:
    # restricted (renormalized over V_a only) sees almost nothing, bucketed sees the lost mass
    one = torch.zeros(1, 3, dtype=torch.long)
    lab = torch.tensor([[PROMPT, ACT, ACT]])
    va = torch.tensor([1, 2, 3])
    hs = torch.zeros(1, 3, V)
    hs[..., 50] = 30.0                                   # student: all mass on id 50, outside V_a
    tl = torch.zeros(1, 3, V)
    tl[..., 2] = 30.0                                    # teacher: all mass on id 2, inside V_a
    restr = compute_loss(LossConfig(action_vocab="restricted", action_vocab_ids=va), input_ids=one,
                         token_labels=lab, student_logits=hs, teacher=tl)
    buck = compute_loss(LossConfig(span_vocab="bucketed", span_vocab_ids={REASON: va, ACT: va}), input_ids=one,
                        token_labels=lab, student_logits=hs, teacher=tl)
    assert float(buck.total) > 20.0                      # ≈ 30 nats: the student's in-domain mass is e^-30
    assert float(buck.total) > 100 * float(restr.total) or float(restr.total) < float(buck.total) - 20


def test_bucketed_refuses_sparse_teacher_and_structure_blind_losses():
    from sadcli.losses import teacher_topk

    ids, labels, h, W, bias, t = make_batch(seed=55)
    cfg = LossConfig(span_vocab="bucketed", span_vocab_ids=_span_vocab())
    pos = loss_positions(cfg, labels, ids)
    sparse = teacher_topk(5, logits=pos.gather(t))
    with pytest.raises(SadError, match="sparse"):
        compute_loss(cfg, input_ids=ids, token_labels=labels, student_hidden=h, lm_head=W, teacher=sparse)
    for name in ("token-kd", "kd", "flat", "seqkd", "sft"):
        with pytest.raises(SadError, match="span-aware"):
            LossConfig(name=name, span_vocab="bucketed", span_vocab_ids=_span_vocab()).validate()
    with pytest.raises(SadError, match="needs the reasoning and action"):
        LossConfig(span_vocab="bucketed").validate()
    with pytest.raises(SadError, match="token kind"):
        LossConfig(supervise="reason,thoughts").validate()
