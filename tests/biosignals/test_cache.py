"""The hash-keyed dataset cache: keys, build-once semantics, atomic writes, load speed."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

import biosignals.data.mitbih as mitbih_module
from biosignals.data import cache
from biosignals.data.cache import (
    build_once,
    dataset_cache_key,
    load_dataset,
    read_dataset,
    resolve_cache_dir,
    save_dataset,
    source_fingerprint,
)
from biosignals.data.dataset import (
    DATASET_HASH_CHARS,
    DatasetError,
    SignalDataset,
    Split,
    compute_dataset_hash,
)
from biosignals.data.ecg_synth import generate_database, simulate_record
from biosignals.data.galaxyppg import write_fake_galaxyppg
from biosignals.data.wfdb_io import write_record

REPO = Path(__file__).resolve().parents[2]
FAKE_TARGET = "biosignals.data.mitbih.test_fake_builder"


def _dataset(n: int = 30, channels: int = 1, length: int = 16, seed: int = 0) -> SignalDataset:
    rng = np.random.default_rng(seed)

    def split(m: int, group: str) -> Split:
        return Split(
            rng.standard_normal((m, channels, length)).astype(np.float32),
            rng.integers(0, 3, m).astype(np.int64),
            np.full(m, group),
        )

    return SignalDataset(
        name="fake/aami3", task="classification", train=split(n, "101"), val=split(n // 3, "106"),
        test=split(n // 3, "100"), class_names=["N", "S", "V"], sampling_rate=360.0,
        target_name="aami_class", meta={"records": {"train": ["101"]}, "seed": seed},
    )  # fmt: skip


class FakeBuilder:
    """A builder that counts its calls (registered as biosignals.data.mitbih.test_fake_builder)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.delay = delay

    def __call__(self, n: int = 30, seed: int = 0, cache_dir: str | None = None) -> SignalDataset:
        self.calls.append({"n": n, "seed": seed, "cache_dir": cache_dir})
        time.sleep(self.delay)
        return _dataset(n=n, seed=seed)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBuilder:
    from biosignals import config_safety

    builder = FakeBuilder()
    builder.__module__ = mitbih_module.__name__  # a builder must live under biosignals.data.
    monkeypatch.setattr(mitbih_module, "test_fake_builder", builder, raising=False)
    monkeypatch.setitem(config_safety._DATASET_BUILDERS, id(builder), builder)
    return builder


def test_key_is_canonical() -> None:
    a = {"_target_": FAKE_TARGET.replace("test_fake_builder", "build"), "x": 1, "y": [1, 2]}
    b = {"y": [1, 2], "x": 1, "_target_": a["_target_"]}
    assert dataset_cache_key(a) == dataset_cache_key(b) == dataset_cache_key(OmegaConf.create(b))
    assert len(dataset_cache_key(a)) == 64
    assert dataset_cache_key({**a, "x": 2}) != dataset_cache_key(a)
    assert dataset_cache_key({**a, "cache_dir": "/elsewhere", "n_jobs": 4}) == dataset_cache_key(a)
    # interpolations are resolved before hashing
    nested = OmegaConf.create(
        {"v": 1, "dataset": {"_target_": a["_target_"], "x": "${v}", "y": [1, 2]}}
    )
    assert dataset_cache_key(nested.dataset) == dataset_cache_key(a)


def test_key_includes_builder_version(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {"_target_": "biosignals.data.mitbih.build_synthetic"}
    before = dataset_cache_key(cfg)
    monkeypatch.setattr(mitbih_module, "DATASET_VERSION", mitbih_module.DATASET_VERSION + 1)
    assert dataset_cache_key(cfg) != before


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"x": 1}, "needs a _target_"),
        ({"_target_": "os.system"}, "not a registered dataset builder.*allowed roots"),
        ({"_target_": "biosignals.data.mitbih.nope"}, "not a registered dataset builder.*exist"),
        ({"_target_": "biosignals.data.cache.os.system"}, "another module's attribute"),
        ({"_target_": "biosignals.data.cache.load_dataset"}, "is a function, not one of"),
    ],
)
def test_bad_targets(cfg: dict[str, Any], match: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=match):
        load_dataset(cfg, tmp_path)


