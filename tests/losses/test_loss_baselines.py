"""Baselines and ablations: relations between them, and the random-spans shuffle."""

from __future__ import annotations

import pytest
import torch

from sadcli.labels import ACT, OBS, PAD, PROMPT, REASON
from sadcli.losses import LossConfig, compute_loss, shuffle_span_labels
from sadcli.losses.alignment import continuation_labels
from sadcli.losses.baselines import agent_spans, draw_random_spans, random_span_labels

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


def test_random_spans_is_sad_on_random_span_labels():
    ids, labels, h, W, t = batch(3)
    rs = loss("random-spans", ids, labels, h, W, t, seed=5)
    sad = loss("sad", ids, random_span_labels(continuation_labels(labels), ids, 5), h, W, t)
    torch.testing.assert_close(rs.total, sad.total)
    assert (rs.n_reason, rs.n_act) == (sad.n_reason, sad.n_act)


def _runs_in_agent_stream(lab):
    kinds = [int(x) for x in lab if int(x) in (REASON, ACT)]
    return sum(1 for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1])


def test_random_spans_are_contiguous_spans_with_the_real_lengths_not_a_token_shuffle():
    # a trajectory-like row: prompt, then (reason, act, obs) steps of varied lengths
    row = [PROMPT] * 5
    for r, a in ((7, 3), (0, 4), (12, 2), (5, 5), (0, 3), (9, 6)):
        row += [REASON] * r + [ACT] * a + [OBS] * 4
    labels = torch.tensor([row])
    ids = torch.arange(len(row))[None] % V
    real = agent_spans(labels[0])
    assert len(real) == 10
    agent = (labels == REASON) | (labels == ACT)
    changed = 0
    for seed in range(20):
        new = random_span_labels(labels, ids, seed)
        assert torch.equal(new[~agent], labels[~agent])                      # same supervised tokens
        assert _runs_in_agent_stream(new[0]) <= len(real)                    # contiguous blocks
        changed += int(not torch.equal(new, labels))
    assert changed >= 18
    shuffled_runs = [_runs_in_agent_stream(shuffle_span_labels(labels, ids, s)[0]) for s in range(20)]
    assert min(shuffled_runs) > 2 * len(real)                                # what per-token shuffling does


def test_random_span_blocks_permute_the_real_lengths_and_kinds():
    g = torch.Generator().manual_seed(7)
    for trial in range(30):
        labels = torch.randint(0, 4, (1, 60), generator=g)
        ids = torch.randint(0, V, (1, 60), generator=g)
        real = agent_spans(labels[0])
        blocks = draw_random_spans(real, torch.Generator().manual_seed(trial))
        assert sorted(n for n, _ in blocks) == sorted(n for _, n, _ in real)
        assert sorted(k for _, k in blocks) == sorted(k for _, _, k in real)
        new = random_span_labels(labels, ids, trial)
        stream = new[0][(labels[0] == REASON) | (labels[0] == ACT)]
        # the stream is some draw of blocks laid in order: each run is a union of whole blocks
        assert int(stream.numel()) == sum(n for _, n, _ in real)
        if len(real) >= 2:
            assert _runs_in_agent_stream(new[0]) <= len(real)


def test_random_spans_do_not_depend_on_batch_mates_or_padding():
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 4, (3, 40), generator=g)
    ids = torch.randint(0, V, (3, 40), generator=g)
    together = random_span_labels(labels, ids, seed=0)
    alone = random_span_labels(labels[1:2], ids[1:2], seed=0)
    assert torch.equal(together[1:2], alone)
    padded_l = torch.cat([labels[1:2], torch.full((1, 9), PAD)], 1)
    padded_i = torch.cat([ids[1:2], torch.zeros(1, 9, dtype=torch.long)], 1)
    assert torch.equal(random_span_labels(padded_l, padded_i, seed=0)[:, :40], alone)
    assert torch.equal(together, random_span_labels(labels, ids, seed=0))
    assert not torch.equal(together, random_span_labels(labels, ids, seed=1))


