"""Fixtures for the mask tests: the real embedded tokenizer and hand-made segmented records."""

from __future__ import annotations

import pathlib
import sys

import pytest

_HERE = str(pathlib.Path(__file__).resolve().parent)
if _HERE not in sys.path:  # --import-mode=importlib: make masks_helpers importable from the tests
    sys.path.insert(0, _HERE)

from masks_helpers import HOTPOT, make_record  # noqa: E402


@pytest.fixture(scope="session")
def tok():
    from sadcli.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture
def record():
    return make_record("Who is the kickboxer?", HOTPOT)
