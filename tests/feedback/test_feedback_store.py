from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import pytest
from feedback_helpers import history, make_record

from feedback import (
    RUNS_SCHEMA,
    SCHEMA_VERSION,
    CorruptFragmentWarning,
    Event,
    FeedbackError,
    FeedbackSchemaError,
    FeedbackStore,
)


def _files(store: FeedbackStore, kind: str = "runs") -> list[Path]:
    return sorted(p for p in (store.root / kind).iterdir() if p.suffix == ".parquet")


def test_append_and_read_round_trip(store: FeedbackStore) -> None:
    recs = [make_record(), make_record(status="failed", error="boom"), make_record(tier=2)]
    for r in recs:
        store.append(r)
    assert store.runs() == recs
    assert store.table().num_rows == 3
    assert store.table().schema.field("schema_version").type == pa.int16()


def test_same_run_id_is_stored_once_last_write_wins(store: FeedbackStore) -> None:
    first = make_record(value=0.1)
    store.append(first)
    store.append(make_record(value=0.3))
    store.append(make_record(run_id=first.run_id, value=0.2))
    runs = store.runs()
    assert len(runs) == 2
    assert [r.value for r in runs if r.run_id == first.run_id] == [0.2]


def test_filters(store: FeedbackStore) -> None:
    store.append_many(
        [
            make_record(campaign="a", arm="x", tier=0, status="completed"),
            make_record(campaign="a", arm="y", tier=2, status="failed"),
            make_record(campaign="a", arm="y", tier=3, status="pruned", value=0.2),
            make_record(campaign="b", arm="x", tier=0, status="completed"),
        ]
    )
    assert len(store.runs(campaign="a")) == 3
    assert len(store.runs(campaign="a", arm="y")) == 2
    assert len(store.runs(status="completed")) == 2
    assert len(store.runs(status=["failed", "pruned"])) == 2
    assert len(store.runs(tier=0)) == 2
    assert len(store.runs(tier=[2, 3], campaign="a")) == 2
    assert store.runs(campaign="zzz") == []
    assert store.runs(arm=[]) == [] and store.runs(status=[]) == []
    assert FeedbackStore(store.root).runs(arm=[], tier=[]) == []
    assert store.campaigns() == ["a", "b"]


def test_filters_pushed_down_to_merged_files_match_in_memory_filters(tmp_path: Path) -> None:
    writer = FeedbackStore(tmp_path / "h", fanout=4)
    recs = [
        make_record(campaign=f"c{i % 2}", arm=f"arm{i % 5}", tier=(0, 2, 3)[i % 3], value=i / 99)
        for i in range(90)
    ]
    for r in recs:
        writer.append(r)
    writer.append(make_record(run_id=recs[3].run_id, campaign="c1", arm="arm3", status="failed"))
    queries: list[dict[str, Any]] = [
        {"campaign": "c0"},
        {"campaign": "c1", "arm": "arm3"},
        {"arm": ["arm1", "arm4"], "tier": 2},
        {"tier": [0, 3], "status": "completed"},
        {"campaign": "c1", "status": "failed"},
    ]
    everything = writer.table()
    for query in queries:
        fresh = FeedbackStore(tmp_path / "h")  # nothing cached: filters go to Parquet
        got = fresh.table(**query)
        expected = everything
        for column, value in query.items():
            values = value if isinstance(value, list) else [value]
            expected = expected.filter(pa.compute.is_in(expected[column], pa.array(values)))
        assert got.to_pylist() == expected.to_pylist(), query


def test_best_respects_mode_and_refuses_mixed_metrics(store: FeedbackStore) -> None:
    store.append_many(history([0.3, 0.9, 0.5, None]))
    best = store.best("camp")
    assert best is not None and best.value == 0.9
    store.append_many(history([0.4, 0.1, 0.2], mode="min", campaign="loss"))
    best_min = store.best("loss")
    assert best_min is not None and best_min.value == 0.1
    assert store.best("nothing") is None
    store.append(make_record(campaign="camp", metric="val/loss", mode="min", value=0.01))
    with pytest.raises(FeedbackError, match="pass metric="):
        store.best("camp")
    picked = store.best("camp", metric="val/macro_f1")
    assert picked is not None and picked.value == 0.9


