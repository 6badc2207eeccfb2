"""Teacher entropy: a tiny model against a float64 hand computation; the teacher cache against the
dense value with the real embedded teacher."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sadcli.curriculum import CurriculumOptions, build, entropy_from_cache
from sadcli.curriculum.signals import lengths, teacher_entropy
from sadcli.labels import ACT, REASON


def hand_entropy(model, examples, n_records):
    """Per record: mean over positions t-1 with token t reasoning/action of -Σ p log p, float64, one
    sequence at a time through the model's own forward (full logits)."""
    tot, cnt = [0.0] * n_records, [0] * n_records
    with torch.no_grad():
        for ex in examples:
            logits = model(torch.tensor([ex.input_ids])).logits[0].double()      # [T, V]
            for t in range(1, len(ex.input_ids)):
                if ex.token_labels[t] in (REASON, ACT):
                    p = torch.softmax(logits[t - 1], -1)
                    h = -sum(float(x) * math.log(float(x)) for x in p.tolist() if x > 0)
                    tot[ex.index] += h
                    cnt[ex.index] += 1
    return [t / c if c else 0.0 for t, c in zip(tot, cnt, strict=True)], cnt


def test_entropy_of_a_tiny_model_equals_a_hand_computation(tokenizer, tiny_teacher, seg_records):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_teacher).eval()
    recs = seg_records[:3]
    exs = build(recs, tokenizer, CurriculumOptions())
    want, cnt = hand_entropy(model, exs, len(recs))
    for bs in (1, 3):  # batching and padding change nothing
        sums = teacher_entropy(exs, model, len(recs), batch_size=bs, pad_id=tokenizer.pad_token_id)
        assert sums.count.tolist() == cnt
        assert sums.mean().tolist() == pytest.approx(want, rel=1e-5)
    # a sharpened random model: clearly below the uniform entropy log V
    assert max(want) < math.log(len(tokenizer)) - 0.5


def test_lengths_count_reason_and_act_tokens_once_across_windows(tokenizer, seg_records):
    from sadcli.masks.build import build_examples

    full = list(build_examples(seg_records, tokenizer))
    win = build(seg_records, tokenizer, CurriculumOptions(max_length=40))
    assert len(win) > len(full)   # windows happened
    lr, la = lengths(win, len(seg_records))
    assert lr.tolist() == [ex.token_labels.count(REASON) for ex in full]
    assert la.tolist() == [ex.token_labels.count(ACT) for ex in full]


@pytest.mark.slow
def test_cache_entropy_agrees_with_the_dense_teacher(tokenizer, seg_records, tmp_path):
    """The real embedded teacher: entropy read from a `--cache-teacher` directory vs a live forward.

    With tail samples (default) the cache stores the dense Σ p log p as float16: per-record means agree
    within 1e-3 relative. Without it (a pure top-k cache) the estimate is the bucketed entropy of the
    stored top ids + one tail bucket: a lower bound.
    """
    from distill_fixtures import write_jsonl

    from sadcli.curriculum.score import complexity, order
    from sadcli.curriculum.signals import bucketed_entropy
    from sadcli.distill.pipeline import DistillOptions, run
    from sadcli.distill.teacher_cache import TeacherCache
    from sadcli.models.spec import load_model

    recs = seg_records[:4]
    data = write_jsonl(tmp_path / "seg.jsonl", recs)
    # 48 top ids + 16 draws (the cache default before 13 + 51): the bucketed bound below needs many top ids
    run(DistillOptions(input=data, teacher="smollm2-135m", max_length=1024, quiet=True, tail_samples=16,
                       cache_teacher=str(tmp_path / "cache")))
    model = load_model("smollm2-135m", dtype="float32", device="cpu")
    n = len(recs)
    exs = build(recs, tokenizer, CurriculumOptions(max_length=1024))
    dense = teacher_entropy(exs, model, n, batch_size=4, pad_id=tokenizer.pad_token_id)
    cached = entropy_from_cache(str(tmp_path / "cache"), recs, tokenizer)
    assert cached.source == "cache (dense, fp16)"
    assert cached.count.tolist() == dense.count.tolist()
    d, c = dense.mean(), cached.mean()
    assert np.all(d > 0.1)
    np.testing.assert_allclose(c, d, rtol=1e-3)
    # the bucketed estimate from the same rows (48 top ids + tail bucket): a lower bound, most of the entropy
    cache = TeacherCache.open(str(tmp_path / "cache"))
    per_row = bucketed_entropy(np.concatenate([np.asarray(sh) for sh in cache.shards]))
    owner = np.repeat([ex.index for ex in exs], cache.rows_per_example())
    b = np.bincount(owner, weights=per_row, minlength=n) / cached.count
    assert np.all(b <= d * (1 + 1e-3)) and np.all(b >= 0.5 * d)
    # the same order from the cache as from the live teacher
    lr, la = lengths(exs, n)
    assert order(complexity(lr, la, c)).tolist() == order(complexity(lr, la, d)).tolist()


def test_entropy_from_logits_against_float64_with_masked_tokens():
    from sadcli.curriculum.signals import entropy_from_logits

    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 3000, generator=g) * 4
    z[2, :100] = float("-inf")            # a masked vocabulary: 0 · log 0 = 0
    z[4] = -1e4
    z[4, 7] = 50.0                        # a one-hot row: entropy 0
    ref = -(torch.softmax(z.double(), -1) * torch.log_softmax(z.double(), -1)).nan_to_num().sum(-1)
    got = entropy_from_logits(z)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)
    assert got[4].abs() < 1e-5