def test_builds_once_then_loads(fake: FakeBuilder, tmp_path: Path) -> None:
    cfg = {"_target_": FAKE_TARGET, "n": 30}
    first = load_dataset(cfg, tmp_path)
    assert len(fake.calls) == 1 and fake.calls[0]["cache_dir"] == str(tmp_path)
    second = load_dataset(OmegaConf.create(cfg), tmp_path)
    assert len(fake.calls) == 1  # cache hit: the builder is not called again
    for name in ("train", "val", "test"):
        a, b = first.split(name), second.split(name)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.groups, b.groups)
    assert second.class_names == ["N", "S", "V"] and second.sampling_rate == 360.0
    assert second.meta["cache_key"] == dataset_cache_key(cfg)
    assert second.meta["records"] == {"train": ["101"]}
    load_dataset({**cfg, "n": 60}, tmp_path)
    assert len(fake.calls) == 2  # another config, another entry
    load_dataset(cfg, tmp_path, rebuild=True)
    assert len(fake.calls) == 3
    entries = sorted(p.name for p in (tmp_path / "datasets").iterdir() if p.is_dir())
    assert len(entries) == 2 and not any(e.startswith(".") for e in entries)  # no temp dirs left


def test_corrupt_entry_is_rebuilt(fake: FakeBuilder, tmp_path: Path) -> None:
    cfg = {"_target_": FAKE_TARGET}
    load_dataset(cfg, tmp_path)
    entry = tmp_path / "datasets" / dataset_cache_key(cfg)[:32]
    (entry / "val_x.npy").write_bytes(b"garbage")
    ds = load_dataset(cfg, tmp_path)
    assert len(fake.calls) == 2 and ds.val.x.shape == (10, 1, 16)
    (entry / "test_y.npy").unlink()
    load_dataset(cfg, tmp_path)
    assert len(fake.calls) == 3


