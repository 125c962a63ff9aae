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
"""

from __future__ import annotations

import pyarrow as pa

from ._errors import FeedbackSchemaError

__all__ = [
    "CURVES_SCHEMA",
    "EVENTS_SCHEMA",
    "KEYS",
    "RUNS_SCHEMA",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "check_schema",
]

#: Bump when a field is added, removed or changes type; readers refuse newer versions.
SCHEMA_VERSION = 1

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


def check_schema(found: pa.Schema, expected: pa.Schema, path: str) -> None:
    """Raise :class:`FeedbackSchemaError` unless ``found`` is ``expected`` (metadata aside).

    Args:
        found: The schema read from the file's footer.
        expected: One of :data:`SCHEMAS`.
        path: The file, named in the error.

    Raises:
        FeedbackSchemaError: Naming the file and the first field that differs.
    """
    meta = found.metadata or {}
    version = meta.get(b"agentune.feedback.schema_version")
    if version is not None and version != str(SCHEMA_VERSION).encode():
        raise FeedbackSchemaError(
            f"{path}: schema version {version.decode(errors='replace')} is not the version "
            f"this package reads ({SCHEMA_VERSION}); read it with the agentune version that "
            "wrote it, or move the file out of the store.",
            path=path,
            field="<schema version>",
        )
    found_names = set(found.names)
    for field in expected:
        if field.name not in found_names:
            raise FeedbackSchemaError(
                f"{path}: field {field.name!r} is missing (expected {field.type}); the file "
                f"was not written by this feedback schema (version {SCHEMA_VERSION}). Move it "
                "out of the store directory.",
                path=path,
                field=field.name,
            )
        got = found.field(field.name)
        if not got.type.equals(field.type):
            raise FeedbackSchemaError(
                f"{path}: field {field.name!r} has type {got.type}, expected {field.type} "
                f"(schema version {SCHEMA_VERSION}). Move the file out of the store directory.",
                path=path,
                field=field.name,
            )
    extra = [name for name in found.names if name not in set(expected.names)]
    if extra:
        raise FeedbackSchemaError(
            f"{path}: unexpected field {extra[0]!r} (not in schema version {SCHEMA_VERSION}). "
            "Move the file out of the store directory.",
            path=path,
            field=extra[0],
        )
