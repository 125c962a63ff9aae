"""The Parquet-backed store of a campaign's runs, epoch curves and events.

Layout under the store root (``<campaign_dir>/history/``)::

    runs/    L<level>-<write_seq>-<uuid>.parquet   RUNS_SCHEMA
    curves/  L<level>-<write_seq>-<uuid>.parquet   CURVES_SCHEMA
    events/  L<level>-<write_seq>-<uuid>.parquet   EVENTS_SCHEMA

Each table directory is a plain Parquet dataset: ``pyarrow.dataset.dataset("runs/")``,
``pandas.read_parquet("runs/")``, ``duckdb``'s ``read_parquet('runs/*.parquet')`` and
``polars.read_parquet`` read it without this package (deduplicate by the key, largest
``write_seq`` wins, when a run was appended more than once).

Writes (an LSM tree, size-tiered by file count):

* Every append writes ONE new level-0 file: to a temporary name (``.tmp-*``, which readers
  ignore), then ``os.replace`` to its final name. A process killed at any point leaves either
  the whole file or no file; nothing already in the store is touched, so nothing is lost.
  Append never reads or rewrites the store: its cost does not grow with the store.
* Temp files of killed writes are ignored by readers and deleted by a later merge once an
  hour old.
* When a level holds ``fanout`` files, they are merged into one file of the next level
  (deduplicated by key; runs sorted by campaign, arm, write order, in row groups of 8,192 so
  filters skip most of them), written the same atomic way; only then are the inputs
  deleted. A kill between the two steps leaves the records twice, which readers
  deduplicate. :meth:`FeedbackStore.compact` merges everything into one file per table.

Reads list the directory, read each file (campaign/arm/tier filters pushed down to Parquet;
files read whole are cached in memory: files are immutable, so the cache is always
consistent), concatenate, deduplicate by key (largest ``write_seq`` wins) and sort by write
order. Because filters on campaign, arm and tier run before deduplication, those three
must not change when a run_id is appended again (status, value, ... may).

A file that cannot be read (truncated, corrupt) is skipped with a
:class:`CorruptFragmentWarning` naming it and listed in :attr:`FeedbackStore.skipped`; a
file with another schema raises :class:`FeedbackSchemaError` naming the file and the field.

One writer per store (the campaign driver); any number of readers, in any process.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._configs import ConfigResult, rank_configs
from ._errors import CorruptFragmentWarning, FeedbackError
from ._records import Event, ParamValue, RunRecord, load_epoch_metrics
from ._schema import KEYS, SCHEMA_VERSION, SCHEMAS, check_schema, conform_table

if TYPE_CHECKING:
    from .signals import SignalThresholds

__all__ = ["FeedbackStore"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^L(\d+)-(\d+)-([0-9a-f]+)\.parquet$")
_KINDS = ("runs", "curves", "events")
#: Sort order of merged files: campaign (and arm) first, so filters skip row groups.
_SORT = {
    "runs": [("campaign", "ascending"), ("arm", "ascending"), ("write_seq", "ascending")],
    "curves": [("campaign", "ascending"), ("write_seq", "ascending"), ("epoch", "ascending")],
    "events": [("campaign", "ascending"), ("write_seq", "ascending")],
}
_READ_RETRIES = 8
_STALE_TMP_S = 3600.0
_MEMO_SIZE = 16
_ROW_GROUP = 8192
#: What reading a damaged file raises (with page checksums on): truncated or garbled
#: footers and pages give ArrowInvalid/OSError, garbled metadata strings UnicodeDecodeError.
_CORRUPT = (pa.ArrowInvalid, OSError, UnicodeDecodeError)


def _level(name: str) -> int | None:
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


_Filters = tuple[tuple[str, tuple[Any, ...]], ...]


def _filters(**columns: object) -> _Filters:
    """Normalise keyword filters (None: no filter; a value or a collection of values)."""
    out = []
    for column, value in sorted(columns.items()):
        if value is None:
            continue
        if isinstance(value, str | int) or not isinstance(value, Collection):
            out.append((column, (value,)))
        else:
            out.append((column, tuple(sorted(value))))
    return tuple(out)


def _expression(filters: _Filters, schema: pa.Schema) -> pc.Expression:
    expr = None
    for column, values in filters:
        if len(values) == 1:
            cond = pc.field(column) == values[0]
        else:
            cond = pc.field(column).isin(pa.array(list(values), type=schema.field(column).type))
        expr = cond if expr is None else expr & cond
    return expr


def _apply(table: pa.Table, filters: _Filters) -> pa.Table:
    mask = None
    for column, values in filters:
        cond = _is_in(table[column], values[0] if len(values) == 1 else list(values))
        mask = cond if mask is None else pc.and_(mask, cond)
    return table if mask is None else table.filter(mask)


def _write_order(name: str) -> tuple[int, str]:
    match = _NAME.match(name)
    return (int(match.group(2)), name) if match else (0, name)


def _is_in(column: pa.ChunkedArray, value: object) -> pa.ChunkedArray:
    if isinstance(value, str | int) or not isinstance(value, Collection):
        return pc.equal(column, pa.scalar(value, type=column.type))
    return pc.is_in(column, value_set=pa.array(list(value), type=column.type))


def latest_by_key(table: pa.Table, key: str) -> pa.Table:
    """Keep, for each ``key``, the rows written last (largest ``write_seq``).

    For ``runs``/``events`` (one row per key) the first of tied rows is kept. For ``curves``
    (``key`` ``run_id`` and an ``epoch`` column) all rows of the newest write of each run are
    kept, with exact repeats (the same write merged twice) dropped.
    """
    if table.num_rows == 0:
        return table
    if "epoch" in table.column_names:
        return _latest_curves(table)
    if pc.count_distinct(table[key]).as_py() == table.num_rows:  # the common case
        return table
    keys = table[key].to_numpy(zero_copy_only=False)
    order = pc.sort_indices(  # by key, then write_seq: the last row of each key wins
        table, sort_keys=[(key, "ascending"), ("write_seq", "ascending")]
    ).to_numpy()
    sorted_keys = keys[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    return table.take(pa.array(np.sort(order[last])))


def _latest_curves(table: pa.Table) -> pa.Table:
    groups = table.group_by("run_id").aggregate([("write_seq", "max"), ("write_seq", "min")])
    if pc.all(pc.equal(groups["write_seq_max"], groups["write_seq_min"])).as_py():
        kept = table
    else:
        latest = groups.select(["run_id", "write_seq_max"]).rename_columns(["run_id", "write_seq"])
        kept = table.join(latest, keys=["run_id", "write_seq"], join_type="left semi")
    cols = [c for c in table.column_names if c != "value"]
    distinct = kept.group_by(cols, use_threads=False).aggregate([("value", "max")])
    if distinct.num_rows == kept.num_rows and kept is table:
        return table
    out = distinct.rename_columns([*cols, "value"]).select(table.column_names)
    out = out.cast(table.schema)
    return out.sort_by([("write_seq", "ascending"), ("epoch", "ascending"), ("name", "ascending")])


class FeedbackStore:
    """Append-only Parquet history of campaigns (runs, epoch curves, events).

    Example::

        store = FeedbackStore(campaign_dir / "history")
        store.append(RunRecord.from_run_dir(run_dir, run_id=..., campaign="ecg", ...))
        store.append_curve(run_id, load_epoch_metrics(run_dir), campaign="ecg")
        best = store.best("ecg")
        text = store.history_for_agent("ecg", max_chars=4000)

    Args:
        root: Store directory; created if missing.
        fanout: Files per level that trigger a merge into the next level (>= 2). Bigger
            means cheaper appends and slower cold reads.
        fsync: Also ``fsync`` each new file and its directory, so appends survive power loss
            and OS crashes, not only a killed process (costs a few ms per append).
        cache_max_rows: Files with at most this many rows are kept in memory after the first
            read; larger ones are re-read (with the campaign filter pushed down) each time.

    Raises:
        FeedbackError: ``root`` exists and is not a directory, or ``fanout`` < 2.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fanout: int = 32,
        fsync: bool = False,
        cache_max_rows: int = 250_000,
    ) -> None:
        if isinstance(fanout, bool) or not isinstance(fanout, int) or fanout < 2:
            raise FeedbackError(f"fanout must be an integer >= 2, but got {fanout!r}.")
        self._root = Path(root)
        if self._root.exists() and not self._root.is_dir():
            raise FeedbackError(
                f"the store root must be a directory, but {str(self._root)!r} is a file; "
                "pass <campaign_dir>/history."
            )
        for kind in _KINDS:
            (self._root / kind).mkdir(parents=True, exist_ok=True)
        self._fanout = fanout
        self._fsync = fsync
        self._cache_max_rows = cache_max_rows
        self._cache: dict[str, dict[str, pa.Table]] = {kind: {} for kind in _KINDS}
        self._memo: dict[tuple[str, _Filters], tuple[tuple[str, ...], pa.Table]] = {}
        self._skipped: dict[str, str] = {}
        self._last_seq = 0

    # --- properties -----------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The store directory."""
        return self._root

    @property
    def skipped(self) -> dict[str, str]:
        """Files skipped as unreadable (path -> reason), since this store object was made."""
        return dict(self._skipped)

    def __repr__(self) -> str:
        return f"FeedbackStore({str(self._root)!r})"

    # A store pickles (and copies) as its root and options: the copy re-opens the folder with
    # empty caches, which are a per-object read optimisation, not state (the files are).
    def __getstate__(self) -> dict[str, Any]:
        return {
            "root": str(self._root),
            "fanout": self._fanout,
            "fsync": self._fsync,
            "cache_max_rows": self._cache_max_rows,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        FeedbackStore.__init__(
            self,
            state["root"],
            fanout=state["fanout"],
            fsync=state["fsync"],
            cache_max_rows=state["cache_max_rows"],
        )

    # --- writing --------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._last_seq = max(time.time_ns(), self._last_seq + 1)
        return self._last_seq

    def append(self, record: RunRecord) -> None:
        """Store one run, durably and atomically (see the module docstring).

        Appending a ``run_id`` again replaces the earlier record (last write wins); keep its
        ``campaign``, ``arm`` and ``tier`` (queries filter on them before deduplicating).
        Cost: one small file write, never a read of the store, plus every ``fanout``
        appends a merge of ``fanout`` files.

        Raises:
            TypeError: ``record`` is not a :class:`RunRecord`.
        """
        self.append_many([record])

    def append_many(self, records: Iterable[RunRecord]) -> None:
        """Store several runs in one file (atomically: all or none)."""
        rows = []
        for record in records:
            if not isinstance(record, RunRecord):
                raise TypeError(f"append takes RunRecord objects, but got {type(record)!r}.")
            rows.append(record._to_row(self._next_seq(), SCHEMA_VERSION))
        if rows:
            self._write("runs", pa.Table.from_pylist(rows, schema=SCHEMAS["runs"]))

    def append_curve(
        self,
        run_id: str,
        epochs: Sequence[Mapping[str, Any]],
        *,
        campaign: str | None = None,
    ) -> None:
        """Store the per-epoch metrics of a run (replacing any curve stored for it before).

        Args:
            run_id: The run.
            epochs: One mapping per epoch, as in ``metrics.jsonl`` (an ``epoch`` key plus
                metric names); non-numeric values are ignored. Use :func:`load_epoch_metrics`.
            campaign: Campaign of the run (lets curve queries filter by campaign).

        Raises:
            FeedbackError: An epoch has no integer ``epoch``.
        """
        if not isinstance(run_id, str) or not run_id:
            raise FeedbackError(f"run_id must be a non-empty string, but got {run_id!r}.")
        seq = self._next_seq()
        cols: dict[str, list[Any]] = {"run_id": [], "epoch": [], "name": [], "value": []}
        for i, row in enumerate(epochs):
            epoch = row.get("epoch")
            if isinstance(epoch, bool) or not isinstance(epoch, int | float):
                raise FeedbackError(
                    f"each epoch needs a numeric 'epoch' key, but epoch #{i} of {run_id!r} is "
                    f"{dict(row)!r}."
                )
            for name, value in row.items():
                if name == "epoch" or isinstance(value, bool):
                    continue
                if isinstance(value, int | float):
                    cols["run_id"].append(run_id)
                    cols["epoch"].append(int(epoch))
                    cols["name"].append(str(name))
                    cols["value"].append(float(value))
        n = len(cols["run_id"])
        table = pa.Table.from_pydict(
            {
                "schema_version": [SCHEMA_VERSION] * n,
                "run_id": cols["run_id"],
                "campaign": [campaign] * n,
                "epoch": cols["epoch"],
                "name": cols["name"],
                "value": cols["value"],
                "write_seq": [seq] * n,
            },
            schema=SCHEMAS["curves"],
        )
        if n == 0:  # an empty curve still replaces an older one
            table = pa.Table.from_pylist(
                [
                    {
                        "schema_version": SCHEMA_VERSION,
                        "run_id": run_id,
                        "campaign": campaign,
                        "epoch": 0,
                        "name": "",
                        "value": None,
                        "write_seq": seq,
                    }
                ],
                schema=SCHEMAS["curves"],
            )
        self._write("curves", table)

    def append_event(self, event: Event) -> None:
        """Store one event (an ``event_id`` appended again replaces the earlier one)."""
        if not isinstance(event, Event):
            raise TypeError(f"append_event takes an Event, but got {type(event)!r}.")
        row = event._to_row(self._next_seq(), SCHEMA_VERSION)
        self._write("events", pa.Table.from_pylist([row], schema=SCHEMAS["events"]))

    def append_run_dir(
        self,
        run_dir: str | Path,
        *,
        run_id: str,
        campaign: str,
        arm: str,
        tier: int,
        origin: str,
        trial_id: str | None = None,
        overrides: Iterable[str] = (),
        params: Mapping[str, ParamValue] | None = None,
        **kwargs: Any,
    ) -> RunRecord:
        """Append the record and the epoch curve of a trainer run directory.

        Takes the arguments of :meth:`RunRecord.from_run_dir`; returns the stored record.
        """
        record = RunRecord.from_run_dir(
            run_dir,
            run_id=run_id,
            campaign=campaign,
            arm=arm,
            tier=tier,
            origin=origin,
            trial_id=trial_id,
            overrides=overrides,
            params=params,
            **kwargs,
        )
        self.append_curve(run_id, load_epoch_metrics(run_dir), campaign=campaign)
        self.append(record)
        return record

    def _write(self, kind: str, table: pa.Table) -> None:
        self._write_file(kind, table, level=0)
        self._maybe_merge(kind)

    def _write_file(self, kind: str, table: pa.Table, *, level: int) -> str:
        """Write ``table`` as a new file of ``level`` atomically; returns its name."""
        directory = self._root / kind
        seq = int(pc.max(table["write_seq"]).as_py() or 0) if table.num_rows else 0
        name = f"L{level}-{seq:019d}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = directory / f".tmp-{uuid.uuid4().hex}.parquet"
        try:
            with open(tmp, "wb") as fh:
                pq.write_table(
                    table,
                    fh,
                    compression="zstd" if level > 0 else "none",
                    row_group_size=_ROW_GROUP,
                    write_page_checksum=True,
                )
                if self._fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, directory / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._fsync:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if table.num_rows <= self._cache_max_rows:
            self._cache[kind][name] = table.replace_schema_metadata(SCHEMAS[kind].metadata)
        return name

    def _list(self, kind: str) -> list[str]:
        with os.scandir(self._root / kind) as it:
            return sorted(e.name for e in it if _NAME.match(e.name))

    def _maybe_merge(self, kind: str) -> None:
        level = 0
        while True:
            names = [n for n in self._list(kind) if _level(n) == level]
            if len(names) < self._fanout:
                return
            self._merge(kind, names, level + 1)
            level += 1

    def _merge(self, kind: str, names: list[str], level: int) -> None:
        """Merge ``names`` into one file of ``level``; delete them only once it exists."""
        parts: list[pa.Table] = []
        merged_names: list[str] = []
        for name in names:
            try:
                table = self._read(kind, name, ())
            except FileNotFoundError:  # merged by another writer meanwhile
                continue
            if table is None:  # unreadable: leave it where it is, reported
                continue
            parts.append(table)
            merged_names.append(name)
        if not merged_names:
            return
        table = latest_by_key(pa.concat_tables(parts), KEYS[kind]).sort_by(_SORT[kind])
        self._write_file(kind, table, level=level)
        for name in merged_names:
            (self._root / kind / name).unlink(missing_ok=True)
            self._cache[kind].pop(name, None)
        self._remove_stale_temp_files(kind)
        logger.debug("merged %d %s files into level %d", len(merged_names), kind, level)

    def _remove_stale_temp_files(self, kind: str) -> None:
        """Delete temp files of writes killed long ago (no live write takes an hour)."""
        cutoff = time.time() - _STALE_TMP_S
        with os.scandir(self._root / kind) as it:
            for entry in it:
                if entry.name.startswith(".tmp-") and entry.stat().st_mtime < cutoff:
                    Path(entry.path).unlink(missing_ok=True)

    def compact(self) -> None:
        """Merge every readable file of every table into one file per table.

        Safe at any moment for records (the merged file is in place before any input is
        deleted); unreadable files are left where they are.
        """
        for kind in _KINDS:
            names = self._list(kind)
            if len(names) <= 1:
                continue
            top = max((_level(n) or 0) for n in names)
            self._merge(kind, names, top + 1)

    # --- reading --------------------------------------------------------------------

    def _skip(self, path: Path, error: BaseException) -> None:
        key = str(path)
        if key not in self._skipped:
            reason = f"{type(error).__name__}: {error}"
            self._skipped[key] = reason
            message = f"skipping unreadable store file {key}: {reason}"
            logger.warning(message)
            warnings.warn(message, CorruptFragmentWarning, stacklevel=4)

    def _read(self, kind: str, name: str, filters: _Filters) -> pa.Table | None:
        """One file's rows matching ``filters``; None if the file is unreadable.

        A file read whole (no filters, or all its rows match) is cached when it has at most
        ``cache_max_rows`` rows. Filters are pushed down to Parquet (row-group statistics;
        merged files are sorted by campaign then arm, so most row groups are skipped).

        Raises:
            FileNotFoundError: The file was merged away meanwhile (callers re-list).
            FeedbackSchemaError: The file has another schema.
        """
        cached = self._cache[kind].get(name)
        if cached is not None:
            return _apply(cached, filters)
        path = self._root / kind / name
        if str(path) in self._skipped:
            return None
        try:
            pfile = pq.ParquetFile(path, page_checksum_verification=True)
            schema = pfile.schema_arrow
            rows = pfile.metadata.num_rows
        except FileNotFoundError:
            raise
        except _CORRUPT as e:
            self._skip(path, e)
            return None
        check_schema(schema, SCHEMAS[kind], str(path))
        try:
            if filters:
                table = pq.read_table(
                    path,
                    filters=_expression(filters, SCHEMAS[kind]),
                    schema=SCHEMAS[kind],
                    page_checksum_verification=True,
                )
            else:
                table = pfile.read()
        except FileNotFoundError:
            raise
        except _CORRUPT as e:
            self._skip(path, e)
            return None
        table = conform_table(table, SCHEMAS[kind])  # older versions: new fields null
        if table.num_rows == rows and rows <= self._cache_max_rows:
            self._cache[kind][name] = table
        return table

    def _scan(self, kind: str, filters: _Filters = ()) -> pa.Table:
        """Current rows of ``kind`` (deduplicated, in write order) matching ``filters``.

        ``filters`` may only name identity columns (campaign/arm/tier of runs, campaign of
        events), which never change for a key, so filtering before deduplicating is exact.
        """
        if any(not values for _, values in filters):  # an empty collection matches nothing
            return SCHEMAS[kind].empty_table()
        for _ in range(_READ_RETRIES):
            names = tuple(sorted(self._list(kind), key=_write_order))
            memo = self._memo.get((kind, filters))
            if memo is not None and memo[0] == names:
                return memo[1]
            for stale in set(self._cache[kind]) - set(names):
                del self._cache[kind][stale]
            parts: list[pa.Table] = []
            try:
                for name in names:
                    table = self._read(kind, name, filters)
                    if table is not None:
                        parts.append(table)
            except FileNotFoundError:
                continue  # a merge removed a file after we listed it: list again
            break
        else:
            raise FeedbackError(
                f"could not get a stable listing of {self._root / kind} after "
                f"{_READ_RETRIES} tries: files keep disappearing. Is another process "
                "compacting it in a loop?"
            )
        schema = SCHEMAS[kind]
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        table = latest_by_key(table, KEYS[kind])
        seq = table["write_seq"]
        if (
            table.num_rows > 1
            and not pc.all(pc.greater_equal(seq.slice(1), seq.slice(0, table.num_rows - 1))).as_py()
        ):
            table = table.take(pc.sort_indices(table, [("write_seq", "ascending")]))
        if kind == "curves":
            table = table.filter(pc.not_equal(table["name"], ""))  # empty-curve markers
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.pop(next(iter(self._memo)))
        self._memo[(kind, filters)] = (names, table)
        return table

    def table(
        self,
        *,
        campaign: str | None = None,
        arm: str | Collection[str] | None = None,
        status: str | Collection[str] | None = None,
        tier: int | Collection[int] | None = None,
    ) -> pa.Table:
        """Runs as a ``pyarrow.Table`` (:data:`RUNS_SCHEMA`), one row per run, in write order.

        Each filter takes one value or a collection of values; filters combine with AND.
        ``campaign``, ``arm`` and ``tier`` are pushed down to the Parquet files (they must
        not change when a run is appended again); ``status`` is applied after
        deduplication, so it always sees a run's latest record.
        """
        table = self._scan("runs", _filters(campaign=campaign, arm=arm, tier=tier))
        if status is not None:
            table = table.filter(_is_in(table["status"], status))
        return table

    def runs(
        self,
        *,
        campaign: str | None = None,
        arm: str | Collection[str] | None = None,
        status: str | Collection[str] | None = None,
        tier: int | Collection[int] | None = None,
    ) -> list[RunRecord]:
        """Runs as :class:`RunRecord` objects in write order (filters as in :meth:`table`)."""
        table = self.table(campaign=campaign, arm=arm, status=status, tier=tier)
        return [RunRecord._from_row(row) for row in table.to_pylist()]

    def campaigns(self) -> list[str]:
        """Names of the campaigns with runs or events, sorted."""
        names: set[str] = set()
        for kind in ("runs", "events"):
            names.update(v for v in self._scan(kind)["campaign"].unique().to_pylist() if v)
        return sorted(names)

    def best(
        self,
        campaign: str | None = None,
        *,
        arm: str | Collection[str] | None = None,
        tier: int | Collection[int] | None = None,
        metric: str | None = None,
    ) -> RunRecord | None:
        """The best run: the best-valued run of the configuration with the best mean.

        A configuration (arm + params) evaluated once is ranked by its value, so without
        repeats this is the completed run with the best value (by its mode); earliest wins
        ties. With repeats (`search.repeats`) a lucky single value loses to a configuration
        whose seeds agree on a better mean (`best_config` gives the mean and spread).

        Returns:
            None when no run completed.

        Raises:
            FeedbackError: The selected runs use more than one metric or mode and
                ``metric`` was not given.
        """
        found = self.best_config(campaign, arm=arm, tier=tier, metric=metric)
        return None if found is None else found.best_run

    def best_config(
        self,
        campaign: str | None = None,
        *,
        arm: str | Collection[str] | None = None,
        tier: int | Collection[int] | None = None,
        metric: str | None = None,
    ) -> ConfigResult | None:
        """The configuration with the best mean over its completed runs (see `best`)."""
        table = self.table(campaign=campaign, arm=arm, tier=tier, status="completed")
        if metric is not None:
            table = table.filter(pc.equal(table["metric"], metric))
        if table.num_rows == 0:
            return None
        pairs = table.group_by(["metric", "mode"]).aggregate([]).to_pylist()
        if len(pairs) > 1:
            raise FeedbackError(
                "best() needs one metric and mode, but the runs use "
                f"{[(p['metric'], p['mode']) for p in pairs]}; pass metric=."
            )
        mode = pairs[0]["mode"]
        keys = table.select(["arm", "params"]).to_pylist()
        if len({(k["arm"], k["params"]) for k in keys}) < len(keys):  # repeats: rank by mean
            ranked = rank_configs((RunRecord._from_row(r) for r in table.to_pylist()), mode)
            return ranked[0] if ranked else None
        values = table["value"].to_numpy()
        idx = int(np.argmax(values) if mode == "max" else np.argmin(values))
        run = RunRecord._from_row(table.slice(idx, 1).to_pylist()[0])
        return rank_configs([run], mode)[0]

    def curves(
        self,
        *,
        campaign: str | None = None,
        run_ids: Collection[str] | None = None,
    ) -> pa.Table:
        """Epoch curves in long form (:data:`CURVES_SCHEMA`): run_id, epoch, name, value."""
        table = self._scan("curves")
        if campaign is not None:  # after deduplication: a curve's campaign is optional
            table = table.filter(pc.equal(table["campaign"], campaign))
        if run_ids is not None:
            table = table.filter(_is_in(table["run_id"], list(run_ids)))
        return table

    def curve(self, run_id: str) -> list[dict[str, float]]:
        """The curve of one run in ``metrics.jsonl`` form: one dict per epoch, by epoch."""
        table = self.curves(run_ids=[run_id])
        epochs: dict[int, dict[str, float]] = {}
        for row in table.to_pylist():
            epochs.setdefault(row["epoch"], {"epoch": float(row["epoch"])})[row["name"]] = row[
                "value"
            ]
        return [epochs[e] for e in sorted(epochs)]

    def events(
        self,
        *,
        campaign: str | None = None,
        kind: str | Collection[str] | None = None,
    ) -> list[Event]:
        """Events in write order, optionally filtered by campaign and kind."""
        table = self.event_table(campaign=campaign, kind=kind)
        return [Event._from_row(row) for row in table.to_pylist()]

    def event_table(
        self,
        *,
        campaign: str | None = None,
        kind: str | Collection[str] | None = None,
    ) -> pa.Table:
        """Events as a ``pyarrow.Table`` (:data:`EVENTS_SCHEMA`), in write order."""
        table = self._scan("events", _filters(campaign=campaign))
        if kind is not None:
            table = table.filter(_is_in(table["kind"], kind))
        return table

    def history_for_agent(
        self,
        campaign: str,
        max_chars: int = 4000,
        *,
        thresholds: SignalThresholds | None = None,
    ) -> str:
        """A compact text history of ``campaign`` for an agent's context window.

        Never longer than ``max_chars`` however long the campaign; see
        :func:`feedback.history_text` for the content.
        """
        from ._history import history_text

        return history_text(self, campaign, max_chars=max_chars, thresholds=thresholds)
