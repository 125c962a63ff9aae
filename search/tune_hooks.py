"""The campaign's hooks into a live Tune run: the trial-line reporter, re-attaching a restored
Tuner's searcher parts, and reading a failed trial's error.

`Tuner.restore` rebuilds the searcher and the callbacks from what was pickled when the
campaign started, so this session's approval hook and printing callback are put back here.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from search.searcher import AgentSearcher

if TYPE_CHECKING:
    from agent.hooks import ApprovalHook
    from feedback import FeedbackStore, RunRecord

__all__ = [
    "RunReporter",
    "attach_approval_hook",
    "attach_reporter",
    "trial_dirname",
    "trial_error",
    "tuner_searcher",
]

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the worker's name in its errors
_DEAD_BECAUSE = re.compile(r"The actor is dead because [^.]*\.")


def tuner_searcher(tuner: Any) -> AgentSearcher | None:
    """The `AgentSearcher` a Tuner runs (a restored Tuner's is rebuilt from its pickle, so it
    is not the one `run_campaign` made); None when it cannot be found. Ray 2.60 keeps it at
    `tuner._local_tuner._tune_config.search_alg`."""
    config = getattr(getattr(tuner, "_local_tuner", None), "_tune_config", None)
    searcher = getattr(config, "search_alg", None)
    return searcher if isinstance(searcher, AgentSearcher) else None


def attach_approval_hook(tuner: Any, hook: ApprovalHook) -> bool:
    """Give the searcher of a restored Tuner this session's approval hook.

    `Tuner.restore` rebuilds the searcher from the copy pickled when the campaign started,
    which holds the hook only if it pickles, and a terminal hook without the pause of this
    session's progress display; the searcher's own `restore` then keeps a hook attached here.
    Ray 2.60 keeps the searcher at `tuner._local_tuner._tune_config.search_alg`.

    Returns:
        Whether the hook was attached (False: the restored searcher keeps the saved one).
    """
    searcher = tuner_searcher(tuner)
    if searcher is None:
        logger.warning(
            "Could not find the restored searcher to attach the approval hook; it uses the "
            "hook saved with the campaign."
        )
        return False
    searcher.approval_hook = hook
    return True


def attach_reporter(tuner: Any, reporter: RunReporter) -> bool:
    """Make a restored Tuner report finished trials through this session's `reporter`.

    The restored run config holds the callbacks pickled with the experiment, whose printing
    hook stayed with the old driver; without this the resumed trials would be printed only
    once the whole campaign ended. Runs already in the history are not printed again.

    Returns:
        Whether a saved reporter was found and replaced.
    """
    run_config = getattr(getattr(tuner, "_local_tuner", None), "_run_config", None)
    callbacks = getattr(run_config, "callbacks", None)
    if run_config is None or not isinstance(callbacks, list):
        logger.warning("Could not find the restored run config; trial lines print at the end.")
        return False
    reporter.mark_reported()
    replaced = [reporter if isinstance(cb, RunReporter) else cb for cb in callbacks]
    if reporter not in replaced:
        replaced.append(reporter)
    run_config.callbacks = replaced
    return True


def trial_error(trial: Any) -> str | None:
    """A failed Tune trial's latest error in one line, from its `error.txt`: for a raised
    error, the exception (the traceback's last line); for a dead worker, Ray's first line and
    why the actor died ("... because its worker process has died."); None when Tune wrote no
    error file."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        return None
    latest = _ANSI.sub("", text.rsplit("Failure # ", 1)[-1].split("\n", 1)[-1])
    lines = [line.rstrip() for line in latest.splitlines() if line.strip()]
    if not lines:
        return None
    if any(line.startswith("  File ") for line in lines):  # a traceback; frames are indented
        line = next((x for x in reversed(lines) if not x[:1].isspace()), lines[-1])
    else:
        why = next((m.group(0) for x in lines if (m := _DEAD_BECAUSE.search(x))), "")
        line = f"{lines[0]} {why}".strip()
    return line if len(line) <= 500 else line[:497] + "..."


def trial_dirname(trial: Any) -> str:
    """Short trial folder names: Tune's default repeats the whole config, generated code too."""
    return f"trial_{trial.trial_id}"


def _latest_recommendation(store: FeedbackStore, campaign: str) -> str:
    events = store.events(campaign=campaign, kind="recommendation")
    return str(events[-1].data.get("action", "")) if events else "continue"


class RunReporter(Callback):
    """Tune callback: after the searcher stored a finished trial, report it through `on_run`.

    Tune calls the searcher's `on_trial_complete` before the callbacks, so the record is in
    the store by then; records are reported once each, in finishing order.
    """

    def __init__(
        self,
        store: FeedbackStore,
        campaign: str,
        on_run: Callable[[RunRecord, str, RunRecord | None], None] | None,
    ) -> None:
        self._store = store
        self._campaign = campaign
        self._on_run = on_run
        self._seen: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state; the printing hook (which holds
        # the terminal) stays with the live driver object (the store pickles as its root).
        state = dict(self.__dict__)
        state["_on_run"] = None
        return state

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.flush()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._record_error(trial)
        self.flush()

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        from feedback import Event

        error = trial_error(trial)
        failures, allowed = int(trial.num_failures), int(trial.max_failures)
        logger.warning("Trial %s failed (%s); retrying it", trial.trial_id, error)
        event = Event(
            campaign=self._campaign,
            kind="note",
            message=f"trial {trial.trial_id} failed ({error}); retry {failures} of "
            f"max_failures {allowed}, from its last checkpoint (if it made one)",
            run_id=trial.trial_id,
            data={"trial_id": trial.trial_id, "failure": failures, "error": error},
        )
        try:
            self._store.append_event(event)
        except (OSError, ValueError) as e:  # a history write never ends the experiment
            logger.error("Could not record the retry of trial %s: %s", trial.trial_id, e)

    def _record_error(self, trial: Any) -> None:
        """Put the trial's own error into its failed record (the searcher only hears that it
        errored): the same run id again, so the store keeps this version."""
        error = trial_error(trial)
        if error is None:
            return
        record = next(
            (r for r in self._store.runs(campaign=self._campaign) if r.run_id == trial.trial_id),
            None,
        )
        if record is None or record.status != "failed":
            return
        failures = int(trial.num_failures)
        tries = f"{failures} failure{'s' if failures != 1 else ''}"
        try:
            self._store.append(dataclasses.replace(record, error=f"{error} ({tries})"))
        except (OSError, ValueError) as e:  # the record keeps the searcher's generic error
            logger.error("Could not record the error of trial %s: %s", trial.trial_id, e)

    def mark_reported(self) -> None:
        """Count every run already in the store as reported (a resumed campaign's earlier
        runs)."""
        self._seen.update(r.run_id for r in self._store.runs(campaign=self._campaign))

    def flush(self) -> None:
        """Report every stored run not reported yet."""
        if self._on_run is None:
            return
        new = [r for r in self._store.runs(campaign=self._campaign) if r.run_id not in self._seen]
        if not new:
            return
        recommendation = _latest_recommendation(self._store, self._campaign)
        best = self._store.best(self._campaign)
        for record in new:
            self._seen.add(record.run_id)
            self._on_run(record, recommendation, best)
