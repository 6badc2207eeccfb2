"""Fixtures of the sad curriculum tests: the real embedded tokenizer, tiny config-built teachers,
hand-made segmented trajectories (shared with the distill tests)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from distill_fixtures import make_tiny, segmented_records, write_jsonl  # noqa: E402


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tokenizer) -> str:
    import torch

    torch.set_num_threads(2)
    return make_tiny(tmp_path_factory.mktemp("teacher"), tokenizer, layers=2)


@pytest.fixture(scope="session")
def seg_records():
    return segmented_records(8)


@pytest.fixture(scope="session")
def seg_file(tmp_path_factory, seg_records) -> str:
    return write_jsonl(tmp_path_factory.mktemp("data") / "seg.jsonl", seg_records)
