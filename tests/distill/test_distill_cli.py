"""`sad distill` end to end on tiny config-built models (64 dims) with the real embedded tokenizer."""

from __future__ import annotations

import json
import math

import pytest
from distill_fixtures import make_tiny, segmented_records, structured_records, write_jsonl
from typer.testing import CliRunner

from sadcli.cli import app

runner = CliRunner()
LOSSES = ["sad", "token-kd", "kd", "seqkd", "sft", "flat", "only-reason", "only-act", "random-spans"]


def distill(*args):
    return runner.invoke(app, ["distill", *map(str, args)], prog_name="sad")


def base_args(seg_file, teacher, out, *extra):
    return [seg_file, "--teacher", teacher, "--student-layers", "2", "--max-length", "128", "--batch-size", "4",
            "-o", out, "-q", *extra]


def read_log(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains(loss, seg_file, tiny_teacher, tmp_path):
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    r = distill(*base_args(seg_file, tiny_teacher, out, "--loss", loss, "--max-steps", "2", "--log", log))
    assert r.exit_code == 0, r.output
    assert r.stdout == ""                                  # stdout carries data only
    rows = read_log(log)
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert math.isfinite(row["loss"]) and row["loss"] > 0
        assert (row["n_reason"] > 0) == (loss != "only-act") and (row["n_act"] > 0) == (loss != "only-reason")
    if loss == "only-reason":
        assert rows[0]["loss_act"] == 0 and rows[0]["loss_cot"] > 0
    if loss == "only-act":
        assert rows[0]["loss_cot"] == 0 and rows[0]["loss_act"] > 0
    if loss in ("sad", "random-spans"):  # λ_r = λ_a = 1: total = L_CoT + L_Act
        assert rows[0]["loss"] == pytest.approx(rows[0]["loss_cot"] + rows[0]["loss_act"], rel=1e-5)
    cfg = json.loads((out / "sad_config.json").read_text())
    assert cfg["loss"]["name"] == loss and cfg["train"]["max_steps"] == 2


def test_output_is_plain_hf_and_generates(seg_file, tiny_teacher, tmp_path, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import sadcli

    out = tmp_path / "out"
    r = distill(*base_args(seg_file, tiny_teacher, out, "--max-steps", "3", "--lr", "1e-3", "--seed", "7"))
    assert r.exit_code == 0, r.output
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "sad_config.json"):
        assert (out / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    assert model.config.num_hidden_layers == 2
    ids = tok("[REASON] I should", return_tensors="pt").input_ids
    gen = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] == ids.shape[1] + 4 or int(gen[0, -1]) == tok.eos_token_id
    cfg = json.loads((out / "sad_config.json").read_text())
    assert cfg["sad_version"] == sadcli.__version__
    assert cfg["seed"] == 7 and cfg["train"]["lr"] == 1e-3
    assert cfg["student"]["teacher_layers"] == [0, 3]
    assert cfg["data"]["records"] == 8 and len(cfg["data"]["fingerprint"]) == 64
    assert cfg["summary"]["steps"] == 3
    assert torch.isfinite(model(ids).logits).all()


def test_loss_goes_down_and_config_file(seg_file, tiny_teacher, tmp_path):
    toml = tmp_path / "distill.toml"
    toml.write_text("lr = 3e-3\nschedule = \"constant\"\nmax_steps = 12\nbatch_size = 8\nwarmup_ratio = 0.0\n")
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    r = distill(seg_file, "--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "128",
                "--config", toml, "--batch-size", "8", "-o", out, "-q", "--log", log)
    assert r.exit_code == 0, r.output
    rows = read_log(log)
    assert len(rows) == 12
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"]
    cfg = json.loads((out / "sad_config.json").read_text())
    assert cfg["train"]["schedule"] == "constant" and cfg["train"]["lr"] == 3e-3


def test_grad_accum_matches_one_big_batch(seg_file, tiny_teacher, tmp_path):
    """Global token normalization: 8 x 1 and 2 x 4 give the same update."""
    from safetensors.torch import load_file

    outs = []
    for bs, acc in ((8, 1), (2, 4)):
        out = tmp_path / f"out{bs}"
        r = distill(seg_file, "--teacher", tiny_teacher, "--student-layers", "2", "--max-length", "128",
                    "--batch-size", bs, "--grad-accum", acc, "--max-steps", "1", "--lr", "1e-4",
                    "--grad-clip", "0", "-o", out, "-q", "--log", tmp_path / f"log{bs}.jsonl")
        assert r.exit_code == 0, r.output
        outs.append((load_file(str(out / "model.safetensors")), read_log(tmp_path / f"log{bs}.jsonl")[0]))
    (a, la), (b, lb) = outs
    assert la["loss"] == pytest.approx(lb["loss"], rel=1e-5)
    assert la["n_reason"] == lb["n_reason"]
    import torch
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_curriculum_fields_are_used(tiny_teacher, tmp_path):
    recs = segmented_records(8)
    for i, r in enumerate(recs):
        r["curriculum_stage"] = i % 2
        r["curriculum_rank"] = float(i)
    f = write_jsonl(tmp_path / "cur.jsonl", recs)
    out = tmp_path / "out"
    r = runner.invoke(app, ["distill", f, "--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "128",
                            "--max-steps", "1", "-o", str(out)], prog_name="sad")
    assert r.exit_code == 0, r.output
    assert "curriculum: sorted (default: the records carry curriculum fields)" in r.stderr
    assert json.loads((out / "sad_config.json").read_text())["data"]["curriculum"]["mode"] == "sorted"


def test_emitted_masks_train_like_segmented(seg_file, tiny_teacher, tmp_path, tokenizer):
    from sadcli.jsonl import read_records
    from sadcli.masks.build import build_examples
    from sadcli.masks.emit import to_emit_record

    recs = [rec for _, rec in read_records(seg_file)]
    emitted = [to_emit_record(ex, max_length=128) for ex in build_examples(recs, tokenizer, max_length=128)]
    f = write_jsonl(tmp_path / "emit.jsonl", emitted)
    logs = []
    for src in (seg_file, f):
        log = tmp_path / f"log{len(logs)}.jsonl"
        r = distill(*base_args(src, tiny_teacher, tmp_path / f"o{len(logs)}", "--max-steps", "1", "--log", log))
        assert r.exit_code == 0, r.output
        logs.append(read_log(log)[0])
    assert logs[0]["loss"] == pytest.approx(logs[1]["loss"], rel=1e-6)


# --- errors: one clean line, exit 1 -------------------------------------------------------------

def assert_clean_error(r, *needles):
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    assert r.stderr.strip().splitlines()[-1].startswith("Error:"), r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_records_without_spans(tiny_teacher, tmp_path):
    f = write_jsonl(tmp_path / "raw.jsonl", structured_records(2))
    r = distill(*base_args(f, tiny_teacher, tmp_path / "o", "--max-steps", "1"))
    assert_clean_error(r, "raw.jsonl:1", "not segmented", "sad segment")


def test_vocab_mismatch(seg_file, tiny_teacher, tmp_path):
    cfg = {"model_type": "llama", "vocab_size": 320, "hidden_size": 16, "intermediate_size": 32,
           "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
    (tmp_path / "student.json").write_text(json.dumps(cfg))
    r = distill(seg_file, "--teacher", tiny_teacher, "--student-config", tmp_path / "student.json",
                "--max-steps", "1", "-o", tmp_path / "o", "-q")
    assert_clean_error(r, "vocabulary mismatch", "49152", "320")


def test_student_spec_with_other_vocab(seg_file, tiny_teacher, tmp_path, tokenizer):
    small = make_tiny(tmp_path / "small", tokenizer, layers=1, vocab=50000)
    r = distill(seg_file, "--teacher", tiny_teacher, "--student", small, "--max-steps", "1", "-o", tmp_path / "o")
    assert_clean_error(r, "vocabulary mismatch", "49152", "50000")


def test_nothing_supervised_after_truncation(tiny_teacher, tmp_path):
    recs = structured_records(2)
    for r in recs:
        r["task"] = "Please read this long task statement carefully. " * 20
    from sadcli.segment import segment_record
    f = write_jsonl(tmp_path / "long.jsonl", [segment_record(r) for r in recs])
    # plain truncation (step windows, the default, would keep every step by splitting it)
    r = distill(*base_args(f, tiny_teacher, tmp_path / "o", "--max-steps", "1", "--max-length", "16",
                           "--window", "truncate"))
    assert_clean_error(r, "no reasoning or action token", "--max-length")
    # with step windows the same records train: every reasoning/action token lands in some window
    r = distill(*base_args(f, tiny_teacher, tmp_path / "o2", "--max-steps", "1", "--max-length", "16"))
    assert r.exit_code == 0, r.output


def test_option_conflicts_are_usage_errors(seg_file, tiny_teacher, tmp_path):
    r = distill(seg_file, "--teacher", tiny_teacher, "--student-layers", "2", "--student-config", "x.json",
                "-o", tmp_path / "o")
    assert r.exit_code == 2
    r = distill(seg_file, "--teacher", tiny_teacher)
    assert r.exit_code == 2 and "-o" in r.stderr


def test_bad_layer_list(seg_file, tiny_teacher, tmp_path):
    r = distill(*base_args(seg_file, tiny_teacher, tmp_path / "o"), "--student-layers", "0,9")
    assert_clean_error(r, "layer 9 does not exist")


def test_out_of_memory_names_the_option_to_lower(seg_file, tiny_teacher, tmp_path, monkeypatch):
    import torch

    from sadcli.distill.objective import Objective

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Objective, "loss", oom)
    r = distill(*base_args(seg_file, tiny_teacher, tmp_path / "o", "--max-steps", "1"))
    assert_clean_error(r, "out of memory at step 1", "--batch-size", "--max-length")


def test_layer_pick_influence_keeps_the_layers_of_highest_block_influence(seg_file, tiny_teacher, tmp_path):
    """--layer-pick influence: the layers recorded, copied and rebuilt by `init:` are the top block-influence
    layers of the teacher on the training examples (recomputed here from the library)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sadcli.distill.pipeline import INFLUENCE_EXAMPLES, INFLUENCE_TOKENS, influence_sample, prepare_data
    from sadcli.distill.students import block_influence, influence_indices
    from sadcli.eval.policies import load_lm, parse_model

    out = tmp_path / "out"
    r = distill(seg_file, "--teacher", tiny_teacher, "--student-layers", "1", "--layer-pick", "influence",
                "--max-length", "128", "--batch-size", "4", "--max-steps", "1", "--lr", "1e-12", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    how = json.loads((out / "sad_config.json").read_text())["student"]
    assert how["layer_pick"] == "influence" and len(how["block_influence"]) == 4  # the tiny teacher's layers
    teacher = AutoModelForCausalLM.from_pretrained(tiny_teacher).eval()
    prepared = prepare_data(str(seg_file), AutoTokenizer.from_pretrained(tiny_teacher), max_length=128)
    # the sample: evenly spread candidates, then the fewest of them (still spread) holding INFLUENCE_TOKENS
    step = max(1, len(prepared.examples) // INFLUENCE_EXAMPLES)
    cands = [ex.input_ids for ex in prepared.examples[::step][:INFLUENCE_EXAMPLES]]
    sample = influence_sample(prepared.examples)
    assert all(x in cands for x in sample) and sample[0] == cands[0]
    assert sum(map(len, sample)) >= min(INFLUENCE_TOKENS, sum(map(len, cands)))
    assert len(sample) == len(cands) or sum(map(len, sample[:-1])) < INFLUENCE_TOKENS
    scores = block_influence(teacher, sample)
    assert how["block_influence"] == pytest.approx(scores, abs=1e-5)
    assert how["teacher_layers"] == influence_indices(scores, 1)
    init, _ = load_lm(parse_model(f"init:{out}"))
    assert torch.equal(init.model.layers[0].mlp.up_proj.weight,
                       teacher.model.layers[how["teacher_layers"][0]].mlp.up_proj.weight)
    even = distill(seg_file, "--teacher", tiny_teacher, "--student-layers", "1", "--max-length", "128",
                   "--max-steps", "1", "-o", tmp_path / "even", "-q")
    assert even.exit_code == 0, even.output
    assert json.loads((tmp_path / "even" / "sad_config.json").read_text())["student"]["layer_pick"] == "even"


def test_influence_sample_is_the_fewest_spread_examples_reaching_the_token_budget():
    from types import SimpleNamespace

    from sadcli.distill.pipeline import influence_sample

    exs = [SimpleNamespace(input_ids=[i] * 1000) for i in range(40)]      # 40 examples of 1,000 tokens
    # candidates: every 2nd example (16 of them); 4 x 1,000 < 4,096 tokens, so 5 spread candidates
    assert [ids[0] for ids in influence_sample(exs)] == [0, 8, 16, 22, 30]
    assert [ids[0] for ids in influence_sample(exs[:3])] == [0, 1, 2]     # all there is, under the budget
    assert influence_sample([]) == []
    big = [SimpleNamespace(input_ids=[7] * 5000)]
    assert influence_sample(big * 3) == [[7] * 5000]                       # one example holds the budget
