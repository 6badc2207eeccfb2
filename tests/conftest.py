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
