"""Per-row divergences against textbook formulas, and their properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loss_reference import div_naive

from sadcli.losses import divergence, entropy, forward_kl, generalized_jsd, log_softmax_fp32, reverse_kl
from sadcli.losses.divergences import cross_entropy_rows

torch.set_num_threads(2)


def logps(seed, n=6, K=31, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.log_softmax(torch.randn(n, K, generator=g) * scale, -1),
            torch.log_softmax(torch.randn(n, K, generator=g) * scale, -1))


@pytest.mark.parametrize("kind,beta", [("forward", 0.5), ("reverse", 0.5), ("jsd", 0.1), ("jsd", 0.5), ("jsd", 0.9)])
def test_matches_textbook_formula(kind, beta):
    lt, ls = logps(1)
    ours = divergence(kind, lt, ls, beta)
    for i in range(lt.shape[0]):
        ref = div_naive(kind, lt[i].double().exp(), ls[i].double().exp(), beta)
        assert float(ours[i]) == pytest.approx(float(ref), rel=1e-5, abs=1e-6)


def test_matches_torch_kl_div():
    lt, ls = logps(2)
    ref = torch.nn.functional.kl_div(ls, lt, reduction="none", log_target=True).sum(-1)
    torch.testing.assert_close(forward_kl(lt, ls), ref)
    torch.testing.assert_close(reverse_kl(lt, ls), torch.nn.functional.kl_div(lt, ls, reduction="none",
                                                                            log_target=True).sum(-1))


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_zero_for_identical_positive_otherwise(kind):
    lt, ls = logps(3)
    assert divergence(kind, lt, lt).abs().max() < 1e-6
    assert (divergence(kind, lt, ls) > 1e-4).all()


def test_jsd_symmetric_at_half_and_mirror_otherwise():
    lt, ls = logps(4)
    torch.testing.assert_close(generalized_jsd(lt, ls, 0.5), generalized_jsd(ls, lt, 0.5))
    torch.testing.assert_close(generalized_jsd(lt, ls, 0.2), generalized_jsd(ls, lt, 0.8))
    assert not torch.allclose(generalized_jsd(lt, ls, 0.2), generalized_jsd(ls, lt, 0.2))
    assert (generalized_jsd(lt, ls, 0.5) <= math.log(2) + 1e-6).all()
    with pytest.raises(ValueError):
        generalized_jsd(lt, ls, 0.0)


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_minus_inf_entries_are_finite_with_finite_gradients(kind):
    zt = torch.randn(4, 20)
    zt[:, :5] = float("-inf")                       # teacher puts no mass there
    zs = torch.randn(4, 20, requires_grad=True)
    lt = torch.log_softmax(zt, -1)
    d = divergence(kind, lt, torch.log_softmax(zs, -1))
    if kind != "reverse":
        assert torch.isfinite(d).all()
    d.clamp(max=1e6).sum().backward()
    assert torch.isfinite(zs.grad).all()
    # dropping the zero-mass entries changes nothing for forward KL
    if kind == "forward":
        sub = forward_kl(torch.log_softmax(zt[:, 5:], -1), torch.log_softmax(zs[:, 5:], -1))
        full = forward_kl(lt, torch.log_softmax(zs, -1))
        assert (full >= sub - 1e-6).all()


def test_log_softmax_is_fp32_for_low_precision_inputs():
    z = torch.randn(3, 50) * 4
    for dt in (torch.bfloat16, torch.float16):
        out = log_softmax_fp32(z.to(dt), temperature=2.0)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, torch.log_softmax(z.to(dt).float() / 2.0, -1))


def test_entropy_and_cross_entropy():
    lt, _ = logps(5)
    ref = torch.tensor([-(p * p.log()).sum() for p in lt.double().exp()], dtype=torch.float32)
    torch.testing.assert_close(entropy(lt), ref, rtol=1e-5, atol=1e-6)
    z = torch.randn(7, 13)
    t = torch.randint(0, 13, (7,))
    torch.testing.assert_close(cross_entropy_rows(z, t), torch.nn.functional.cross_entropy(z, t, reduction="none"))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 50.0), K=st.integers(2, 60),
       beta=st.floats(0.01, 0.99))
def test_property_nonnegative_finite(seed, scale, K, beta):
    lt, ls = logps(seed, n=3, K=K, scale=scale)
    for kind in ("forward", "reverse", "jsd"):
        d = divergence(kind, lt, ls, beta)
        assert torch.isfinite(d).all() and (d >= -1e-5).all()
