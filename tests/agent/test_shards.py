"""--shard I/N: a deterministic partition of episode ids; N shard files together hold a single run's episodes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sadcli.cli import app
from sadcli.errors import InputError
from sadcli.shards import Shard, parse_shard, shard_of, shard_tasks

runner = CliRunner()


def test_parse_shard():
    assert parse_shard("0/4") == Shard(0, 4) and parse_shard(" 3 / 4 ") == Shard(3, 4) and parse_shard(None) is None
    for bad, needle in (("3/2", "I must be below N"), ("2/2", "I must be below N"), ("0/0", "N must be at least 1"),
                        ("x/y", "is not I/N"), ("1", "is not I/N"), ("-1/2", "is not I/N"), ("1/2/3", "is not I/N")):
        with pytest.raises(InputError, match=needle):
            parse_shard(bad)


@given(st.lists(st.text(min_size=1, max_size=30), unique=True, max_size=60), st.integers(1, 7))
@settings(max_examples=60, deadline=None)
def test_shards_partition_any_selection(ids, n):
    """Disjoint, complete, order-keeping, and each id's shard does not depend on the other ids selected."""
    parts = [shard_tasks(ids, Shard(i, n), key=lambda x: x) for i in range(n)]
    assert sorted(x for p in parts for x in p) == sorted(ids)
    for i, p in enumerate(parts):
        assert p == [x for x in ids if shard_of(x, n) == i]                    # original order kept
        assert shard_tasks(ids[::2], Shard(i, n), key=lambda x: x) == [x for x in ids[::2] if x in p]


def test_hash_is_stable_and_spreads():
    # pinned: the rule must never change (shards written by an older version must stay valid)
    assert [shard_of(f"twx/train/twc/{i}", 4) for i in range(8)] == PINNED
    counts = [0] * 4
    for i in range(4000):
        counts[shard_of(f"alfworld/train/x/{i}", 4)] += 1
    assert min(counts) > 900                                                   # about 1000 each


PINNED = [3, 2, 2, 3, 0, 3, 1, 0]


def _collect(*args):
    return runner.invoke(app, ["collect", *map(str, args)], prog_name="sad")


def _key(rec: dict) -> tuple:
    return (rec["id"], rec["success"], [(s["reason"], s["action"], s["observation"]) for s in rec["steps"]])


def test_bad_shard_values_are_clean_errors(tmp_path):
    for bad in ("3/2", "x/y", "0/0"):
        for r in (_collect("--env", "twx", "-n", "2", "--shard", bad),
                  runner.invoke(app, ["eval", "-m", "expert", "--env", "twx", "--shard", bad], prog_name="sad")):
            assert r.exit_code == 1, r.output
            assert r.stderr.startswith("Error: --shard") and "Traceback" not in r.output, r.stderr


@pytest.mark.slow
def test_collect_shards_cat_equals_a_single_run(tmp_path):
    pytest.importorskip("textworld_express")
    whole = tmp_path / "whole.jsonl"
    r = _collect("--env", "twx", "-n", "6", "-o", whole, "-q")
    assert r.exit_code == 0, r.output
    files = []
    for i, p in ((0, 1), (1, 2), (2, 1)):  # --parallel differs per machine: the partition does not
        f = tmp_path / f"shard-{i}.jsonl"
        r = _collect("--env", "twx", "-n", "6", "--shard", f"{i}/3", "-p", p, "-o", f, "-q")
        assert r.exit_code == 0, r.output
        files.append(f)
    cat = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    one = [json.loads(line) for line in whole.read_text().splitlines()]
    assert len(cat) == len(one) == 6
    assert sorted(map(_key, cat)) == sorted(map(_key, one))
    assert all(f.read_text() for f in files)            # 6 twc ids over 3 shards: 3 + 1 + 2 (see the hash)


@pytest.mark.slow
def test_eval_shards_cat_equals_a_single_run(tmp_path):
    pytest.importorskip("textworld_express")
    common = ["eval", "-m", "expert", "--env", "twx", "-n", "4", "-p", "1"]
    r = runner.invoke(app, [*common, "-o", str(tmp_path / "whole.jsonl")], prog_name="sad")
    assert r.exit_code == 0, r.output
    parts = []
    for i in range(2):
        f = tmp_path / f"s{i}.jsonl"
        r = runner.invoke(app, [*common, "--shard", f"{i}/2", "-o", str(f), "--report", str(tmp_path / f"r{i}.json")],
                          prog_name="sad")
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / f"r{i}.json").read_text())["config"]["shard"] == f"{i}/2"
        parts.append(f)
    one = [json.loads(x) for x in (tmp_path / "whole.jsonl").read_text().splitlines()]
    cat = [json.loads(x) for f in parts for x in f.read_text().splitlines()]
    assert len(one) == 4
    assert sorted((r["model"], r["seed"], *_key(r)) for r in cat) == sorted((r["model"], r["seed"], *_key(r)) for r in one)
    # the report of all shards: the joined file, resumed without --shard (nothing left to play)
    joined = tmp_path / "joined.jsonl"
    joined.write_text("".join(f.read_text() for f in parts))
    r = runner.invoke(app, [*common, "-o", str(joined), "--resume", "--report", str(tmp_path / "all.json")],
                      prog_name="sad")
    assert r.exit_code == 0, r.output
    summ = json.loads((tmp_path / "all.json").read_text())["rollouts"]["summary"]["models"]["expert"]
    whole = json.loads((tmp_path / "r0.json").read_text())  # a shard's report covers its share only
    assert summ["success"]["n"] == 4 and whole["rollouts"]["summary"]["models"]["expert"]["success"]["n"] == 2