def test_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(**_: Any) -> SignalDataset:
        raise DatasetError("no records here")

    from biosignals import config_safety

    broken.__module__ = mitbih_module.__name__
    monkeypatch.setattr(mitbih_module, "test_fake_builder", broken, raising=False)
    monkeypatch.setitem(config_safety._DATASET_BUILDERS, id(broken), broken)
    with pytest.raises(DatasetError, match="no records here"):
        load_dataset({"_target_": FAKE_TARGET}, tmp_path)
    assert not [p for p in (tmp_path / "datasets").iterdir() if p.is_dir()]


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    calls: list[int] = []

    def slow_build(tmp: Path) -> None:
        calls.append(1)
        time.sleep(0.2)
        (tmp / "done").write_text("ok")

    final = tmp_path / "entry"
    threads = [threading.Thread(target=build_once, args=(final, slow_build)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and (final / "done").read_text() == "ok"


def test_resolve_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTUNE_CACHE_DIR", str(tmp_path))
    assert resolve_cache_dir(None) == tmp_path
    assert resolve_cache_dir("/x/y") == Path("/x/y")
    monkeypatch.delenv("AGENTUNE_CACHE_DIR")
    assert resolve_cache_dir(None) == Path.home() / ".cache" / "agentune"


def test_meta_must_be_json(tmp_path: Path) -> None:
    ds = _dataset()
    ds.meta["bad"] = object()
    with pytest.raises(DatasetError, match="JSON-serialisable"):
        save_dataset(ds, tmp_path)


def test_format_version_mismatch_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_dataset(_dataset(), tmp_path)
    monkeypatch.setattr(cache, "CACHE_FORMAT_VERSION", cache.CACHE_FORMAT_VERSION + 1)
    with pytest.raises(DatasetError, match="cache format"):
        read_dataset(tmp_path)


@pytest.mark.slow
def test_cached_100k_window_dataset_loads_under_a_second(tmp_path: Path) -> None:
    ds = _dataset(n=0)
    rng = np.random.default_rng(0)
    ds.train = Split(
        rng.standard_normal((100_000, 1, 216), dtype=np.float32),
        rng.integers(0, 3, 100_000),
        np.full(100_000, "101"),
    )
    save_dataset(ds, tmp_path)
    read_dataset(tmp_path)  # warm the page cache, as a second trial would find it
    started = time.perf_counter()
    back = read_dataset(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert back.train.x.shape == (100_000, 1, 216)


@pytest.mark.slow
def test_quick_config_builds_and_caches(tmp_path: Path) -> None:
    cfg = OmegaConf.load(REPO / "configs" / "dataset" / "mitbih_synth_quick.yaml")
    assert isinstance(cfg, DictConfig)
    started = time.perf_counter()
    ds = load_dataset(cfg, tmp_path)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    again = load_dataset(cfg, tmp_path)
    assert time.perf_counter() - started < 1.0
    assert build_s < 30.0
    assert len(again.train) == len(ds.train) > 3000
    assert all(np.all(ds.class_counts(s) > 0) for s in ("train", "val", "test"))


# --- a key that follows the data, and the dataset hash (issue 9) ---------------------------

DS1_FEW, DS2_FEW = ["106", "118", "119"], ["100"]


def _entries(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "datasets").iterdir() if p.is_dir())


def _replace_keeping_stat(target: Path, source: Path) -> None:
    """Overwrite `target`'s bytes with `source`'s and put its times back: only the content
    says it changed (a copy with `cp -p`, `rsync -a` or an archive keeps times too)."""
    before = target.stat()
    target.write_bytes(source.read_bytes())
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.fixture
def wfdb_dir(tmp_path: Path) -> Path:
    """Four short simulated records as WFDB files (.hea/.dat/.atr), read as real data."""
    directory = tmp_path / "mitdb"
    generate_database(directory, [*DS1_FEW, *DS2_FEW], duration_s=20.0)
    return directory


def _mitbih_cfg(data_dir: Path) -> dict[str, Any]:
    return {
        "_target_": "biosignals.data.mitbih.build",
        "data_dir": str(data_dir),
        "records": [*DS1_FEW, *DS2_FEW],
        "val_records": ["106"],
    }


def test_replacing_a_wfdb_file_under_the_same_path_rebuilds(wfdb_dir: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cfg = _mitbih_cfg(wfdb_dir)
    first = load_dataset(cfg, cache_dir)
    again = load_dataset(cfg, cache_dir)
    assert len(_entries(cache_dir)) == 1  # unchanged files: a cache hit
    assert again.dataset_hash == first.dataset_hash and first.dataset_hash is not None
    assert len(first.dataset_hash) == DATASET_HASH_CHARS
    assert first.simulator_version is None  # read from files: recorded data as far as it knows
    meta = json.loads((cache_dir / "datasets" / _entries(cache_dir)[0] / "meta.json").read_text())
    assert meta["source"]["files"] == 12 and meta["dataset_hash"] == first.dataset_hash

    other = tmp_path / "other"  # the same record simulated with another seed: same size
    write_record(simulate_record("118", duration_s=20.0, seed=1), other)
    _replace_keeping_stat(wfdb_dir / "118.dat", other / "118.dat")
    replaced = load_dataset(cfg, cache_dir)
    assert len(_entries(cache_dir)) == 2  # rebuilt, though name, size and mtime are the same
    assert replaced.meta["cache_key"] != first.meta["cache_key"]
    assert replaced.dataset_hash != first.dataset_hash
    assert not np.array_equal(replaced.train.x, first.train.x)  # 118 is a training record
    np.testing.assert_array_equal(replaced.test.x, first.test.x)  # 100 (test) is untouched


def test_replacing_a_galaxyppg_csv_rebuilds(tmp_path: Path) -> None:
    data, other = tmp_path / "galaxy", tmp_path / "galaxy-other"
    write_fake_galaxyppg(data, n_participants=3, minutes=1.0, seed=0)
    write_fake_galaxyppg(other, n_participants=3, minutes=1.0, seed=1)
    cfg = {
        "_target_": "biosignals.data.galaxyppg.build",
        "data_dir": str(data),
        "val_participants": 1,
        "test_participants": 1,
    }
    first = load_dataset(cfg, tmp_path / "cache")
    assert load_dataset(cfg, tmp_path / "cache").dataset_hash == first.dataset_hash
    target = data / "P02" / "PolarH10" / "ECG.csv"
    target.write_bytes((other / "P02" / "PolarH10" / "ECG.csv").read_bytes())
    replaced = load_dataset(cfg, tmp_path / "cache")
    assert len(_entries(tmp_path / "cache")) == 2
    assert replaced.dataset_hash != first.dataset_hash


def test_same_build_gives_the_same_hash(wfdb_dir: Path, tmp_path: Path) -> None:
    cfg = _mitbih_cfg(wfdb_dir)
    built = load_dataset(cfg, tmp_path / "a")
    rebuilt = load_dataset(cfg, tmp_path / "a", rebuild=True)
    elsewhere = load_dataset(cfg, tmp_path / "b")  # another cache, another build
    assert built.dataset_hash == rebuilt.dataset_hash == elsewhere.dataset_hash
    # the stored hash is the hash of the arrays as loaded, and of the builder's own output
    assert compute_dataset_hash(built) == built.dataset_hash
    direct = mitbih_module.build(wfdb_dir, records=[*DS1_FEW, *DS2_FEW], val_records=["106"])
    assert direct.dataset_hash is None and compute_dataset_hash(direct) == built.dataset_hash


def test_dataset_hash_covers_arrays_groups_and_labels() -> None:
    base = compute_dataset_hash(_dataset())
    assert compute_dataset_hash(_dataset()) == base and len(base) == DATASET_HASH_CHARS

    def changed(edit: Callable[[SignalDataset], None]) -> str:
        ds = _dataset()
        edit(ds)
        return compute_dataset_hash(ds)

    def bump_x(ds: SignalDataset) -> None:
        ds.test.x[0, 0, 0] += 1.0

    def flip_y(ds: SignalDataset) -> None:
        ds.val.y[0] = (ds.val.y[0] + 1) % 3

    def regroup(ds: SignalDataset) -> None:
        ds.train.groups[0] = "999"

    def rename(ds: SignalDataset) -> None:
        ds.class_names = ["N", "V", "S"]

    def swap_splits(ds: SignalDataset) -> None:
        ds.val, ds.test = ds.test, ds.val

    def add_feature(ds: SignalDataset) -> None:
        for name in ("train", "val", "test"):
            split = ds.split(name)
            split.features = np.ones((len(split), 1), np.float32)
        ds.feature_names = ["rr"]

    for edit in (bump_x, flip_y, regroup, rename, swap_splits, add_feature):
        assert changed(edit) != base, edit.__name__

    def describe(ds: SignalDataset) -> None:  # not data: name, meta, rate
        ds.name, ds.sampling_rate, ds.meta = "other", 250.0, {"note": 1}

    assert changed(describe) == base


def test_simulators_are_keyed_on_parameters_and_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biosignals.data.ppg_synth as ppg_module

    def no_files(directory: str | Path) -> cache.SourceFingerprint:
        raise AssertionError(f"a simulator must not fingerprint files ({directory})")

    monkeypatch.setattr(cache, "source_fingerprint", no_files)
    cfg = OmegaConf.load(REPO / "configs" / "dataset" / "ppg_synth_quick.yaml")
    assert isinstance(cfg, DictConfig)
    ds = load_dataset(cfg, tmp_path)
    assert ds.simulator_version == f"ppg_synth/{ppg_module.SIMULATOR_VERSION}"
    assert ds.dataset_hash == compute_dataset_hash(ds)
    assert load_dataset(cfg, tmp_path).dataset_hash == ds.dataset_hash
    assert len(_entries(tmp_path)) == 1

    before = dataset_cache_key(cfg)
    monkeypatch.setattr(ppg_module, "SIMULATOR_VERSION", ppg_module.SIMULATOR_VERSION + 1)
    assert dataset_cache_key(cfg) != before  # a new simulator never reuses old windows
    ecg = {"_target_": "biosignals.data.mitbih.build_synthetic"}
    ecg_before = dataset_cache_key(ecg)
    monkeypatch.setattr(mitbih_module, "SIMULATOR_VERSION", mitbih_module.SIMULATOR_VERSION + 1)
    assert dataset_cache_key(ecg) != ecg_before


def test_ecg_simulator_reports_its_version(tmp_path: Path) -> None:
    from biosignals.data.ecg_synth import SIMULATOR_VERSION

    ds = load_dataset(
        {
            "_target_": "biosignals.data.mitbih.build_synthetic",
            "records": [*DS1_FEW, *DS2_FEW],
            "duration_s": 20.0,
            "val_records": ["106"],
        },
        tmp_path,
    )
    assert ds.simulator_version == f"ecg_synth/{SIMULATOR_VERSION}"
    assert ds.dataset_hash == compute_dataset_hash(ds)


def test_source_fingerprint_follows_content_not_times(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "P01").mkdir(parents=True)
    (data / "P01" / "PPG.csv").write_text("t,ppg\n0,1\n")
    (data / "RECORDS").write_text("P01\n")
    base = source_fingerprint(data)
    assert (base.files, base.bytes) == (2, 14)
    os.utime(data / "RECORDS", ns=(1, 1))  # times alone: same data
    assert source_fingerprint(data) == base
    (data / ".RECORDS.swp").write_text("editor junk")  # hidden names are skipped
    (data / ".git").mkdir()
    (data / ".git" / "index").write_text("x")
    assert source_fingerprint(data) == base
    (data / "P01" / "PPG.csv").write_text("t,ppg\n0,2\n")  # same size, other bytes
    assert source_fingerprint(data).sha256 != base.sha256
    (data / "P01" / "PPG.csv").write_text("t,ppg\n0,1\n")
    assert source_fingerprint(data) == base
    (data / "P01" / "PPG.csv").rename(data / "P01" / "ppg.csv")  # a rename is a change
    assert source_fingerprint(data).sha256 != base.sha256
    with pytest.raises(DatasetError, match="not a directory"):
        source_fingerprint(tmp_path / "missing")


def test_source_fingerprint_survives_a_symlink_loop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "a" / "x.dat").write_bytes(b"123")
    (data / "a" / "loop").symlink_to(data, target_is_directory=True)
    assert source_fingerprint(data).files == 1


def test_files_changing_during_a_build_are_not_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from biosignals import config_safety

    data = tmp_path / "data"
    data.mkdir()
    (data / "value.txt").write_text("1")

    def reader(data_dir: str, cache_dir: str | None = None) -> SignalDataset:
        path = Path(data_dir) / "value.txt"
        seed = int(path.read_text())
        path.write_text(str(seed + 1))  # as if a download were still writing
        return _dataset(seed=seed)

    reader.__module__ = mitbih_module.__name__
    monkeypatch.setattr(mitbih_module, "test_fake_builder", reader, raising=False)
    monkeypatch.setitem(config_safety._DATASET_BUILDERS, id(reader), reader)
    with pytest.raises(DatasetError, match=r"changed while dataset .* was being built"):
        load_dataset({"_target_": FAKE_TARGET, "data_dir": str(data)}, tmp_path / "cache")
    assert _entries(tmp_path / "cache") == []


def test_unset_data_dir_still_gets_the_builders_message(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dataset\.data_dir is not set"):
        load_dataset({"_target_": "biosignals.data.mitbih.build", "data_dir": None}, tmp_path)
    with pytest.raises(DatasetError, match="is not a directory"):
        load_dataset(
            {"_target_": "biosignals.data.mitbih.build", "data_dir": str(tmp_path / "no")},
            tmp_path,
        )
