"""The hash-keyed dataset cache: keys, build-once semantics, atomic writes, load speed."""

from __future__ import annotations

import threading
import time
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
)
from biosignals.data.dataset import DatasetError, SignalDataset, Split

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