def test_continuation_labels_mark_everything_after_the_task_prompt():
    lab = torch.tensor([[PROMPT, PROMPT, REASON, ACT, PROMPT, OBS, PROMPT, ACT, PAD],
                        [PROMPT, OBS, PROMPT, PROMPT, REASON, PAD, PAD, PAD, PAD]])
    out = continuation_labels(lab)
    assert out.tolist() == [[PROMPT, PROMPT, REASON, ACT, OBS, OBS, OBS, ACT, PAD],
                            [PROMPT, OBS, OBS, OBS, REASON, PAD, PAD, PAD, PAD]]


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
    # only-reason on reason+act is sad (the docs say so)
    torch.testing.assert_close(loss("only-reason", ids, labels, h, W, t, supervise="reason,act", **kw).total,
                               sad.total)


def test_token_kd_is_structure_blind_reverse_kl_over_the_continuation():
    ids, labels, h, W, t = batch(5)
    tok = loss("token-kd", ids, labels, h, W, t)
    assert tok.n_other > 0                                   # observations (and chat glue) are in
    assert LossConfig(name="token-kd").divergence == "reverse"
    # one mean over every token after the prompt, reverse KL
    parts = loss("sad", ids, labels, h, W, t, supervise="reason,act,obs", divergence="reverse")
    n = parts.n_reason + parts.n_act + parts.n_other
    expect = (parts.cot * parts.n_reason + parts.act * parts.n_act + parts.other * parts.n_other) / n
    torch.testing.assert_close(tok.total.detach(), expect)
    # token-kd on reason+act with the forward KL is flat (the docs say so)
    torch.testing.assert_close(loss("token-kd", ids, labels, h, W, t, supervise="reason,act",
                                    divergence="forward").total, loss("flat", ids, labels, h, W, t).total)


def test_flat_is_one_mean_over_reason_and_act():
    ids, labels, h, W, t = batch(8)
    flat = loss("flat", ids, labels, h, W, t)
    assert flat.n_other == 0
    expect = (flat.cot * flat.n_reason + flat.act * flat.n_act) / (flat.n_reason + flat.n_act)
    torch.testing.assert_close(flat.total.detach(), expect)
    sad = loss("sad", ids, labels, h, W, t)
    assert abs(float(flat.total) - float(sad.total)) > 1e-3


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_kd_interpolates_between_forward_token_kd_and_cross_entropy(tau):
    ids, labels, h, W, t = batch(6)
    kd0 = loss("kd", ids, labels, h, W, t, alpha=0.0, temperature=tau)
    kd1 = loss("kd", ids, labels, h, W, t, alpha=1.0, temperature=tau)
    kdm = loss("kd", ids, labels, h, W, t, alpha=0.3, temperature=tau)
    torch.testing.assert_close(kd0.total, loss("token-kd", ids, labels, h, W, t, temperature=tau,
                                               divergence="forward").total)
    torch.testing.assert_close(kd1.total, loss("seqkd", ids, labels, h, W, None, supervise="reason,act,obs").total)
    torch.testing.assert_close(kdm.total, 0.3 * kd1.total + 0.7 * kd0.total)
    torch.testing.assert_close(kdm.ce, kd1.total.detach())


@pytest.mark.parametrize("name", ["seqkd", "sft"])
def test_seqkd_and_sft_are_cross_entropy_on_agent_tokens(name):
    ids, labels, h, W, _ = batch(7)
    out = loss(name, ids, labels, h, W, None)
    logits = h @ W.T
    ces = []
    for b in range(labels.shape[0]):
        for i in range(1, labels.shape[1]):
            if int(labels[b, i]) in (REASON, ACT):
                ces.append(torch.nn.functional.cross_entropy(logits[b, i - 1][None], ids[b, i][None]))
    torch.testing.assert_close(out.total, torch.stack(ces).mean())
    assert not LossConfig(name=name).needs_teacher


def test_supervise_moves_a_baseline_between_readings():
    ids, labels, h, W, t = batch(9)
    for name in ("sad", "token-kd", "kd", "flat", "seqkd"):
        a = loss(name, ids, labels, h, W, t, supervise="reason,act")
        b = loss(name, ids, labels, h, W, t, supervise="reason,act,obs,prompt")
        assert a.n_other == 0 and b.n_other > 0
        assert abs(float(a.total) - float(b.total)) > 1e-4
