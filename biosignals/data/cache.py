"""On-disk cache of built datasets, keyed by the dataset config and the data it reads.

A trial never regenerates or re-segments data: `load_dataset` computes the key
(`dataset_cache_key`), finds ``<cache_dir>/datasets/<key>/`` and loads its arrays (one
uncompressed .npy per array: a 100k-window ECG dataset loads in a fraction of a second), or
calls the builder named by the config's ``_target_`` once and stores its result there.

What the key covers (so a changed input never reuses a stale entry):

* the resolved config, the cache format and the builder module's ``DATASET_VERSION``;
* for a builder that reads files (it takes a ``data_dir`` argument: the real MIT-BIH and
  GalaxyPPG loaders), a fingerprint of every file under ``data_dir`` (`source_fingerprint`:
  the relative name, size and SHA-256 of the content of each), so files replaced under the
  same path rebuild the entry; hashing reads the files, about 0.1 s per 100 MB when they are
  in the page cache;
* for a simulator (no ``data_dir``), its module's ``SIMULATOR_VERSION``.

Each entry also records the `compute_dataset_hash` of the arrays it holds: the loaded
dataset's `SignalDataset.dataset_hash`, which runs record as their data's identity.

Layout of one entry::

    <cache_dir>/datasets/<key[:32]>/
        meta.json              name, task, class names, rate, meta, dataset_hash,
                               simulator_version, the source fingerprint, config and full key
        train_x.npy  train_y.npy  train_groups.npy  train_features.npy   (same for val, test)

Writes go to a temporary sibling directory that is renamed into place (`os.replace`, atomic
on one filesystem), under an exclusive `fcntl` lock on ``<entry>.lock``: when several Ray trials
ask for the same dataset at once, one builds it and the others wait, then read it. The same
helper (`build_once`) guards the simulator's generated WFDB records.

The cache directory is the `cache_dir` argument, else the ``AGENTUNE_CACHE_DIR`` environment
variable, else ``~/.cache/agentune``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from biosignals.data.dataset import (
    SPLITS,
    DatasetError,
    SignalDataset,
    Split,
    compute_dataset_hash,
)

try:  # POSIX only; elsewhere concurrent builders may both build, and one rename wins.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 3  # 3: dataset_hash, simulator_version, source fingerprint in meta
"""Bumped when the on-disk layout changes; part of every key."""

_NOT_IN_KEY = frozenset({"cache_dir", "n_jobs"})  # where and how fast, not what
SOURCE_ARG = "data_dir"
"""The builder argument naming the directory a builder reads its files from."""
_SLOW_FINGERPRINT_S = 5.0  # warn above this: every load of the dataset pays it


@dataclass(frozen=True)
class SourceFingerprint:
    """What `source_fingerprint` found under a data directory.

    Attributes:
        files: number of files hashed.
        bytes: their total size.
        sha256: hex SHA-256 over each file's relative name, size and content SHA-256.
    """

    files: int
    bytes: int
    sha256: str


def _data_files(root: Path) -> list[tuple[str, Path]]:
    """(relative POSIX name, path) of every regular file under `root`, sorted by name.

    Names starting with "." (and what is below such directories) are skipped: editor swap
    files, .DS_Store, version-control metadata; no builder reads them. Symbolic links are
    followed, each directory visited once.
    """
    found: list[tuple[str, Path]] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # a link back up the tree
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if not name.startswith(".") and path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def source_fingerprint(directory: str | Path) -> SourceFingerprint:
    """Fingerprint the files under `directory` by name, size and content.

    Any change to a file's bytes, a new, removed or renamed file changes the fingerprint;
    the directory's own path and the files' times do not (the config already holds the
    path; a copy with fresh timestamps is the same data). Hidden names are skipped (see
    `_data_files`).

    Raises:
        DatasetError: `directory` is not a directory, or a file cannot be read.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DatasetError(f"cannot fingerprint {root}: not a directory")
    started = time.perf_counter()
    total = hashlib.sha256()
    n_bytes = 0
    files = _data_files(root)
    for name, path in files:
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                content = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as e:
            raise DatasetError(f"cannot read {path} to fingerprint the data: {e}") from e
        n_bytes += size
        total.update(f"{name}\0{size}\0{content}\n".encode())
    elapsed = time.perf_counter() - started
    log = logger.warning if elapsed > _SLOW_FINGERPRINT_S else logger.debug
    log(
        "fingerprinted %d files (%.1f MB) under %s in %.2f s%s",
        len(files), n_bytes / 1e6, root, elapsed,
        "; every load of this dataset re-reads them: point data_dir at the data only"
        if elapsed > _SLOW_FINGERPRINT_S else "",
    )  # fmt: skip
    return SourceFingerprint(files=len(files), bytes=n_bytes, sha256=total.hexdigest())


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else $AGENTUNE_CACHE_DIR, else ~/.cache/agentune (expanded, not created)."""
    if cache_dir is not None and str(cache_dir).strip():
        return Path(cache_dir).expanduser()
    env = os.environ.get("AGENTUNE_CACHE_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agentune"


def _plain_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The config as plain JSON-able containers, interpolations resolved."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
    plain = OmegaConf.to_container(node, resolve=True)
    if not isinstance(plain, dict):
        raise DatasetError(f"a dataset config must be a mapping, got {type(plain).__name__}")
    return {str(k): v for k, v in plain.items()}


def _builder(target: object) -> tuple[Callable[..., Any], Any]:
    """Resolve the builder function named by `_target_`; returns (function, its module).

    The target goes through `biosignals.config_safety.resolve_target` (a registered dataset
    builder under `biosignals.data.`, reached without detours), like every other target.
    """
    from biosignals.config_safety import UnsafeTargetError, resolve_target

    if not isinstance(target, str):
        raise DatasetError(
            f"dataset _target_ must be a dotted path string, got {target!r}; use e.g. "
            "biosignals.data.mitbih.build_synthetic"
        )
    try:
        fn = resolve_target(target)
    except UnsafeTargetError as e:
        raise DatasetError(
            f"dataset _target_ {target!r} is not a registered dataset builder: {e}; use e.g. "
            "biosignals.data.mitbih.build_synthetic"
        ) from e
    if not (callable(fn) and not isinstance(fn, type)):
        raise DatasetError(
            f"dataset _target_ {target!r} is not a dataset builder function; use e.g. "
            "biosignals.data.mitbih.build_synthetic"
        )
    return fn, sys.modules[fn.__module__]


def _reads_files(fn: Callable[..., Any]) -> bool:
    try:
        return SOURCE_ARG in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to inspect: assume it generates
        return False


def _key_payload(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    plain = _plain_config(cfg)
    if "_target_" not in plain:
        raise DatasetError(
            f"a dataset config needs a _target_ builder, got keys {sorted(plain)}; "
            "see configs/dataset/*.yaml"
        )
    fn, module = _builder(plain["_target_"])
    payload: dict[str, Any] = {
        "config": {k: v for k, v in plain.items() if k not in _NOT_IN_KEY},
        "cache_format": CACHE_FORMAT_VERSION,
        "builder_version": getattr(module, "DATASET_VERSION", None),
    }
    if _reads_files(fn):
        data_dir = plain.get(SOURCE_ARG)
        # An unset or missing directory: no fingerprint; the builder then says what is wrong.
        if data_dir is not None and str(data_dir).strip() and Path(data_dir).expanduser().is_dir():
            payload["source"] = asdict(source_fingerprint(data_dir))
    else:
        payload["simulator_version"] = getattr(module, "SIMULATOR_VERSION", None)
    return payload


def _digest(payload: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError) as e:
        raise DatasetError(f"a dataset config must hold plain JSON values to be hashed: {e}") from e
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_cache_key(cfg: DictConfig | Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the dataset config and the data it reads.

    The hashed document is the resolved config (``_target_`` included; ``cache_dir`` and
    ``n_jobs`` left out: they change where and how fast, not what), the cache format version,
    the builder module's ``DATASET_VERSION`` (so changing a builder's output invalidates old
    entries) and either the `source_fingerprint` of ``data_dir`` (builders that take a
    ``data_dir``: files replaced under the same path give another key) or the builder
    module's ``SIMULATOR_VERSION`` (simulators). Key order and interpolation do not matter;
    values do (``1800`` and ``1800.0`` differ).

    Raises:
        DatasetError: no ``_target_``, one outside ``biosignals.``, a value JSON cannot
            hold (NaN, objects), or an unreadable file under ``data_dir``.
    """
    return _digest(_key_payload(cfg))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def build_once(
    final: Path,
    build: Callable[[Path], None],
    is_valid: Callable[[Path], bool] = Path.is_dir,
) -> Path:
    """Make sure directory `final` exists, filling it with `build(tmp_dir)` at most once.

    `build` writes into a fresh temporary sibling directory, which is then renamed to `final`;
    an exclusive lock on ``<final>.lock`` serialises builders across processes, and a builder
    that finds `final` valid after taking the lock returns at once. A `final` that exists but
    fails `is_valid` is removed and rebuilt. Returns `final`.
    """
    if is_valid(final):
        return final
    with _locked(final.with_name(final.name + ".lock")):
        if is_valid(final):
            return final
        if final.exists():
            logger.warning("removing invalid cache entry %s", final)
            shutil.rmtree(final)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        try:
            build(tmp)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def save_dataset(
    dataset: SignalDataset, directory: str | Path, extra_meta: Mapping[str, Any] | None = None
) -> None:
    """Write `dataset` into `directory` (created): one .npy per array plus meta.json.

    meta.json holds the `compute_dataset_hash` of the arrays written (`read_dataset` gives it
    back as `SignalDataset.dataset_hash`) and the dataset's ``simulator_version``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        split = dataset.split(name)
        np.save(directory / f"{name}_x.npy", np.ascontiguousarray(split.x, dtype=np.float32))
        np.save(directory / f"{name}_y.npy", np.ascontiguousarray(split.y))
        np.save(directory / f"{name}_groups.npy", np.asarray(split.groups).astype(np.str_))
        np.save(
            directory / f"{name}_features.npy",
            np.ascontiguousarray(split.features, dtype=np.float32),
        )
    meta = {
        "cache_format": CACHE_FORMAT_VERSION,
        "name": dataset.name,
        "task": dataset.task,
        "class_names": list(dataset.class_names),
        "sampling_rate": dataset.sampling_rate,
        "target_name": dataset.target_name,
        "feature_names": list(dataset.feature_names),
        "meta": dataset.meta,
        # of the arrays as written, whatever the builder set
        "dataset_hash": compute_dataset_hash(dataset),
        "simulator_version": dataset.simulator_version,
        **(extra_meta or {}),
    }
    try:
        text = json.dumps(meta, indent=2, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DatasetError(
            f"dataset {dataset.name}: meta must be JSON-serialisable to be cached: {e}"
        ) from e
    (directory / "meta.json").write_text(text)


def read_dataset(directory: str | Path) -> SignalDataset:
    """Load a dataset written by `save_dataset`.

    Raises:
        DatasetError: files are missing or from another cache format.
    """
    directory = Path(directory)
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("cache_format") != CACHE_FORMAT_VERSION:
            raise DatasetError(
                f"{directory} has cache format {meta.get('cache_format')}, "
                f"expected {CACHE_FORMAT_VERSION}"
            )
        splits = {
            name: Split(
                np.load(directory / f"{name}_x.npy", allow_pickle=False),
                np.load(directory / f"{name}_y.npy", allow_pickle=False),
                np.load(directory / f"{name}_groups.npy", allow_pickle=False),
                np.load(directory / f"{name}_features.npy", allow_pickle=False),
            )
            for name in SPLITS
        }
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(f"cannot read cached dataset {directory}: {e}") from e
    return SignalDataset(
        name=meta["name"],
        task=meta["task"],
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        class_names=list(meta["class_names"]),
        sampling_rate=float(meta["sampling_rate"]),
        target_name=meta["target_name"],
        feature_names=list(meta["feature_names"]),
        meta=dict(meta["meta"]),
        dataset_hash=meta.get("dataset_hash"),
        simulator_version=meta.get("simulator_version"),
    )


def _entry_ok(directory: Path) -> bool:
    return (directory / "meta.json").is_file() and all(
        (directory / f"{s}_{a}.npy").is_file()
        for s in SPLITS
        for a in ("x", "y", "groups", "features")
    )


def load_dataset(
    dataset_cfg: DictConfig | Mapping[str, Any],
    cache_dir: str | Path | None = None,
    *,
    rebuild: bool = False,
) -> SignalDataset:
    """The dataset described by `dataset_cfg`, from the cache or built once and cached.

    Args:
        dataset_cfg: a dataset config (``configs/dataset/*.yaml``): ``_target_`` names a builder
            under ``biosignals.``; the other keys are its keyword arguments.
        cache_dir: cache root (see `resolve_cache_dir`); also passed to the builder as
            ``cache_dir`` when it takes one and the config does not set it.
        rebuild: ignore and replace an existing entry.

    Returns:
        The `SignalDataset`; ``meta["cache_key"]`` holds the key, ``dataset_hash`` the hash
        of its arrays and ``simulator_version`` what the builder set (None for files read).

    Raises:
        DatasetError: bad ``_target_``, source files that changed while the dataset was
            being built (load again), or whatever the builder raises about its data.
    """
    payload = _key_payload(dataset_cfg)
    key = _digest(payload)
    root = resolve_cache_dir(cache_dir)
    entry = root / "datasets" / key[:32]
    if rebuild and entry.exists():
        with _locked(entry.with_name(entry.name + ".lock")):
            shutil.rmtree(entry, ignore_errors=True)

    def build(tmp: Path) -> None:
        plain = _plain_config(dataset_cfg)
        fn, _ = _builder(plain["_target_"])
        kwargs = {k: v for k, v in plain.items() if not k.startswith("_")}
        if "cache_dir" in inspect.signature(fn).parameters and kwargs.get("cache_dir") is None:
            kwargs["cache_dir"] = str(root)
        started = time.perf_counter()
        logger.info("dataset cache miss (%s): building with %s", key[:12], plain["_target_"])
        dataset = fn(**kwargs)
        if not isinstance(dataset, SignalDataset):
            raise DatasetError(
                f"builder {plain['_target_']} returned {type(dataset).__name__}, not SignalDataset"
            )
        source = payload.get("source")
        if source is not None and asdict(source_fingerprint(plain[SOURCE_ARG])) != source:
            raise DatasetError(
                f"the files under {plain[SOURCE_ARG]} changed while dataset "
                f"{dataset.name} was being built from them, so it was not cached; load it "
                "again once they are complete"
            )
        save_dataset(dataset, tmp, {"cache_key": key, "config": plain, "source": source})
        logger.info(
            "built and cached %s in %.1f s at %s",
            dataset.name,
            time.perf_counter() - started,
            entry,
        )

    started = time.perf_counter()
    build_once(entry, build, is_valid=_entry_ok)
    try:
        dataset = read_dataset(entry)
    except DatasetError as e:  # truncated files, older format: rebuild once
        logger.warning("%s; rebuilding", e)
        with _locked(entry.with_name(entry.name + ".lock")):
            shutil.rmtree(entry, ignore_errors=True)
        build_once(entry, build, is_valid=_entry_ok)
        dataset = read_dataset(entry)
    dataset.meta["cache_key"] = key
    logger.debug("loaded %s from %s in %.2f s", dataset.name, entry, time.perf_counter() - started)
    return dataset
