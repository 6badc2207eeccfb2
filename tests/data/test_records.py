"""sadcli.records: JSONL and datasets (Parquet, Arrow, save_to_disk) read as the same records, written atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from distill_fixtures import segmented_records, write_jsonl
from typer.testing import CliRunner

from sadcli.cli import app
from sadcli.errors import InputError, SadError
from sadcli.records import ParquetWriter, dataset_kind, read_records, write_parquet

runner = CliRunner()


def messy_records() -> list[dict]:
    """Segmented records plus everything Arrow would otherwise bend: optional and null fields, nested objects
    of different shapes, mixed types, unicode, spans without ``step``, a non-string id, key order."""
    recs = segmented_records(6)
    recs[0]["meta"] = {"a": 1, "b": [1, "x", None]}
    recs[1]["meta"] = {"c": {"d": 2.5}}
    recs[1]["success"] = None
    recs[2]["reward"] = 1
    recs[3]["reward"] = 0.5
    recs[3]["task"] = "Ünïcødé ✓ — \u2028 line sep"
    recs[4]["spans"] = [{"start": s["start"], "end": s["end"], "kind": s["kind"]} for s in recs[4]["spans"]]
    recs[5]["id"] = 17
    recs.append({"z": 1, "text": None, "a": [{}]})
    return recs


@pytest.mark.parametrize("shards", [1, 3, 10])
def test_parquet_round_trip_is_exact_and_in_order(tmp_path, shards):
    recs = messy_records()
    out = tmp_path / "ds"
    assert write_parquet(recs, str(out), shards) == len(recs)
    names = sorted(os.listdir(out))
    assert names == [f"data-{i:05d}-of-{shards:05d}.parquet" for i in range(shards)]
    back = [rec for _, rec in read_records(str(out))]
    assert back == recs
    assert [list(r) for r in back] == [list(r) for r in recs]  # key order too
    import pyarrow.parquet as pq

    sizes = [pq.ParquetFile(out / n).metadata.num_rows for n in names]
    assert sum(sizes) == len(recs) and max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # contiguous, the first n % N one longer


def test_locations_are_file_and_row(tmp_path):
    recs = segmented_records(5)
    write_parquet(recs, str(tmp_path / "ds"), 2)
    where = [(os.path.basename(line.file), line.line) for line, _ in read_records(str(tmp_path / "ds"))]
    assert where == [("data-00000-of-00002.parquet", "row 1"), ("data-00000-of-00002.parquet", "row 2"),
                     ("data-00000-of-00002.parquet", "row 3"), ("data-00001-of-00002.parquet", "row 1"),
                     ("data-00001-of-00002.parquet", "row 2")]


def test_typed_columns_are_a_datasets_dataset(tmp_path):
    import datasets

    recs = segmented_records(4)
    write_parquet(recs, str(tmp_path / "ds"), 2)
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "ds"), split="train")
    assert ds["id"] == [r["id"] for r in recs] and ds["text"] == [r["text"] for r in recs]
    assert ds[0]["spans"] == recs[0]["spans"]


def test_split_dataset_by_node_gives_each_rank_whole_shards(tmp_path):
    import datasets
    from datasets.distributed import split_dataset_by_node

    recs = segmented_records(8)
    write_parquet(recs, str(tmp_path / "ds"), 4)
    files = sorted(str(p) for p in (tmp_path / "ds").iterdir())
    ds = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    assert ds.num_shards == 4
    seen = []
    for rank in range(2):
        ids = [r["id"] for r in split_dataset_by_node(ds, rank=rank, world_size=2)]
        # rank r reads shards r and r + 2 whole (2 records each), not every second row
        assert ids == [recs[i]["id"] for s in (rank, rank + 2) for i in (2 * s, 2 * s + 1)]
        seen += ids
    assert sorted(seen) == sorted(r["id"] for r in recs)


def test_foreign_parquet_rows_as_they_are(tmp_path):
    import datasets

    rows = [{"text": "Thought: a\nAction: b", "extra": None}, {"text": "Thought: c\nAction: d", "extra": "x"}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "f.parquet"))
    got = [rec for _, rec in read_records(str(tmp_path / "f.parquet"))]
    assert got == [{"text": "Thought: a\nAction: b"}, {"text": "Thought: c\nAction: d", "extra": "x"}]


def test_save_to_disk_and_arrow_files(tmp_path):
    import datasets

    recs = messy_records()[:6]
    write_parquet(recs, str(tmp_path / "ds"), 2)
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "ds"), split="train")
    ds.save_to_disk(str(tmp_path / "saved"))
    assert dataset_kind(str(tmp_path / "saved")) == "saved"
    assert [r for _, r in read_records(str(tmp_path / "saved"))] == recs
    arrow = [f for f in os.listdir(tmp_path / "saved") if f.endswith(".arrow")]
    assert arrow and [r for _, r in read_records(str(tmp_path / "saved" / arrow[0]))] == recs
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InputError, match="DatasetDict") as e:
        list(read_records(str(tmp_path / "dd")))
    assert "train" in (e.value.hint or "")


def test_jsonl_is_still_jsonl(tmp_path):
    p = write_jsonl(tmp_path / "x.jsonl", segmented_records(2))
    assert dataset_kind(p) is None and dataset_kind("-") is None
    assert [line.line for line, _ in read_records(p)] == [1, 2]


def seg(args, input=None):
    return runner.invoke(app, ["segment", *map(str, args)], input=input, prog_name="sad")


def test_a_bad_row_is_located_at_file_row(tmp_path):
    import datasets

    rows = [{"text": "Thought: a\nAction: b", "other": None}, {"text": None, "other": "nothing to segment"}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "f.parquet"))
    r = seg([tmp_path / "f.parquet", "-q"])
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: {tmp_path / 'f.parquet'}:row 2: no recognizable trajectory format")
    assert "Traceback" not in r.stderr
    r = seg([tmp_path / "f.parquet", "-q", "--on-error", "skip", "--rejects", tmp_path / "rej.jsonl"])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 1
    assert [json.loads(x) for x in (tmp_path / "rej.jsonl").read_text().splitlines()] == [{"other": "nothing to segment"}]


def test_a_damaged_parquet_file_is_a_clean_error(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_bytes(b"PAR1 this is not parquet")
    r = seg([p, "-q"])
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: {p}: not a readable Parquet file") and "Traceback" not in r.stderr


def test_segment_writes_parquet_shards_atomically(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": f"Thought: t{i}\nAction: a[{i}]"}
                                             for i in range(7)])
    out = tmp_path / "ds"
    r = seg([src, "--output-format", "parquet", "--shards", "3", "-o", out, "-q"])
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    jsonl = seg([src, "-q"]).stdout
    assert [rec for _, rec in read_records(str(out))] == [json.loads(x) for x in jsonl.splitlines()]
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    # a failing run (bad line 4) leaves the earlier shards as they were and no temp folder
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(open(src).read().splitlines()[:3] + ["{nope"]) + "\n")
    r = seg([bad, "--output-format", "parquet", "--shards", "2", "-o", out, "-q"])
    assert r.exit_code == 1 and r.stderr.startswith(f"Error: {bad}:4: invalid JSON")
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".sad-")]
    # a successful rerun replaces a folder of earlier shards, and only such a folder
    r = seg([src, "--output-format", "parquet", "--shards", "2", "-o", out, "-q"])
    assert r.exit_code == 0 and sorted(os.listdir(out)) == ["data-00000-of-00002.parquet",
                                                             "data-00001-of-00002.parquet"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    r = seg([src, "--output-format", "parquet", "-o", tmp_path / "mine", "-q"])
    assert r.exit_code == 1 and "holds other files (notes.txt)" in r.stderr
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


def test_parquet_options_need_each_other(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "Thought: t\nAction: a"}])
    assert seg([src, "--output-format", "parquet"]).exit_code == 2
    assert seg([src, "--shards", "2", "-o", tmp_path / "o.jsonl"]).exit_code == 2


def test_writer_refuses_zero_shards(tmp_path):
    with pytest.raises(SadError):
        ParquetWriter(str(tmp_path / "x"), 0)


def test_reading_jsonl_does_not_import_datasets_or_pyarrow(tmp_path):
    src = write_jsonl(tmp_path / "x.jsonl", [{"text": "Thought: a\nAction: b"}])
    code = (f"import sys\nsys.argv=['sad','segment',{src!r},'-q']\nfrom sadcli.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('HEAVY=' + ','.join(m for m in ('datasets', 'pyarrow', 'torch') if m in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stderr.split("HEAVY=")[-1].strip() == ""
