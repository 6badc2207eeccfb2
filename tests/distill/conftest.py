"""Fixtures of the sad distill tests: tiny config-built models with the real embedded tokenizer."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from distill_fixtures import make_tiny, segmented_records, write_jsonl  # noqa: E402


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tokenizer) -> str:
    import torch

    torch.set_num_threads(2)
    return make_tiny(tmp_path_factory.mktemp("teacher"), tokenizer)


@pytest.fixture(scope="session")
def seg_file(tmp_path_factory) -> str:
    return write_jsonl(tmp_path_factory.mktemp("data") / "seg.jsonl", segmented_records(8))
