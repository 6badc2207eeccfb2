"""Shared test set-up: offline Hugging Face, paths to the shared reference data, CLI runner helpers."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = pathlib.Path(__file__).resolve().parent.parent
# tests/distill/distill_fixtures.py (tiny config-built models, hand-made records) is shared by the distill,
# curriculum and reliability tests; --import-mode=importlib needs its folder on sys.path
_DISTILL = str(pathlib.Path(__file__).resolve().parent / "distill")
if _DISTILL not in sys.path:
    sys.path.insert(0, _DISTILL)
SHARED_DATA = pathlib.Path(os.environ.get("SAD_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_file(name: str) -> pathlib.Path:
    """Path of a file in ../shared/data, skipping the test (with the reason) when it is absent."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"reference data {p} is absent (it lives in ../shared/data beside the checkout)")
    return p


@pytest.fixture
def shared():
    return shared_file


@pytest.fixture(scope="session")
def tokenizer():
    """The real embedded SmolLM2 tokenizer (converted once into $SAD_HOME)."""
    from sadcli.models.spec import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tokenizer) -> str:
    """A 2-layer config-built teacher with the real tokenizer (folders whose tests need another size
    override it in their own conftest)."""
    import torch
    from distill_fixtures import make_tiny

    torch.set_num_threads(2)
    return make_tiny(tmp_path_factory.mktemp("teacher"), tokenizer, layers=2)


@pytest.fixture(scope="session")
def seg_file(tmp_path_factory) -> str:
    """8 hand-made segmented records in a JSONL file."""
    from distill_fixtures import segmented_records, write_jsonl

    return write_jsonl(tmp_path_factory.mktemp("data") / "seg.jsonl", segmented_records(8))