def test_merges_keep_every_record_and_bound_the_file_count(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "h", fanout=4)
    recs = [make_record(value=i / 200) for i in range(150)]
    for r in recs:
        store.append(r)
    # one re-append after merges: still one row per run, latest value
    store.append(make_record(run_id=recs[5].run_id, value=0.999))
    files = _files(store)
    assert len(files) <= 4 * 4  # at most fanout - 1 files per level
    runs = store.runs()
    assert len(runs) == 150
    assert {r.run_id for r in runs} == {r.run_id for r in recs}
    assert next(r for r in runs if r.run_id == recs[5].run_id).value == 0.999
    # a fresh reader (another process) sees the same
    other = FeedbackStore(tmp_path / "h")
    assert other.runs() == runs
    store.compact()
    assert len(_files(store)) == 1
    assert FeedbackStore(tmp_path / "h").runs() == runs


def test_reader_cache_follows_writes_and_merges(tmp_path: Path) -> None:
    writer = FeedbackStore(tmp_path / "h", fanout=3)
    reader = FeedbackStore(tmp_path / "h")
    for i in range(20):
        writer.append(make_record(value=i / 20))
        assert reader.table().num_rows == i + 1


def test_records_left_twice_by_an_interrupted_merge_are_read_once(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "h", fanout=4)
    for _ in range(3):
        store.append(make_record())
    copies = [p.read_bytes() for p in _files(store)]
    names = [p.name for p in _files(store)]
    store.append(make_record())  # triggers the merge, which deletes the inputs
    for name, data in zip(names, copies, strict=True):  # as if killed before the deletes
        (store.root / "runs" / name).write_bytes(data)
    fresh = FeedbackStore(tmp_path / "h")
    assert fresh.table().num_rows == 4


def test_temp_files_are_ignored(store: FeedbackStore) -> None:
    store.append(make_record())
    (store.root / "runs" / ".tmp-deadbeef.parquet").write_bytes(b"half a file")
    assert len(store.runs()) == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "bitflip"])
