"""Next-token alignment and supervised positions against an explicit loop."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sadcli.labels import ACT, OBS, PAD, PROMPT, REASON
from sadcli.losses import next_token_labels, span_counts, supervised_positions
from sadcli.losses.alignment import ALL_KINDS


def loop_positions(labels, ids, kinds):
    B, T = labels.shape
    out = []
    for b in range(B):
        for t in range(1, T):
            if int(labels[b, t]) in kinds:
                out.append((b * T + t - 1, int(labels[b, t]), int(ids[b, t])))
    return out


def test_documented_example():
    labels = torch.tensor([[PROMPT, REASON, REASON, ACT, OBS, OBS, ACT, PAD]])
    ids = torch.arange(8)[None]
    pos = supervised_positions(labels, input_ids=ids)
    assert pos.index.tolist() == [0, 1, 2, 5]          # logits at t-1 predict token t
    assert pos.kinds.tolist() == [REASON, REASON, ACT, ACT]
    assert pos.targets.tolist() == [1, 2, 3, 6]
    assert next_token_labels(labels).tolist() == [[REASON, REASON, ACT, OBS, OBS, ACT, PAD, PAD]]
    c = span_counts(labels)
    assert (int(c.reason), int(c.act), int(c.other)) == (2, 2, 2)


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 4), T=st.integers(1, 12), seed=st.integers(0, 10_000), flat=st.booleans())
def test_property_matches_loop(B, T, seed, flat):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(-1, 4, (B, T), generator=g)
    ids = torch.randint(0, 50, (B, T), generator=g)
    kinds = ALL_KINDS if flat else (REASON, ACT)
    pos = supervised_positions(labels, input_ids=ids, kinds=kinds)
    got = list(zip(pos.index.tolist(), pos.kinds.tolist(), pos.targets.tolist(), strict=True))
    assert got == loop_positions(labels, ids, kinds)
    assert pos.batch.tolist() == [i // T for i in pos.index.tolist()]
    x = torch.randn(B, T, 3)
    gathered = pos.gather(x)
    for r, i in enumerate(pos.index.tolist()):
        assert torch.equal(gathered[r], x[i // T, i % T])
    c = span_counts(labels)
    assert int(c.reason) == sum(1 for _, k, _ in got if k == REASON) if not flat else True
    assert int(c.reason) + int(c.act) + (int(c.other) if flat else 0) == len(pos)
    sub = pos.select(torch.arange(len(pos))[::2])
    assert sub.index.tolist() == pos.index.tolist()[::2]


def test_length_one_sequences_supervise_nothing():
    pos = supervised_positions(torch.tensor([[REASON], [ACT]]))
    assert len(pos) == 0 and pos.targets is None
