"""Fixtures of the sad distill tests: tiny config-built models with the real embedded tokenizer."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_HERE = str(pathlib.Path(__file__).resolve().parent)
if _HERE not in sys.path:  # make distill_fixtures importable (pytest runs with --import-mode=importlib)
    sys.path.insert(0, _HERE)

from distill_fixtures import make_tiny, segmented_records, write_jsonl  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer():
    from sadcli.models.spec import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tokenizer) -> str:
    import torch

    torch.set_num_threads(2)
    return make_tiny(tmp_path_factory.mktemp("teacher"), tokenizer)


@pytest.fixture(scope="session")
def seg_file(tmp_path_factory) -> str:
    return write_jsonl(tmp_path_factory.mktemp("data") / "seg.jsonl", segmented_records(8))
