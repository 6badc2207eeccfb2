"""The loss benchmark runs end to end and both variants compute the same objective (no timing asserted)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_loss.py"


@pytest.mark.slow
def test_bench_loss_smoke():
    res = subprocess.run([sys.executable, str(BENCH), "--T", "128", "--V", "1024", "--H", "32", "--step", "16",
                          "--repeats", "1", "--threads", "1", "--json"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["loss_abs_diff"] < 1e-4 * max(1.0, abs(out["naive"]["loss"]))
    assert out["memory_ratio"] > 0 and out["time_ratio"] > 0
    assert "ratio sad/naive" in res.stderr            # the human summary goes to stderr, JSON to stdout
