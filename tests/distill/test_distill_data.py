"""Batching, curriculum order and hyperparameter config of sad distill (no models needed)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sadcli.distill.config import TrainConfig, load_toml, make_config
from sadcli.distill.data import BatchSchedule, Curriculum, epoch_batches, pad_batch, padding_fraction, read_curriculum
from sadcli.errors import InputError


@given(st.lists(st.integers(1, 300), min_size=1, max_size=120), st.integers(1, 9), st.integers(1, 5),
       st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_epoch_is_a_permutation_in_batches(lengths, batch_size, window, seed):
    batches = epoch_batches(lengths, batch_size, seed=seed, epoch=1, length_group=window)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    # deterministic in (seed, epoch)
    assert batches == epoch_batches(lengths, batch_size, seed=seed, epoch=1, length_group=window)


def test_length_grouping_reduces_padding():
    import random
    rng = random.Random(0)
    lengths = [rng.randint(5, 500) for _ in range(400)]
    plain = epoch_batches(lengths, 8, seed=0, epoch=0, length_group=1)
    grouped = epoch_batches(lengths, 8, seed=0, epoch=0, length_group=50)
    assert padding_fraction(lengths, grouped) < padding_fraction(lengths, plain) / 2


def test_epochs_differ_and_seed_matters():
    lengths = [10] * 50
    a = epoch_batches(lengths, 4, seed=0, epoch=0)
    assert a != epoch_batches(lengths, 4, seed=0, epoch=1)
    assert a != epoch_batches(lengths, 4, seed=1, epoch=0)


def test_curriculum_stages_easy_to_hard_shuffled_within():
    records = [{"curriculum_stage": i % 3} for i in range(60)]
    cur = read_curriculum(records)
    lengths = [5 + (i * 7) % 50 for i in range(60)]
    batches = epoch_batches(lengths, 4, seed=0, epoch=0, curriculum=cur)
    stages = [[cur.stages[i] for i in b] for b in batches]
    assert all(len(set(s)) == 1 for s in stages)            # a batch never mixes stages
    order = [s[0] for s in stages]
    assert order == sorted(order)                           # stage 0, then 1, then 2
    flat0 = [i for b in batches for i in b if cur.stages[i] == 0]
    assert flat0 != sorted(flat0)                           # shuffled inside the stage
    assert batches != epoch_batches(lengths, 4, seed=0, epoch=1, curriculum=cur)


def test_sorted_prefers_rank_over_stage():
    records = [{"curriculum_stage": i % 3, "curriculum_rank": (20 - i) / 20} for i in range(20)]
    cur = read_curriculum(records)
    batches = epoch_batches([3] * 20, 3, seed=0, epoch=0, curriculum=cur)
    assert [i for b in batches for i in b] == list(range(19, -1, -1))


def test_curriculum_rank_only_orders_by_rank():
    records = [{"curriculum_rank": float((i * 13) % 20)} for i in range(20)]
    cur = read_curriculum(records)
    batches = epoch_batches([3] * 20, 3, seed=0, epoch=0, curriculum=cur)
    ranks = [cur.ranks[i] for b in batches for i in b]
    assert ranks == sorted(ranks)


def test_curriculum_all_or_none_and_types():
    assert not read_curriculum([{}, {}]).active
    with pytest.raises(InputError, match="curriculum_stage"):
        read_curriculum([{"curriculum_stage": 0}, {}], where=[("f.jsonl", 1), ("f.jsonl", 2)])
    with pytest.raises(InputError, match="non-negative integer"):
        read_curriculum([{"curriculum_stage": 1.5}])
    with pytest.raises(InputError, match="number"):
        read_curriculum([{"curriculum_rank": "easy"}])


def test_schedule_is_addressable_across_epochs():
    lengths = list(range(1, 11))
    sched = BatchSchedule(lengths, 3, seed=5)
    assert sched.per_epoch == 4
    run = [sched[k] for k in range(12)]
    assert [e for e, _ in run] == [0] * 4 + [1] * 4 + [2] * 4
    again = BatchSchedule(lengths, 3, seed=5)
    assert [again[k] for k in range(7, 12)] == run[7:]      # resume mid-run: same batches


def test_schedule_counts_stage_batches():
    cur = Curriculum(stages=(0, 0, 0, 1, 1, 1, 1), ranks=None)
    sched = BatchSchedule([4] * 7, 2, seed=0, curriculum=cur)
    assert sched.per_epoch == 4  # 2 batches per stage; a batch never mixes stages


def test_pad_batch_right_pads_to_longest():
    exs = [SimpleNamespace(input_ids=[5, 6, 7], token_labels=[0, 1, 2]),
           SimpleNamespace(input_ids=[8], token_labels=[2])]
    b = pad_batch(exs, pad_id=9)
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 9, 9]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["token_labels"].tolist() == [[0, 1, 2], [2, -1, -1]]


def test_config_precedence_and_errors(tmp_path):
    f = tmp_path / "distill.toml"
    f.write_text('lr = 3e-4\nmax_steps = 7\n[train]\nbatch_size = 2\n')
    cfg = make_config(load_toml(str(f)), batch_size=None, max_steps=9)
    assert (cfg.lr, cfg.max_steps, cfg.batch_size) == (3e-4, 9, 2)
    assert isinstance(make_config({"lr": 1}).lr, float)
    with pytest.raises(InputError, match="unknown hyperparameter 'lrr'"):
        make_config({"lrr": 1})
    with pytest.raises(InputError, match="schedule"):
        make_config(schedule="triangle")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 1")
    with pytest.raises(InputError, match="invalid TOML"):
        load_toml(str(bad))
    assert TrainConfig.help("grad_accum").startswith("Micro-batches")


# --- curriculum pacing (sad curriculum fields; --curriculum) ----------------------------------

from sadcli.distill.data import Pacing, competence, resolve_pacing  # noqa: E402


def test_competence_function_values():
    c0, T = 0.1, 100
    assert competence(0, T, c0) == pytest.approx(0.1)
    assert competence(T, T, c0) == 1.0 and competence(3 * T, T, c0) == 1.0
    assert competence(50, T, c0) == pytest.approx(math.sqrt(50 * 0.99 / 100 + 0.01))   # 0.7106...
    assert competence(50, T, c0) == pytest.approx(0.710633520177)
    assert competence(25, T, 0.5) == pytest.approx(math.sqrt(0.25 * 0.75 + 0.25))
    vals = [competence(t, T, c0) for t in range(0, 120)]
    assert vals == sorted(vals) and competence(5, 0, c0) == 1.0


def _ranked(n):
    """n records with ranks = empirical CDF of a shuffled score."""
    import random

    scores = list(range(n))
    random.Random(n).shuffle(scores)
    return Curriculum(stages=tuple(min(3, (s * 4) // n) for s in scores), ranks=tuple((s + 1) / n for s in scores))


@given(st.integers(10, 80), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.floats(0.05, 1.0),
       st.integers(0, 40), st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_competence_sampler_never_draws_above_c_t(n, bs, accum, world, c0, T, seed):
    cur = _ranked(n)
    total = 30
    sched = BatchSchedule([5] * n, bs, seed=seed, curriculum=cur, pacing=Pacing("competence", c0, T),
                          micro_per_step=accum * world, total_steps=total)
    TT = T or total // 2
    for step in range(total):
        c = competence(step, TT, c0)
        pool = set(sched.pool(step))
        assert pool == {i for i in range(n) if cur.ranks[i] <= c + 1e-12} or \
            (not any(r <= c for r in cur.ranks) and pool == {cur.ranks.index(min(cur.ranks))})
        for j in range(accum):
            for r in range(world):          # every rank and micro-batch of the step: the same competence set
                _, batch = sched[(step * accum + j) * world + r]
                assert len(batch) == min(bs, len(pool)) == len(set(batch))
                assert all(cur.ranks[i] <= max(c, min(cur.ranks)) + 1e-12 for i in batch)
    # deterministic, and addressable from any index (resume)
    again = BatchSchedule([5] * n, bs, seed=seed, curriculum=cur, pacing=Pacing("competence", c0, T),
                          micro_per_step=accum * world, total_steps=total)
    ks = range(total * accum * world)
    assert [again[k] for k in reversed(ks)][::-1] == [sched[k] for k in ks]


def test_competence_opens_the_whole_data_at_T_and_draws_uniformly():
    n = 40
    cur = _ranked(n)
    sched = BatchSchedule([5] * n, 4, seed=0, curriculum=cur, pacing=Pacing("competence", 0.1, 10), total_steps=400)
    assert sched.pool_size(0) == 4 and sched.pool_size(10) == n
    seen = [0] * n
    for k in range(10, 400):
        for i in sched[k][1]:
            seen[i] += 1
    from scipy.stats import chisquare

    assert chisquare(seen).pvalue > 1e-3          # 1560 draws over 40 records: uniform (seeded, fixed)


def test_stages_pacing_opens_one_stage_per_equal_share():
    n = 40
    cur = _ranked(n)
    sched = BatchSchedule([5] * n, 3, seed=1, curriculum=cur, pacing=Pacing("stages"), micro_per_step=2,
                          total_steps=20)
    assert sched.n_stages == 4
    assert [sched.stage_at(t) for t in range(20)] == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    for k in range(40):
        s = sched.stage_at(k // 2)
        assert all(cur.stages[i] <= s for i in sched[k][1])
    assert {cur.stages[i] for k in range(30, 40) for i in sched[k][1]} == {0, 1, 2, 3}


def test_resolve_pacing_defaults_and_errors():
    both = Curriculum(stages=(0, 1), ranks=(0.5, 1.0))
    assert resolve_pacing(None, both).mode == "sorted"
    assert resolve_pacing(None, Curriculum(None, None)).mode == "none"
    assert resolve_pacing("competence", both, c0=0.2, steps=7) == Pacing("competence", 0.2, 7)
    with pytest.raises(InputError, match="sad curriculum"):
        resolve_pacing("competence", Curriculum(None, None))
    with pytest.raises(InputError, match="curriculum_rank"):
        resolve_pacing("competence", Curriculum(stages=(0, 1), ranks=None))
    with pytest.raises(InputError, match="c0"):
        resolve_pacing("competence", both, c0=0)
    with pytest.raises(InputError, match="CDF"):
        resolve_pacing("competence", Curriculum(None, ranks=(0.0, 3.0)))


def test_windows_inherit_their_record_curriculum():
    cur = read_curriculum([{"curriculum_rank": 0.5, "curriculum_stage": 0}, {"curriculum_rank": 1.0,
                                                                             "curriculum_stage": 1}])
    assert cur.expand([0, 1, 1, 1]) == Curriculum(stages=(0, 1, 1, 1), ranks=(0.5, 1.0, 1.0, 1.0))
