"""The fixed, versioned Parquet schemas of the feedback store.

Three tables, each a directory of Parquet files under the store root:

* ``runs/``: one row per run (:class:`feedback.RunRecord`), key ``run_id``.
* ``curves/``: per-epoch metrics in long form, one row per (run, epoch, metric name), key
  ``run_id`` (a curve appended again for the same run replaces the whole curve).
* ``events/``: escalations, approvals, agent summaries and failures, key ``event_id``.

Every file carries the schema version twice: in the Arrow schema metadata
(``agentune.feedback.schema_version``) and in a ``schema_version`` column, so tools that drop
metadata (DuckDB, polars) still see it. ``write_seq`` is a per-store increasing write stamp
(nanoseconds since the epoch): when a key was written more than once, the row with the largest
``write_seq`` wins. JSON columns (``params``, ``test_metrics``, ``data``) hold JSON objects
with sorted keys. Timestamps are microseconds, UTC.

Versions: a file keeps the version it was written with; readers take every version from
:data:`MIN_SCHEMA_VERSION` to :data:`SCHEMA_VERSION` and refuse newer ones. A version only
ever adds nullable fields (:data:`ADDED_FIELDS`), so an older file is read by filling the
fields it lacks with nulls (:func:`conform_table`); its rows keep their ``schema_version``
(the version each row was written with), also after a merge into a newer file.

* 1: the first release.
* 2: run provenance in ``runs``: ``seed``, ``git_commit``, ``dataset_hash``,
  ``simulator_version``.
"""

from __future__ import annotations

import pyarrow as pa

from ._errors import FeedbackSchemaError

__all__ = [
    "ADDED_FIELDS",
    "CURVES_SCHEMA",
    "EVENTS_SCHEMA",
    "KEYS",
    "MIN_SCHEMA_VERSION",
    "RUNS_SCHEMA",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "check_schema",
    "conform_table",
    "schema_at",
]

#: Bump when a field is added, removed or changes type; readers refuse newer versions. A field
#: added in a new version must be nullable and listed in :data:`ADDED_FIELDS`, so files of
#: older versions stay readable.
SCHEMA_VERSION = 2
#: The oldest version readers accept.
MIN_SCHEMA_VERSION = 1

_TS = pa.timestamp("us", tz="UTC")


def _schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    meta = {
        b"agentune.feedback.table": name.encode(),
        b"agentune.feedback.schema_version": str(SCHEMA_VERSION).encode(),
    }
    return pa.schema(
        [pa.field("schema_version", pa.int16(), nullable=False), *fields], metadata=meta
    )


