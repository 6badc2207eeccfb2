"""Offline teacher cache: compact encoding, same loss as the online teacher, refuses other data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from distill_fixtures import segmented_records, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sadcli.cli import app
from sadcli.distill.teacher_cache import decode, default_tail_samples, encode, row_dtype, teacher_rows
from sadcli.errors import InputError

runner = CliRunner()


def distill(*args):
    return runner.invoke(app, ["distill", *map(str, args)], prog_name="sad")


def rows_of(logits, k, samples=0, seed=0):
    lp = torch.log_softmax(logits.float(), -1)
    return lp, teacher_rows(lp, k, samples, torch.Generator().manual_seed(seed))


def test_rows_are_at_most_150_bytes_at_k64():
    assert default_tail_samples(64) == 51
    assert row_dtype(13, 49152, 51).itemsize == 149   # default: 13 top + 51 tail draws
    assert row_dtype(48, 49152, 16).itemsize == 184   # the default before: 48 top + 16 tail draws
    assert row_dtype(64, 49152).itemsize == 198       # pure top-64: uint16 ids + uint8 log-probs + 3 fp16
    assert row_dtype(64, 65536).itemsize == 198
    assert row_dtype(64, 151936).itemsize == 262      # 3-byte ids above 65,536 tokens
    assert row_dtype(48, 151936, 16).itemsize == 248


@given(st.integers(0, 2**31 - 1), st.floats(0.1, 20.0), st.integers(1, 64), st.integers(0, 16))
@settings(max_examples=40, deadline=None)
def test_roundtrip_error_is_bounded(seed, scale, k, samples):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, 1000, generator=g) * scale
    _, rows = rows_of(logits, k + samples, samples, seed)
    enc = encode(rows, 1000)
    back = decode(enc)
    assert torch.equal(back.ids, rows.ids)
    step = torch.from_numpy(enc["step"].astype(np.float32))
    # offsets from the top token are on a uniform grid: error <= step / 2 (+ fp16 rounding of the top)
    bound = step / 2 + rows.logprobs[:, 0].abs() * 1e-3 + 1e-5
    err = ((back.logprobs - back.logprobs[:, :1]) - (rows.logprobs - rows.logprobs[:, :1])).abs()
    assert (err <= bound[:, None]).all()
    total = torch.logsumexp(torch.cat([back.logprobs, back.log_tail[:, None]], 1), 1)
    torch.testing.assert_close(total, torch.zeros(16), atol=1e-5, rtol=0)        # a proper distribution
    assert (back.logprobs[:, 1:] <= back.logprobs[:, :-1] + 1e-6).all()          # order kept
    if samples:
        assert torch.equal(back.samples, rows.samples)
        ids, lp, tail, offset = back.sampled()
        assert torch.isneginf(tail).all()
        torch.testing.assert_close(torch.logsumexp(lp, 1), torch.zeros(16), atol=1e-5, rtol=0)
        s = ids.sort(1).values
        assert (s[:, 1:] != s[:, :-1]).all()                                      # distinct ids per row
        assert not bool((rows.samples[:, :, None] == rows.ids[:, None, :]).any())  # draws come from the tail


def test_sampled_tail_is_an_unbiased_estimate_of_the_dense_kl():
    """E[KL(q || p_S)] + offset = KL(p_T || p_S): average many independent draws."""
    from sadcli.losses.divergences import forward_kl

    torch.manual_seed(0)
    t_logits, s_logits = torch.randn(4, 300) * 2, torch.randn(4, 300) * 2
    lp_t, lp_s = torch.log_softmax(t_logits, -1), torch.log_softmax(s_logits, -1)
    dense = forward_kl(lp_t, lp_s)
    ests, bucketed = [], None
    for seed in range(200):
        rows = teacher_rows(lp_t, 12, 4, torch.Generator().manual_seed(seed))
        ids, lp, _, offset = rows.sampled()
        ests.append((lp.exp() * (lp.clamp(min=-1e30) - lp_s.gather(1, ids))).sum(1) + offset)
    est = torch.stack(ests).mean(0)
    torch.testing.assert_close(est, dense, rtol=0.02, atol=0)
    top = teacher_rows(lp_t, 12)
    from sadcli.losses.sparse import bucket_logprobs
    bt = torch.cat([top.logprobs, top.log_tail[:, None]], 1)
    bucketed = forward_kl(bt, bucket_logprobs(lp_s, top.ids))
    assert (bucketed < dense * 0.95).all()                                        # top-k alone is biased low


def test_empty_tail_and_k_equals_v():
    _, rows = rows_of(torch.randn(4, 32) * 3, 32)                                 # tail = -inf
    back = decode(encode(rows, 32))
    assert torch.isneginf(back.log_tail).all() and torch.isfinite(back.logprobs).all()


def test_three_byte_ids_for_large_vocabularies():
    _, rows = rows_of(torch.randn(5, 200_000), 64, 16)
    rows.ids[0, 0] = 199_999
    enc = encode(rows, 200_000)
    assert enc.dtype.itemsize == 248
    back = decode(enc)
    assert torch.equal(back.ids, rows.ids) and torch.equal(back.samples, rows.samples)


def _batch(seg_file, tokenizer, n=8):
    from sadcli.distill.data import pad_batch
    from sadcli.distill.pipeline import prepare_data

    prep = prepare_data(seg_file, tokenizer, max_length=128)
    return prep, pad_batch(prep.examples[:n], tokenizer.pad_token_id)


@pytest.mark.parametrize("loss", ["sad", "flat", "kd"])
def test_cached_loss_matches_online_teacher(loss, seg_file, tiny_teacher, tokenizer, tmp_path):
    """Same batch, same student: the loss from the cache vs the online dense teacher."""
    from sadcli.distill.objective import Objective
    from sadcli.distill.pipeline import build_teacher_cache
    from sadcli.distill.students import student_from_teacher
    from sadcli.distill.teacher_cache import TeacherCache
    from sadcli.distill.trainer import HiddenStates
    from sadcli.models.spec import load_model

    prep, b = _batch(seg_file, tokenizer)
    teacher = load_model(tiny_teacher, device="cpu")
    student, _ = student_from_teacher(teacher, 1)
    obj = Objective.from_options({"name": loss}, examples=prep.examples, eos_id=tokenizer.eos_token_id)
    obj.bind_teacher(teacher)
    num = obj.counts(b["token_labels"])
    with torch.no_grad():
        h_s = HiddenStates(student)(b["input_ids"], b["attention_mask"])
        h_t = HiddenStates(teacher)(b["input_ids"], b["attention_mask"])
        head = student.get_output_embeddings()
        dense = obj.loss(h_s, head, b["input_ids"], b["token_labels"],
                         ("hidden", h_t, teacher.get_output_embeddings()), num)
        results = {}
        for samples in (51, 16, 0):
            path = tmp_path / f"cache{samples}"
            mf = build_teacher_cache(prep, teacher, tokenizer, str(path), objective=obj, k=64, samples=samples,
                                     batch_size=3, show_progress=False)
            assert mf["bytes_on_disk_per_token"] < (150 if samples == 51 else 200)
            cache = TeacherCache.open(str(path))
            assert cache.manifest["rows"] == sum(num)             # kd: reason, act and observations
            results[samples] = obj.loss(h_s, head, b["input_ids"], b["token_labels"],
                                        ("cache", cache.rows_for(range(8))), num)
    rel = {s: (o.total.item() - dense.total.item()) / dense.total.item() for s, o in results.items()}
    for samples in (51, 16):
        assert abs(rel[samples]) < 0.01, rel                          # the target: within 1%
        for part in ("cot", "act"):
            assert getattr(results[samples], part).item() == pytest.approx(getattr(dense, part).item(), rel=0.02)
    assert rel[0] < -0.01, rel        # pure top-64 + tail bucket: biased low (that is why we draw tail tokens)


def test_cache_cli_trains_like_online(seg_file, tiny_teacher, tmp_path):
    cache = tmp_path / "cache"
    r = distill(seg_file, "--teacher", tiny_teacher, "--cache-teacher", cache, "--max-length", "128", "-q")
    assert r.exit_code == 0, r.output
    mf = json.loads((cache / "cache.json").read_text())
    assert mf["teacher"]["spec"] == tiny_teacher and mf["k"] == 64 and mf["data"]["examples"] == 8
    logs = {}
    for mode, extra in (("online", []), ("cache", ["--teacher-cache", cache])):
        log = tmp_path / f"{mode}.jsonl"
        r = distill(seg_file, "--teacher", tiny_teacher, "--student-layers", "2", "--max-length", "128",
                    "--max-steps", "3", "--batch-size", "4", "-o", tmp_path / mode, "-q", "--log", log, *extra)
        assert r.exit_code == 0, r.output
        logs[mode] = [json.loads(x) for x in log.read_text().splitlines()]
    for a, b in zip(logs["online"], logs["cache"], strict=False):
        assert b["loss"] == pytest.approx(a["loss"], rel=0.01)
    cfg = json.loads((tmp_path / "cache" / "sad_config.json").read_text())
    assert cfg["teacher_cache"] == str(cache) and cfg["teacher"]["spec"] == tiny_teacher


def test_cache_refuses_other_data_and_settings(seg_file, tiny_teacher, tmp_path):
    cache = tmp_path / "cache"
    assert distill(seg_file, "--teacher", tiny_teacher, "--cache-teacher", cache, "--max-length", "128",
                   "-q").exit_code == 0
    other = write_jsonl(tmp_path / "other.jsonl", segmented_records(5))
    common = ["--teacher", tiny_teacher, "--student-layers", "1", "--max-steps", "1", "-o", tmp_path / "o",
              "--teacher-cache", cache, "-q"]
    for args, needle in (([other, "--max-length", "128"], "built from other data"),
                         ([seg_file, "--max-length", "64"], "built from other data"),
                         ([seg_file, "--max-length", "128", "--temperature", "2"], "temperature"),
                         ([seg_file, "--max-length", "128", "--loss", "kd"], "reason,act,obs positions"),
                         ([seg_file, "--max-length", "128", "--divergence", "reverse"], "online teacher")):
        r = distill(*args, *common)
        assert r.exit_code == 1, r.output
        assert "Error:" in r.stderr and needle in r.stderr, r.stderr
    r = distill(seg_file, "--teacher", tiny_teacher, "--cache-teacher", cache, "--max-length", "128", "-q")
    assert r.exit_code == 1 and "not empty" in r.stderr
    r = distill(seg_file, "--max-length", "128", "--student-layers", "1", "--max-steps", "1", "-o", tmp_path / "o",
                "--teacher-cache", tmp_path, "-q", "--teacher", tiny_teacher)
    assert r.exit_code == 1 and "not a teacher cache" in r.stderr



def test_caches_built_per_data_shard_read_as_one(tiny_teacher, tmp_path):
    """One cache per data shard (as N machines would build them), trained on with the shards in order:
    the joined cache gives every example exactly its shard cache's rows; wrong order or a missing shard
    is refused; the default encoding is used (13 top + 51 draws, 149 bytes per row)."""
    from sadcli.distill.teacher_cache import TeacherCache

    recs = segmented_records(8)
    whole = write_jsonl(tmp_path / "all.jsonl", recs)
    a = write_jsonl(tmp_path / "a.jsonl", recs[:5])
    b = write_jsonl(tmp_path / "b.jsonl", recs[5:])
    for name, data in (("a", a), ("b", b)):
        r = distill(data, "--teacher", tiny_teacher, "--cache-teacher", tmp_path / "caches" / name, "--max-length",
                    "128", "-q")
        assert r.exit_code == 0, r.output
    ca, cb = TeacherCache.open(str(tmp_path / "caches" / "a")), TeacherCache.open(str(tmp_path / "caches" / "b"))
    assert ca.manifest["samples"] == 51 and ca.manifest["bytes_per_row"] == 149
    for spec in (f"{tmp_path / 'caches' / 'a'},{tmp_path / 'caches' / 'b'}", str(tmp_path / "caches")):
        joined = TeacherCache.open(spec)
        na = len(ca.index) - 1
        assert joined.manifest["examples"] == na + len(cb.index) - 1
        assert joined.manifest["rows"] == ca.manifest["rows"] + cb.manifest["rows"]
        for e in range(joined.manifest["examples"]):
            got = joined.rows_for([e])
            want = ca.rows_for([e]) if e < na else cb.rows_for([e - na])
            assert torch.equal(got.ids, want.ids) and torch.equal(got.samples, want.samples)
            assert torch.equal(got.logprobs, want.logprobs)
        both = joined.rows_for([na - 1, na])                       # across the boundary, in the given order
        assert len(both) == len(ca.rows_for([na - 1])) + len(cb.rows_for([0]))
        with pytest.raises(InputError, match="read by `sad distill` only"):   # no per-part fingerprints given
            joined.check(fingerprint=ca.manifest["data"]["fingerprint"])
    common = ["--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "128", "--max-steps", "2", "-q"]
    r = distill(whole, *common, "--teacher-cache", tmp_path / "caches", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    r = distill(whole, *common, "--teacher-cache", f"{tmp_path / 'caches' / 'b'},{tmp_path / 'caches' / 'a'}",
                "-o", tmp_path / "o2")
    assert r.exit_code == 1 and "does not match training examples 0.." in r.stderr, r.stderr
    r = distill(whole, *common, "--teacher-cache", tmp_path / "caches" / "a", "-o", tmp_path / "o3")
    assert r.exit_code == 1 and "built from other data" in r.stderr
    r = distill(a, *common, "--teacher-cache", tmp_path / "caches", "-o", tmp_path / "o4")
    assert r.exit_code == 1 and "Error:" in r.stderr and "Traceback" not in r.output


def test_a_cache_of_the_previous_default_is_still_read_an_unknown_version_is_refused(seg_file, tiny_teacher,
                                                                                      tmp_path):
    """48 top + 16 draws (184 bytes, the default before): same format version, read as it is; a cache of
    another format version is an Error: naming the command that rebuilds it."""
    cache = tmp_path / "old"
    r = distill(seg_file, "--teacher", tiny_teacher, "--cache-teacher", cache, "--max-length", "128",
                "--tail-samples", "16", "-q")
    assert r.exit_code == 0, r.output
    assert json.loads((cache / "cache.json").read_text())["bytes_per_row"] == 184
    train = ["--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "128", "--max-steps", "1", "-q",
             "--teacher-cache", cache]
    r = distill(seg_file, *train, "-o", tmp_path / "o")
    assert r.exit_code == 0, r.output
    mf = json.loads((cache / "cache.json").read_text())
    (cache / "cache.json").write_text(json.dumps(dict(mf, version=1)))
    r = distill(seg_file, *train, "-o", tmp_path / "o2")
    assert r.exit_code == 1 and "unsupported cache format" in r.stderr and "--cache-teacher NEW_DIR" in r.stderr
