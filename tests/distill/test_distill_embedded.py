"""The issue's command with the embedded model on real FireAct trajectories (slow: ~5 min on 2 CPU cores)."""

from __future__ import annotations

import json

import pytest
from distill_fixtures import write_jsonl
from typer.testing import CliRunner

from sadcli.cli import app


@pytest.mark.slow
def test_embedded_teacher_six_layer_student_learns_and_loads(shared, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sadcli.jsonl import read_records
    from sadcli.segment import segment_record

    src = shared("fireact_hotpotqa_messages.jsonl")
    recs = [segment_record(rec) for i, (_, rec) in zip(range(40), read_records(str(src)), strict=False)]
    seg = write_jsonl(tmp_path / "seg.jsonl", recs)
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    torch.set_num_threads(2)
    r = CliRunner().invoke(app, ["distill", seg, "--teacher", "smollm2-135m", "--student-layers", "6", "--loss", "sad",
                                 "--max-steps", "20", "-o", str(out), "--log", str(log)], prog_name="sad")
    assert r.exit_code == 0, r.output
    assert "49.6M parameters" in r.stderr
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(rows) == 20
    first = sum(x["loss"] for x in rows[:3]) / 3
    last = sum(x["loss"] for x in rows[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    assert all(x["loss_cot"] > 0 and x["loss_act"] > 0 for x in rows)

    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    assert model.config.num_hidden_layers == 6
    prompt = recs[0]["text"][:recs[0]["spans"][1]["start"]]          # the prompt span only
    ids = tok(prompt, return_tensors="pt").input_ids
    gen = model.generate(ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
    assert gen.shape[1] > ids.shape[1] and text.strip()
    cfg = json.loads((out / "sad_config.json").read_text())
    assert cfg["teacher"]["spec"] == "smollm2-135m" and cfg["student"]["teacher_layers"] == [0, 6, 12, 17, 23, 29]