def test_corrupt_fragment_is_reported_and_skipped(tmp_path: Path, damage: str) -> None:
    store = FeedbackStore(tmp_path / "h")
    for i in range(5):
        store.append(make_record(value=i / 10))
    victim = _files(store)[2]
    data = victim.read_bytes()
    flipped = bytearray(data)
    for k in range(40, 56):  # inside the first data page: caught by the page checksum
        flipped[k] ^= 0xFF
    victim.write_bytes(
        {
            "truncate": data[: len(data) // 2],
            "garbage": b"\x00PAR1" * 50,
            "empty": b"",
            "bitflip": bytes(flipped),
        }[damage]
    )
    fresh = FeedbackStore(tmp_path / "h")
    with pytest.warns(CorruptFragmentWarning, match=victim.name):
        runs = fresh.runs()
    assert len(runs) == 4
    assert str(victim) in fresh.skipped
    with warnings.catch_warnings():  # reported once per store object
        warnings.simplefilter("error")
        assert len(fresh.runs()) == 4


def _write_foreign(store: FeedbackStore, table: pa.Table, name: str) -> Path:
    path = store.root / "runs" / name
    pq.write_table(table, path)
    return path


def test_schema_mismatch_names_file_and_field(store: FeedbackStore) -> None:
    store.append(make_record())
    good = store.table()
    bad = good.set_column(
        good.schema.get_field_index("value"), "value", pa.array(["0.5"], pa.string())
    )
    path = _write_foreign(store, bad, "L0-0000000000000000001-abcdef012345.parquet")
    with pytest.raises(FeedbackSchemaError, match="'value' has type string") as info:
        FeedbackStore(store.root).runs()
    assert info.value.path == str(path) and info.value.field == "value"
    assert path.name in str(info.value)


def test_schema_missing_field_and_newer_version(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "h")
    store.append(make_record())
    table = store.table()
    path = _write_foreign(
        store, table.drop_columns(["model"]), "L0-0000000000000000002-abcdef012345.parquet"
    )
    with pytest.raises(FeedbackSchemaError, match="'model' is missing"):
        FeedbackStore(store.root).runs()
    meta = {b"agentune.feedback.schema_version": str(SCHEMA_VERSION + 1).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(FeedbackSchemaError, match="schema version"):
        FeedbackStore(store.root).runs()


def test_readable_without_this_package(store: FeedbackStore) -> None:
    store.append_many(history([0.1, 0.2, 0.3]))
    store.append(make_record(run_id=store.runs()[0].run_id, value=0.15))
    import duckdb
    import pandas as pd

    df = pd.read_parquet(store.root / "runs")
    assert set(RUNS_SCHEMA.names) <= set(df.columns)
    assert (df["schema_version"] == SCHEMA_VERSION).all()
    glob = str(store.root / "runs" / "*.parquet")
    rows = duckdb.execute(
        f"SELECT run_id, arg_max(value, write_seq) AS value FROM read_parquet('{glob}') "
        "GROUP BY run_id ORDER BY run_id"
    ).fetchall()
    assert [v for _, v in rows] == [0.15, 0.2, 0.3]
    params = json.loads(df["params"].iloc[0])
    assert "trainer.lr" in params


def test_curves_round_trip_and_replace(store: FeedbackStore) -> None:
    epochs: list[dict[str, object]] = [
        {"epoch": 1, "val/loss": 1.0, "lr": 1e-3},
        {"epoch": 2, "val/loss": 0.5, "x": "s"},
    ]
    store.append_curve("r1", epochs, campaign="camp")
    store.append_curve("r2", [{"epoch": 1, "val/loss": 2.0}], campaign="camp")
    assert store.curve("r1") == [
        {"epoch": 1.0, "val/loss": 1.0, "lr": 1e-3},
        {"epoch": 2.0, "val/loss": 0.5},
    ]
    store.append_curve("r1", [{"epoch": 1, "val/loss": 9.0}])
    assert store.curve("r1") == [{"epoch": 1.0, "val/loss": 9.0}]
    assert store.curves(campaign="camp")["run_id"].to_pylist() == ["r2"]
    store.append_curve("r2", [])
    assert store.curve("r2") == []
    with pytest.raises(FeedbackError, match="numeric 'epoch'"):
        store.append_curve("r3", [{"val/loss": 1.0}])


def test_events_round_trip(store: FeedbackStore) -> None:
    a = Event(campaign="c", kind="escalation", tier=2, message="to tier 2")
    b = Event(campaign="c", kind="approval", arm="x", data={"decision": "approved"})
    store.append_event(a)
    store.append_event(b)
    store.append_event(Event(campaign="d", kind="note"))
    assert store.events(campaign="c") == [a, b]
    assert store.events(kind="approval") == [b]


def test_append_run_dir(store: FeedbackStore, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val/macro_f1": 0.5}\n')
    (run / "summary.json").write_text(
        json.dumps(
            {
                "status": "completed",
                "metric": "val/macro_f1",
                "mode": "max",
                "best_value": 0.5,
                "best_epoch": 1,
                "epochs_run": 1,
            }
        )
    )
    rec = store.append_run_dir(run, run_id="r", campaign="c", arm="a", tier=0, origin="human")
    assert store.runs() == [rec]
    assert store.curve("r") == [{"epoch": 1.0, "val/macro_f1": 0.5}]


def test_history_for_agent_is_bounded(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "h")
    values = [0.5 + 0.3 * (1 - 0.99**i) for i in range(3000)]
    recs = history(values, lr=lambda i: 10 ** -(2 + i % 3), campaign="long")
    recs[10] = make_record(
        run_id=recs[10].run_id, campaign="long", status="failed", error="x" * 5000
    )
    store.append_many(recs)
    store.append_event(Event(campaign="long", kind="agent_summary", message="y" * 10_000))
    best = store.best("long")
    assert best is not None
    text = store.history_for_agent("long", max_chars=3000)
    assert len(text) <= 3000
    assert best.run_id in text and "recommendation:" in text
    short = store.history_for_agent("long", max_chars=300)
    assert len(short) <= 300 and "campaign long" in short
    assert "no runs yet" in store.history_for_agent("other")
    with pytest.raises(FeedbackError, match="max_chars"):
        store.history_for_agent("long", max_chars=10)


def test_store_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(FeedbackError, match="must be a directory"):
        FeedbackStore(tmp_path / "file")
    with pytest.raises(FeedbackError, match="fanout"):
        FeedbackStore(tmp_path / "h", fanout=1)
    with pytest.raises(TypeError):
        FeedbackStore(tmp_path / "h").append({"run_id": "x"})  # type: ignore[arg-type]


def test_copying_a_store_keeps_it_readable(store: FeedbackStore, tmp_path: Path) -> None:
    store.append_many(history([0.1, 0.2]))
    shutil.copytree(store.root, tmp_path / "copy")
    assert len(FeedbackStore(tmp_path / "copy").runs()) == 2


def test_merge_removes_stale_temp_files(tmp_path: Path) -> None:
    import os
    import time

    store = FeedbackStore(tmp_path / "h", fanout=2)
    stale = store.root / "runs" / ".tmp-old.parquet"
    fresh = store.root / "runs" / ".tmp-new.parquet"
    for p in (stale, fresh):
        p.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    store.append(make_record())
    store.append(make_record())  # second level-0 file: merge
    assert not stale.exists() and fresh.exists()


# --- schema versions ----------------------------------------------------------------------

V2_FIELDS = ("seed", "git_commit", "dataset_hash", "simulator_version")


def _v1_schema() -> pa.Schema:
    """The runs schema of version 1, spelled out: today's fields without the provenance."""
    meta = {**(RUNS_SCHEMA.metadata or {}), b"agentune.feedback.schema_version": b"1"}
    return pa.schema([f for f in RUNS_SCHEMA if f.name not in V2_FIELDS], metadata=meta)


def _write_v1_fragment(root: Path, records: list[Any], seq: int) -> Path:
    """A runs fragment exactly as version 1 wrote it (schema_version 1, no provenance)."""
    schema = _v1_schema()
    rows = []
    for i, rec in enumerate(records):
        row = rec._to_row(seq + i, 1)
        rows.append({k: v for k, v in row.items() if k not in V2_FIELDS})
    path = root / "runs" / f"L0-{seq + len(records) - 1:019d}-0123456789ab.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def test_schema_version_bump_lists_the_added_fields() -> None:
    from feedback._schema import ADDED_FIELDS, schema_at

    assert SCHEMA_VERSION == 2
    assert set(ADDED_FIELDS["runs"]) == set(V2_FIELDS)
    assert schema_at("runs", 1).equals(_v1_schema(), check_metadata=True)
    assert schema_at("runs", 2).equals(RUNS_SCHEMA, check_metadata=True)
    assert all(RUNS_SCHEMA.field(name).nullable for name in V2_FIELDS)


def test_old_fragment_reads_with_missing_fields_as_none(tmp_path: Path) -> None:
    old = [make_record(run_id="old-1", value=0.4), make_record(run_id="old-2", value=0.6)]
    path = _write_v1_fragment(tmp_path / "h", old, seq=1_000)
    assert pq.read_schema(path).metadata[b"agentune.feedback.schema_version"] == b"1"
    assert "seed" not in pq.read_schema(path).names
    store = FeedbackStore(tmp_path / "h")
    store.append(make_record(run_id="new-1", value=0.5, seed=3, git_commit="a" * 40,
                             dataset_hash="f" * 16, simulator_version="ecg_synth/2"))  # fmt: skip
    runs = {r.run_id: r for r in store.runs()}
    assert sorted(runs) == ["new-1", "old-1", "old-2"]
    for run_id in ("old-1", "old-2"):
        r = runs[run_id]
        assert (r.seed, r.git_commit, r.dataset_hash, r.simulator_version) == (None,) * 4
        assert r.value == pytest.approx(0.4 if run_id == "old-1" else 0.6)
        assert r == next(o for o in old if o.run_id == run_id)  # nothing else lost
    new = runs["new-1"]
    assert (new.seed, new.git_commit, new.simulator_version) == (3, "a" * 40, "ecg_synth/2")
    table = store.table()
    assert table.schema.equals(RUNS_SCHEMA)
    by_id = dict(zip(table["run_id"].to_pylist(), table["schema_version"].to_pylist(), strict=True))
    assert by_id == {"old-1": 1, "old-2": 1, "new-1": 2}  # each row keeps its version
    # filtered reads push the filter down to the old file too
    assert [r.run_id for r in store.runs(campaign="camp", arm="cnn1d")] == [
        "old-1", "old-2", "new-1",
    ]  # fmt: skip
    assert store.best("camp") is not None and store.best("camp").run_id == "old-2"  # type: ignore[union-attr]


def test_old_and_new_fragments_merge_into_the_new_schema(tmp_path: Path) -> None:
    root = tmp_path / "h"
    _write_v1_fragment(root, [make_record(run_id="old", value=0.3)], seq=1_000)
    store = FeedbackStore(root, fanout=2)
    store.append(make_record(run_id="new", value=0.7, seed=1))  # 2 level-0 files: merged
    files = _files(store)
    assert len(files) == 1 and files[0].name.startswith("L1-")
    merged = pq.read_table(files[0])
    assert merged.schema.metadata[b"agentune.feedback.schema_version"] == b"2"
    assert merged.column("seed").to_pylist() == [None, 1]
    assert {r.run_id: r.seed for r in FeedbackStore(root).runs()} == {"old": None, "new": 1}


def test_old_fragment_without_metadata_is_recognised(tmp_path: Path) -> None:
    """Tools that rewrite files (pandas, DuckDB) may drop the metadata: the fields tell."""
    path = _write_v1_fragment(tmp_path / "h", [make_record(run_id="old")], seq=5)
    pq.write_table(pq.read_table(path).replace_schema_metadata(None), path)
    assert [r.seed for r in FeedbackStore(tmp_path / "h").runs()] == [None]


def test_old_fragment_still_needs_its_own_fields(tmp_path: Path) -> None:
    path = _write_v1_fragment(tmp_path / "h", [make_record()], seq=5)
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["model"]), path)
    with pytest.raises(FeedbackSchemaError, match=r"'model' is missing.*version 1") as info:
        FeedbackStore(tmp_path / "h").runs()
    assert info.value.field == "model"
    # a version-2 field in a file that says version 1 is not silently accepted either
    with_seed = table.append_column(pa.field("seed", pa.int64()), pa.array([1], pa.int64()))
    pq.write_table(with_seed, path)
    with pytest.raises(FeedbackSchemaError, match="unexpected field 'seed'"):
        FeedbackStore(tmp_path / "h").runs()


@pytest.mark.parametrize("version", [b"0", b"3", b"two"])
def test_unknown_schema_versions_are_refused(tmp_path: Path, version: bytes) -> None:
    store = FeedbackStore(tmp_path / "h")
    store.append(make_record())
    table = store.table()
    meta = {**(RUNS_SCHEMA.metadata or {}), b"agentune.feedback.schema_version": version}
    _write_foreign(store, table.replace_schema_metadata(meta), "L0-0000000000000000003-a.parquet")
    with pytest.raises(FeedbackSchemaError, match=r"not a version this package reads \(1..2\)"):
        FeedbackStore(store.root).runs()


def test_dashboard_shows_a_runs_provenance(tmp_path: Path) -> None:
    from feedback import render_dashboard

    store = FeedbackStore(tmp_path / "h")
    _write_v1_fragment(store.root, [make_record(run_id="old-run", value=0.4)], seq=1_000)
    provenance = {
        "seed": 7,
        "git_commit": "ab" * 20,
        "dataset_hash": "0123456789abcdef",
        "simulator_version": "ecg_synth/2",
    }
    store.append(make_record(run_id="new-run", value=0.6, **provenance))
    html = render_dashboard(store, "camp")
    expected = f"seed 7 · commit {'ab' * 20} · data 0123456789abcdef · simulator ecg_synth/2"
    assert f'<td title="{expected}">new-run</td>' in html
    assert '<td title="no provenance recorded">old-run</td>' in html
