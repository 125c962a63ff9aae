"""Finding and reading one run for the tier-1 tools: a trainer run dir, or a run id.

A reference is either a directory (a trainer run dir holding `config.yaml`, `metrics.jsonl`,
`summary.json`, or a Tune trial dir whose `run/` holds them) or a run id / trial id of the
active campaign, looked up in its store; a stored run's directory is
`<campaign_dir>/ray/experiment/trial_<trial_id>/run` when it still exists.

Reading is read-only and limited to the three artifact files (regular files, not links, at
most `_MAX_BYTES` each). Test-set metrics are dropped on the way in (`without_test`), so no
tool can show them.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.tools._context import ToolContext, ToolError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["RunRef", "resolve_run", "run_summary", "without_test"]

logger = logging.getLogger(__name__)

ARTIFACTS = ("config.yaml", "metrics.jsonl", "summary.json")
_MAX_BYTES = 8 << 20
_TRIAL_PREFIX = "trial_"
_TRIAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # one path component
# trainer summary status -> the store's vocabulary (a run the scheduler stopped was pruned)
_STATUS = {
    "completed": "completed",
    "diverged": "diverged",
    "stopped": "pruned",
    "failed": "failed",
}
_SUMMARY_FIELDS = ("status", "metric", "mode", "best_value", "best_epoch", "epochs_run")


@dataclass(frozen=True)
class RunRef:
    """One resolved run.

    Attributes:
        ref: what the caller passed.
        run_id: the run's id (the store's, else derived from the directory), or None.
        run_dir: its artifact directory, or None (a stored run whose directory is gone).
        row: its row in the campaign's store (`RUNS_SCHEMA` as a dict), or None.
    """

    ref: str
    run_id: str | None
    run_dir: Path | None
    row: Mapping[str, Any] | None


def without_test(data: Any) -> Any:
    """`data` without test-set metrics: every mapping key starting with "test" is dropped,
    at any depth (`summary["test"]`, `"test/macro_f1"`, `"test_metrics"`)."""
    if isinstance(data, Mapping):
        return {
            k: without_test(v)
            for k, v in data.items()
            if not (isinstance(k, str) and k.lower().startswith("test"))
        }
    if isinstance(data, list | tuple):
        return [without_test(v) for v in data]
    return data


def _artifact_dir(path: Path) -> Path | None:
    """`path` if it holds an artifact, else its `run/` if that does, else None."""
    for candidate in (path, path / "run"):
        if candidate.is_dir() and any((candidate / name).exists() for name in ARTIFACTS):
            return candidate
    return None


def _store_rows(ctx: ToolContext) -> pa.Table | None:
    store = ctx.store()
    if store is None:
        return None
    return store.table(campaign=ctx.campaign) if ctx.campaign else store.table()


def _find_row(ctx: ToolContext, run_id: str) -> dict[str, Any] | None:
    import pyarrow.compute as pc

    table = _store_rows(ctx)
    if table is None or table.num_rows == 0:
        return None
    mask = pc.or_kleene(pc.equal(table["run_id"], run_id), pc.equal(table["trial_id"], run_id))
    hits = table.filter(pc.fill_null(mask, False))
    if hits.num_rows == 0:
        return None
    row: dict[str, Any] = hits.slice(hits.num_rows - 1, 1).to_pylist()[0]
    return row


def _trial_run_dir(ctx: ToolContext, row: Mapping[str, Any]) -> Path | None:
    root = ctx.campaign_root()
    if root is None:
        return None
    for ident in (row.get("trial_id"), row.get("run_id")):
        if isinstance(ident, str) and _TRIAL_ID.fullmatch(ident):
            candidate = root / "ray" / "experiment" / f"{_TRIAL_PREFIX}{ident}" / "run"
            if candidate.is_dir():
                return candidate
    return None


def _id_from_dir(run_dir: Path) -> str:
    """`<trial_dir>/run` -> the trial id; any other directory -> its name."""
    if run_dir.name == "run" and run_dir.parent.name.startswith(_TRIAL_PREFIX):
        return run_dir.parent.name[len(_TRIAL_PREFIX) :]
    return run_dir.name


def resolve_run(ctx: ToolContext, ref: object, what: str = "run_dir") -> RunRef:
    """Resolve a run directory path or a run id (see the module docstring).

    Raises:
        ToolError: not a string, a path that is not a directory, a directory without
            artifacts, or an id that the campaign does not know (or no campaign to ask).
    """
    if isinstance(ref, Path):
        ref = str(ref)
    if not isinstance(ref, str) or not ref.strip():
        raise ToolError(
            f"{what} must be a run directory path or a run id (a non-empty string), got "
            f"{type(ref).__name__} {ref!r}; e.g. read_run_results('runs/20250101-120000') or "
            "a run id from get_experiment_history()"
        )
    text = ref.strip()
    path = Path(text).expanduser()
    if path.is_dir():
        run_dir = _artifact_dir(path)
        if run_dir is None:
            raise ToolError(
                f"{text} is a directory but holds none of {', '.join(ARTIFACTS)} (nor does its "
                "run/ folder), so it is not a trainer run directory; pass the folder a training "
                "run wrote, or a run id from get_experiment_history()"
            )
        run_dir = run_dir.resolve()
        run_id = _id_from_dir(run_dir)
        row = _find_row(ctx, run_id)
        trial = _trial_run_dir(ctx, row) if row is not None else None
        if trial is None or trial.resolve() != run_dir:
            row = None  # a directory elsewhere that merely shares the name of a run id
        return RunRef(text, str(row["run_id"]) if row else run_id, run_dir, row)
    if path.exists() or path.is_symlink():
        raise ToolError(
            f"{text} is not a directory (it is a file); pass the run directory that holds "
            f"{', '.join(ARTIFACTS)}, or a run id from get_experiment_history()"
        )
    table = _store_rows(ctx)
    if table is None:
        raise ToolError(
            f"{text!r} is not an existing directory, and no campaign history is available to "
            "look it up as a run id; pass the path of a trainer run directory (the folder that "
            "holds summary.json)"
        )
    row = _find_row(ctx, text)
    if row is None:
        known = [str(r) for r in table["run_id"].to_pylist()[-2000:]]
        close = difflib.get_close_matches(text, known, n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        campaign = f"campaign {ctx.campaign!r}" if ctx.campaign else "the campaign history"
        looks_like_path = "/" in text or "\\" in text
        raise ToolError(
            f"{text!r} is neither an existing directory nor a run id of {campaign} "
            f"({table.num_rows} runs); {hint}"
            + (
                "check the path, or "
                if looks_like_path
                else "call get_experiment_history() to see the run ids, or "
            )
            + "pass a run directory path"
        )
    return RunRef(text, str(row["run_id"]), _trial_run_dir(ctx, row), row)


# --- reading artifacts --------------------------------------------------------------------


def _read_artifact(run_dir: Path, name: str) -> str | None:
    """The text of one artifact, None when absent; refuses links and oversized files."""
    path = run_dir / name
    if not (path.exists() or path.is_symlink()):
        return None
    if path.is_symlink() or not path.is_file():
        raise ToolError(
            f"{path} is not a regular file (a link or a folder); tools read only the "
            "trainer's own artifact files, pass another run directory"
        )
    size = path.stat().st_size
    if size > _MAX_BYTES:
        raise ToolError(
            f"{path} is {size} bytes, over the {_MAX_BYTES} the tools read; pass another run"
        )
    return path.read_text(encoding="utf-8", errors="replace")


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """`summary.json` without test metrics, or None when there is none."""
    text = _read_artifact(run_dir, "summary.json")
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ToolError(
            f"{run_dir / 'summary.json'} is not valid JSON ({e.msg}); the run's summary was "
            "damaged, read its metrics.jsonl through another run or ignore this run"
        ) from e
    if not isinstance(data, dict):
        raise ToolError(f"{run_dir / 'summary.json'} is not a JSON object; ignore this run")
    clean: dict[str, Any] = without_test(data)
    return clean


def read_epochs(run_dir: Path) -> list[dict[str, float]]:
    """`metrics.jsonl` as one dict per epoch (non-numbers and test metrics dropped)."""
    from feedback import parse_epoch_metrics

    text = _read_artifact(run_dir, "metrics.jsonl")
    if text is None:
        return []
    rows: list[dict[str, float]] = without_test(
        parse_epoch_metrics(text, str(run_dir / "metrics.jsonl"))
    )
    return rows


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """`config.yaml` as a dict (the trainer writes it resolved), or None when absent."""
    from agent.safety.errors import SafetyError
    from agent.safety.yaml_io import safe_load_yaml

    text = _read_artifact(run_dir, "config.yaml")
    if text is None:
        return None
    try:
        data = safe_load_yaml(
            text, source=str(run_dir / "config.yaml"), max_bytes=_MAX_BYTES, max_depth=32
        )
    except SafetyError as e:
        raise ToolError(f"{e}; this run's config cannot be read, pass another run") from e
    return data if isinstance(data, dict) else None


# --- one run as a dict ---------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _params(row: Mapping[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {}
    raw = row.get("params")
    loaded = json.loads(raw) if isinstance(raw, str) else raw
    return dict(loaded) if isinstance(loaded, Mapping) else {}


def run_summary(ctx: ToolContext, run: RunRef, *, details: bool = True) -> dict[str, Any]:
    """The `read_run_results` dict of a resolved run (`details=False`: no epochs, config).

    The store's row wins over `summary.json` where it has a value (the searcher may have
    marked a trial infeasible or pruned); the summary fills what the store does not know.
    """
    summary = read_summary(run.run_dir) if run.run_dir is not None else None
    row = run.row
    out: dict[str, Any] = {
        "run_id": run.run_id,
        "run_dir": str(run.run_dir) if run.run_dir is not None else None,
        "status": None,
        "metric": None,
        "mode": None,
        "best_value": None,
        "best_epoch": None,
        "epochs_run": None,
        "num_params": None,
        "model": None,
        "arm": None,
        "tier": None,
        "origin": None,
        "overrides": [],
        "params": {},
        "error": None,
    }
    if summary is not None:
        status = summary.get("status")
        out["status"] = _STATUS.get(str(status), status)
        for key in ("metric", "mode", "best_epoch", "epochs_run", "num_params", "model", "error"):
            out[key] = summary.get(key)
        out["best_value"] = _finite(summary.get("best_value"))
    elif run.run_dir is not None:
        out["status"] = "failed"
        out["error"] = f"no summary.json in {run.run_dir}: the trainer did not finish"
    if row is not None:
        for key, column in (
            ("status", "status"),
            ("metric", "metric"),
            ("mode", "mode"),
            ("best_value", "value"),
            ("best_epoch", "best_epoch"),
            ("epochs_run", "epochs_run"),
            ("num_params", "num_params"),
            ("model", "model"),
            ("arm", "arm"),
            ("tier", "tier"),
            ("origin", "origin"),
            ("error", "error"),
        ):
            value = row.get(column)
            if value is not None:
                out[key] = value if key != "best_value" else _finite(value)
        out["overrides"] = list(row.get("overrides") or [])
        out["params"] = _params(row)
    out["metric"] = out["metric"] or ctx.metric
    out["mode"] = out["mode"] or ctx.mode
    if details:
        if run.run_dir is not None:
            epochs = read_epochs(run.run_dir)
            config = read_config(run.run_dir)
        else:
            store = ctx.store()
            epochs = (
                [without_test(e) for e in store.curve(run.run_id)]
                if store is not None and run.run_id
                else []
            )
            config = None
        out["epochs"] = epochs
        if out["epochs_run"] is None and epochs:
            out["epochs_run"] = len(epochs)
    clean: dict[str, Any] = without_test(out)
    if details:  # the config holds settings, not metrics (`dataset.test_participants` stays)
        clean["config"] = config
    return clean
