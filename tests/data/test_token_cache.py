"""The distill token cache: built once, hit on the next run, invalidated by what changes examples, and the
batches trained from it are the ones built in memory."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from distill_fixtures import segmented_records, write_jsonl

from sadcli.distill.data import BatchSchedule, pad_batch
from sadcli.distill.pipeline import prepare_data
from sadcli.distill.token_cache import CachedExamples, prepare
from sadcli.errors import InputError
from sadcli.records import write_parquet


def records_with_curriculum(n: int = 12) -> list[dict]:
    recs = segmented_records(n)
    for i, r in enumerate(recs):
        r["curriculum_rank"] = (i % 5 + 1) / 5
        r["curriculum_stage"] = i % 3
        r["teacher"] = "expert" if i % 2 else "hf:x"
    return recs


def assert_same_examples(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert list(x.input_ids) == np.asarray(y.input_ids).tolist()
        assert list(x.token_labels) == np.asarray(y.token_labels).tolist()
        assert (x.id, x.index, x.extra, x.labels, x.stats, x.window) == (y.id, y.index, y.extra, y.labels, y.stats,
                                                                        y.window)


@pytest.mark.parametrize("opts", [dict(max_length=48), dict(max_length=48, window="truncate", truncate="end"),
                                  dict(max_length=512, render="chat")])
def test_cached_examples_equal_in_memory_ones(tmp_path, tokenizer, opts):
    src = write_jsonl(tmp_path / "seg.jsonl", records_with_curriculum())
    mem = prepare_data(src, tokenizer, **opts)
    first = prepare_data(src, tokenizer, token_cache=str(tmp_path / "tc"), **opts)
    again = prepare_data(src, tokenizer, token_cache=str(tmp_path / "tc"), **opts)
    assert isinstance(again.examples, CachedExamples)
    assert mem.fingerprint == first.fingerprint == again.fingerprint   # teacher caches stay valid
    assert mem.stats == first.stats == again.stats
    assert mem.curriculum == first.curriculum == again.curriculum
    assert_same_examples(mem.examples, again.examples)
    if opts == dict(max_length=48):
        assert mem.stats["windowed_records"] > 0  # the windowed path is exercised


def test_training_batches_are_the_same(tmp_path, tokenizer, monkeypatch):
    import torch

    import sadcli.distill.token_cache

    monkeypatch.setattr(sadcli.distill.token_cache, "BATCH", 5)  # several record batches in the file
    src = write_jsonl(tmp_path / "seg.jsonl", records_with_curriculum(16))
    mem = prepare_data(src, tokenizer, max_length=64)
    prepare_data(src, tokenizer, max_length=64, token_cache=str(tmp_path / "tc"))
    cached = prepare_data(src, tokenizer, max_length=64, token_cache=str(tmp_path / "tc"))
    assert len(cached.examples.table.column("input_ids").chunks) > 3
    assert_same_examples(mem.examples, cached.examples)
    assert_same_examples(mem.examples, [cached.examples[i] for i in range(len(cached.examples))])
    for curriculum in (None, "competence"):
        schedules = []
        for p in (mem, cached):
            lengths = [len(ex.input_ids) for ex in p.examples]
            from sadcli.distill.data import resolve_pacing

            pacing = resolve_pacing(curriculum, p.curriculum)
            schedules.append(BatchSchedule(lengths, 3, seed=7, curriculum=p.curriculum, pacing=pacing,
                                           total_steps=10))
        for k in range(12):
            (e1, b1), (e2, b2) = schedules[0][k], schedules[1][k]
            assert (e1, b1) == (e2, b2)
            x = pad_batch([mem.examples[i] for i in b1], 0)
            y = pad_batch([cached.examples[i] for i in b2], 0)
            for key in x:
                assert torch.equal(x[key], y[key]), key


def test_hit_and_invalidation(tmp_path, tokenizer):
    recs = segmented_records(6)
    src = write_jsonl(tmp_path / "seg.jsonl", recs)
    root = str(tmp_path / "tc")
    base = dict(render="text", max_length=64, truncate="start", trust_spans=False, window="steps",
                fingerprint_settings={})

    def run(path=src, **kw):
        return prepare(path, tokenizer, root=root, **{**base, **kw})

    first = run()
    assert not first.hit and run().hit and run().folder == first.folder
    for change in (dict(max_length=65), dict(window="truncate"), dict(truncate="end"), dict(render="chat"),
                   dict(trust_spans=True)):
        other = run(**change)
        assert not other.hit and other.folder != first.folder, change
        assert run(**change).hit
    # new content at the same path: a new key (the old entry stays valid for the old bytes)
    write_jsonl(tmp_path / "seg.jsonl", recs + segmented_records(1))
    grown = run()
    assert not grown.hit and len(grown.examples) > len(first.examples)
    # the same bytes elsewhere (or as Parquet shards): content decides, not the path... for JSONL copies
    write_jsonl(tmp_path / "copy.jsonl", recs)
    assert run(path=str(tmp_path / "copy.jsonl")).folder == first.folder
    write_parquet(recs, str(tmp_path / "ds"), 2)
    pq = run(path=str(tmp_path / "ds"))
    assert not pq.hit and pq.fingerprint == first.fingerprint
    assert_same_examples(first.examples, pq.examples)


def test_cache_is_a_datasets_dataset_and_memory_mapped(tmp_path, tokenizer):
    import datasets

    src = write_jsonl(tmp_path / "seg.jsonl", segmented_records(5))
    b = prepare(src, tokenizer, root=str(tmp_path / "tc"), render="text", max_length=64, truncate="start",
                trust_spans=False, window="steps", fingerprint_settings={})
    ds = datasets.Dataset.from_file(os.path.join(b.folder, "examples.arrow"))
    assert len(ds) == len(b.examples)
    assert ds[0]["input_ids"] == b.examples[0].input_ids.tolist()
    assert not b.examples[0].input_ids.flags.owndata   # a view into the mapped file, not a copy
    manifest = json.loads(open(os.path.join(b.folder, "manifest.json")).read())
    assert manifest["stats"]["records"] == 5


def test_a_bad_record_is_the_same_error_and_leaves_no_cache(tmp_path, tokenizer):
    recs = segmented_records(4)
    recs[2]["spans"][0]["end"] += 1  # spans no longer partition the text
    src = write_jsonl(tmp_path / "seg.jsonl", recs)
    with pytest.raises(InputError) as mem:
        prepare_data(src, tokenizer, max_length=64)
    with pytest.raises(InputError) as cached:
        prepare_data(src, tokenizer, max_length=64, token_cache=str(tmp_path / "tc"))
    assert str(cached.value) == str(mem.value) and f"{src}:3:" in str(cached.value)
    left = [n for n in os.listdir(tmp_path / "tc") if n != "sources" and not n.endswith(".lock")]
    assert left == []   # no entry, no temp folder


def test_curriculum_on_some_records_only_is_located(tmp_path, tokenizer):
    recs = records_with_curriculum(4)
    del recs[1]["curriculum_rank"]
    src = write_jsonl(tmp_path / "seg.jsonl", recs)
    with pytest.raises(InputError) as mem:
        prepare_data(src, tokenizer, max_length=64)
    with pytest.raises(InputError) as cached:
        prepare_data(src, tokenizer, max_length=64, token_cache=str(tmp_path / "tc"))
    assert str(cached.value) == str(mem.value) and f"{src}:2:" in str(cached.value)


def test_stdin_and_emitted_input_are_built_in_memory(tmp_path, tokenizer):
    from sadcli.masks.build import build_examples
    from sadcli.masks.emit import to_emit_record

    recs = segmented_records(3)
    emitted = [to_emit_record(ex, tokenizer="smollm2-135m", render="text", max_length=None, keep="start",
                              window="truncate") for ex in build_examples(recs, tokenizer)]
    src = write_jsonl(tmp_path / "emit.jsonl", emitted)
    p = prepare_data(src, tokenizer, max_length=512, token_cache=str(tmp_path / "tc"))
    assert not isinstance(p.examples, CachedExamples) and not os.path.exists(tmp_path / "tc")


def _build_in_child(args):
    src, root = args
    from sadcli.models.spec import load_tokenizer

    b = prepare(src, load_tokenizer("smollm2-135m"), root=root, render="text", max_length=64, truncate="start",
                trust_spans=False, window="steps", fingerprint_settings={})
    return b.hit, b.fingerprint


def test_processes_starting_together_build_once(tmp_path):
    import multiprocessing as mp

    src = write_jsonl(tmp_path / "seg.jsonl", segmented_records(40))
    with mp.get_context("fork").Pool(3) as pool:
        got = pool.map(_build_in_child, [(src, str(tmp_path / "tc"))] * 3)
    assert sorted(hit for hit, _ in got) == [False, True, True]   # one builder, two readers of its cache
    assert len({fp for _, fp in got}) == 1