RUNS_SCHEMA = _schema(
    "runs",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("campaign", pa.string(), nullable=False),
        pa.field("trial_id", pa.string()),
        pa.field("arm", pa.string(), nullable=False),
        pa.field("tier", pa.int8(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("overrides", pa.list_(pa.string()), nullable=False),
        pa.field("params", pa.string(), nullable=False),  # JSON object
        pa.field("status", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("best_epoch", pa.int32()),
        pa.field("epochs_run", pa.int32(), nullable=False),
        pa.field("duration_s", pa.float64()),
        pa.field("started_at", _TS),
        pa.field("finished_at", _TS),
        pa.field("error", pa.string()),
        pa.field("model", pa.string()),
        pa.field("num_params", pa.int64()),
        pa.field("approval", pa.string()),
        pa.field("tokens_in", pa.int64(), nullable=False),
        pa.field("tokens_out", pa.int64(), nullable=False),
        pa.field("dataset", pa.string()),
        pa.field("test_metrics", pa.string(), nullable=False),  # JSON object
        pa.field("rationale", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("git_commit", pa.string()),
        pa.field("dataset_hash", pa.string()),
        pa.field("simulator_version", pa.string()),
        pa.field("write_seq", pa.int64(), nullable=False),
    ],
)

CURVES_SCHEMA = _schema(
    "curves",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("campaign", pa.string()),
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("write_seq", pa.int64(), nullable=False),
    ],
)

EVENTS_SCHEMA = _schema(
    "events",
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("campaign", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("time", _TS, nullable=False),
        pa.field("tier", pa.int8()),
        pa.field("run_id", pa.string()),
        pa.field("arm", pa.string()),
        pa.field("message", pa.string(), nullable=False),
        pa.field("data", pa.string(), nullable=False),  # JSON object
        pa.field("write_seq", pa.int64(), nullable=False),
    ],
)

SCHEMAS: dict[str, pa.Schema] = {
    "runs": RUNS_SCHEMA,
    "curves": CURVES_SCHEMA,
    "events": EVENTS_SCHEMA,
}

#: The column that identifies one logical item of each table (last write wins).
KEYS: dict[str, str] = {"runs": "run_id", "curves": "run_id", "events": "event_id"}

#: Fields added after version 1: table -> field -> the version that added it.
ADDED_FIELDS: dict[str, dict[str, int]] = {
    "runs": {"seed": 2, "git_commit": 2, "dataset_hash": 2, "simulator_version": 2},
    "curves": {},
    "events": {},
}


def _table_name(schema: pa.Schema) -> str:
    raw: bytes = (schema.metadata or {}).get(b"agentune.feedback.table", b"")
    return raw.decode()


def schema_at(table: str, version: int) -> pa.Schema:
    """The schema of ``table`` (``runs``, ``curves`` or ``events``) as version ``version`` wrote it.

    Raises:
        FeedbackSchemaError: Unknown table, or a version outside
            ``MIN_SCHEMA_VERSION..SCHEMA_VERSION``.
    """
    if table not in SCHEMAS:
        raise FeedbackSchemaError(
            f"unknown table {table!r}; the store has {sorted(SCHEMAS)}.", path="", field=table
        )
    if not MIN_SCHEMA_VERSION <= version <= SCHEMA_VERSION:
        raise FeedbackSchemaError(
            f"schema version {version} is not one this package reads "
            f"({MIN_SCHEMA_VERSION}..{SCHEMA_VERSION}).",
            path="",
            field="<schema version>",
        )
    later = {name for name, added in ADDED_FIELDS[table].items() if added > version}
    current = SCHEMAS[table]
    meta = {**(current.metadata or {}), b"agentune.feedback.schema_version": str(version).encode()}
    return pa.schema([f for f in current if f.name not in later], metadata=meta)


def _file_version(found: pa.Schema, table: str, path: str) -> int:
    """The version a file says it has, or (metadata dropped by another tool) the one its
    fields match; the current one when none matches, so the field check names the culprit."""
    raw = (found.metadata or {}).get(b"agentune.feedback.schema_version")
    if raw is None:
        names = set(found.names)
        for version in range(SCHEMA_VERSION, MIN_SCHEMA_VERSION - 1, -1):
            if set(schema_at(table, version).names) == names:
                return version
        return SCHEMA_VERSION
    text = raw.decode(errors="replace")
    if not text.isdigit() or not MIN_SCHEMA_VERSION <= int(text) <= SCHEMA_VERSION:
        raise FeedbackSchemaError(
            f"{path}: schema version {text} is not a version this package reads "
            f"({MIN_SCHEMA_VERSION}..{SCHEMA_VERSION}); read it with the agentune version that "
            "wrote it, or move the file out of the store.",
            path=path,
            field="<schema version>",
        )
    return int(text)


def check_schema(found: pa.Schema, expected: pa.Schema, path: str) -> int:
    """Check that ``found`` is the schema of ``expected``'s table at a readable version.

    A file of an older version (see :data:`ADDED_FIELDS`) passes without the fields added
    since; read it through :func:`conform_table`. Metadata other than the version is ignored.

    Args:
        found: The schema read from the file's footer.
        expected: One of :data:`SCHEMAS`.
        path: The file, named in the error.

    Returns:
        The file's schema version.

    Raises:
        FeedbackSchemaError: Naming the file and the first field that differs, or the version
            when it is newer than :data:`SCHEMA_VERSION` (or older than the oldest readable).
    """
    table = _table_name(expected)
    version = _file_version(found, table, path) if table in SCHEMAS else SCHEMA_VERSION
    wanted = schema_at(table, version) if table in SCHEMAS else expected
    found_names = set(found.names)
    for field in wanted:
        if field.name not in found_names:
            raise FeedbackSchemaError(
                f"{path}: field {field.name!r} is missing (expected {field.type}); the file "
                f"was not written by this feedback schema (version {version}). Move it "
                "out of the store directory.",
                path=path,
                field=field.name,
            )
        got = found.field(field.name)
        if not got.type.equals(field.type):
            raise FeedbackSchemaError(
                f"{path}: field {field.name!r} has type {got.type}, expected {field.type} "
                f"(schema version {version}). Move the file out of the store directory.",
                path=path,
                field=field.name,
            )
    extra = [name for name in found.names if name not in set(wanted.names)]
    if extra:
        raise FeedbackSchemaError(
            f"{path}: unexpected field {extra[0]!r} (not in schema version {version}). "
            "Move the file out of the store directory.",
            path=path,
            field=extra[0],
        )
    return version


def conform_table(table: pa.Table, expected: pa.Schema) -> pa.Table:
    """``table`` (read from a file :func:`check_schema` passed) in the current ``expected``
    schema: fields added since its version filled with nulls, columns in schema order, the
    current metadata. Rows keep their ``schema_version`` values."""
    if table.schema.names == expected.names:
        return table.replace_schema_metadata(expected.metadata)
    columns = [
        table[field.name]
        if field.name in table.column_names
        else pa.chunked_array([pa.nulls(table.num_rows, type=field.type)])
        for field in expected
    ]
    return pa.Table.from_arrays(columns, schema=expected)
