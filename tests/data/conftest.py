"""Fixtures of the data tests: hand-made segmented records, a tiny config-built teacher (real tokenizer)."""

from __future__ import annotations

import pytest
from distill_fixtures import make_tiny, segmented_records, write_jsonl


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tokenizer) -> str:
    import torch

    torch.set_num_threads(2)
    return make_tiny(tmp_path_factory.mktemp("teacher"), tokenizer, layers=2)


@pytest.fixture(scope="session")
def seg_file(tmp_path_factory) -> str:
    return write_jsonl(tmp_path_factory.mktemp("data") / "seg.jsonl", segmented_records(8))
