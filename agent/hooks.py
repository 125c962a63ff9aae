"""Approval of every trial before it is launched, whoever proposed it (Optuna or the agent).

The searcher (`search.AgentSearcher(approval_hook=...)`) builds a `TrialRequest` for each trial
it has sampled and asks the hook for an `ApprovalDecision` before handing the trial to Tune:

* ``approve``: the trial runs as proposed.
* ``modify``: the trial runs with the decision's overrides merged by key over the proposed ones
  (see `merge_overrides`); the searcher checks the result like any proposal.
* ``reject``: the trial is not launched; it is recorded (status ``rejected``) and fed back to
  the arm's Optuna study, so TPE and the agent learn from it.

The agent never sees the hook: it proposes arms, the searcher samples trials in them, and the
hook reviews the trials. Hooks:

* `AutoApprovalHook`: approves everything (``--approval auto``; recorded as ``auto``).
* `CallbackApprovalHook(fn)`: `fn(overrides, store, run_num) -> ApprovalDecision`; fails
  closed (a callback that raises or returns something else rejects the trial).
* `TerminalApprovalHook`: asks a person at the terminal (``--approval terminal``).

The searcher calls `review` on Tune's driver thread, one trial at a time; it may block while a
person answers.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO, runtime_checkable

from agent.proposer import AgentError, override_key

if TYPE_CHECKING:
    from feedback import FeedbackStore

logger = logging.getLogger(__name__)

__all__ = [
    "APPROVAL_ACTIONS",
    "ApprovalAction",
    "ApprovalDecision",
    "ApprovalError",
    "ApprovalHook",
    "AutoApprovalHook",
    "CallbackApprovalHook",
    "TerminalApprovalHook",
    "TrialRequest",
    "describe_request",
    "hook_for",
    "merge_overrides",
    "override_key",
]

ApprovalAction = Literal["approve", "reject", "modify"]
APPROVAL_ACTIONS: tuple[str, ...] = ("approve", "reject", "modify")
HOOK_NAMES: tuple[str, ...] = ("auto", "terminal")

NO_TERMINAL = (
    "--approval terminal needs an interactive terminal on stdin, and stdin is not one; use "
    "--approval auto for unattended runs (ray job submit, CI, pipes)"
)


class ApprovalError(AgentError, ValueError):
    """An approval setting that cannot work here (e.g. a terminal prompt without a terminal)."""


def merge_overrides(proposed: Sequence[str], new: Sequence[str]) -> list[str]:
    """`proposed` with each of `new` merged in by key.

    A new override whose key is already proposed replaces it in place; the others are
    appended in order (a key given twice in `new`: the last wins). Passing the full edited
    list and passing just the changed keys therefore give the same result.

    Raises:
        ValueError: an entry of `new` is not `key=value`.
    """
    merged = [o.strip() for o in proposed]
    position = {override_key(o): i for i, o in enumerate(merged) if override_key(o)}
    for item in new:
        text = item.strip()
        key = override_key(text)
        if key is None:
            raise ValueError(
                f"an override must look like key=value (e.g. trainer.lr=0.001), got {item!r}"
            )
        if key in position:
            merged[position[key]] = text
        else:
            position[key] = len(merged)
            merged.append(text)
    return merged


@dataclass(frozen=True)
class ApprovalDecision:
    """A hook's answer for one trial.

    Attributes:
        action: ``"approve"`` (run it as proposed), ``"reject"`` (do not run it; the reason is
            recorded and fed back) or ``"modify"`` (run it with `overrides`).
        reason: why (recorded with the decision; the error of a rejected trial's record).
        overrides: for ``modify`` only: the overrides the trial runs with, merged by key over
            the proposed ones (the full edited list, or just the changed keys). Keys of the
            arm's search space become the trial's parameters; other keys are fixed for this
            trial only.
        auto: for ``approve`` only: no person looked at the trial (recorded as approval
            ``"auto"`` instead of ``"approved"``).

    Raises:
        ValueError: an unknown action, `overrides` without ``modify`` (or ``modify`` without
            overrides), an override that is not `key=value`, or `auto` without ``approve``.
    """

    action: ApprovalAction
    reason: str = ""
    overrides: Sequence[str] | None = None
    auto: bool = False

    def __post_init__(self) -> None:
        if self.action not in APPROVAL_ACTIONS:
            raise ValueError(
                f"ApprovalDecision.action must be one of {APPROVAL_ACTIONS}, got {self.action!r}"
            )
        if not isinstance(self.reason, str):
            raise ValueError(f"ApprovalDecision.reason must be a str, got {self.reason!r}")
        if self.auto and self.action != "approve":
            raise ValueError(f"ApprovalDecision.auto is only for 'approve', got {self.action!r}")
        if self.overrides is None:
            if self.action == "modify":
                raise ValueError(
                    "ApprovalDecision(action='modify') needs overrides, e.g. "
                    "overrides=['trainer.lr=0.001']"
                )
            return
        if self.action != "modify":
            raise ValueError(
                f"ApprovalDecision.overrides is only for 'modify', got action={self.action!r}; "
                "leave overrides None"
            )
        items = self.overrides
        if isinstance(items, str) or not all(isinstance(o, str) for o in items):
            raise ValueError(
                f"ApprovalDecision.overrides must be a list of 'key=value' strings, got {items!r}"
            )
        bad = [o for o in items if override_key(o) is None]
        if bad:
            raise ValueError(
                f"ApprovalDecision.overrides must look like key=value (e.g. trainer.lr=0.001), "
                f"got {bad!r}"
            )
        if not items:
            raise ValueError("ApprovalDecision(action='modify') needs at least one override")
        object.__setattr__(self, "overrides", tuple(o.strip() for o in items))

    @classmethod
    def approve(cls, reason: str = "") -> ApprovalDecision:
        """Run the trial as proposed."""
        return cls("approve", reason)

    @classmethod
    def reject(cls, reason: str = "") -> ApprovalDecision:
        """Do not run the trial."""
        return cls("reject", reason)

    @classmethod
    def modify(cls, overrides: Sequence[str], reason: str = "") -> ApprovalDecision:
        """Run the trial with `overrides` merged over the proposed ones."""
        return cls("modify", reason, overrides)


@dataclass(frozen=True)
class TrialRequest:
    """What a hook sees of one trial before it is launched.

    Attributes:
        overrides: the trial's whole config as Hydra overrides: the arm's fixed overrides,
            then the sampled parameters as `key=value` (Hydra-formatted).
        run_num: 1-based count of trials put to the hook in this campaign (kept across
            checkpoints and restarts).
        arm: the arm the trial belongs to (`"base"` for the campaign's own config).
        tier: 0 Optuna tuning, 2 generated config, 3 generated code.
        origin: who proposed it: ``optuna``, ``agent``, ``human`` or ``warm_start``.
        campaign: campaign name in the store.
        store: the campaign's feedback store (read the history, the best run), or None.
        rationale: the proposer's reason for the arm, or "".
        model_source: the generated model's code (tier 3), or None.
        recommendation: the latest feedback recommendation (`"change_model: stagnant ..."`),
            or "" before the first.
    """

    overrides: tuple[str, ...]
    run_num: int
    arm: str
    tier: int
    origin: str
    campaign: str
    store: FeedbackStore | None = field(default=None, compare=False)
    rationale: str = ""
    model_source: str | None = None
    recommendation: str = ""


@runtime_checkable
class ApprovalHook(Protocol):
    """Decides whether one trial runs; called on Tune's driver thread, one trial at a time.

    `review` may block (a person answering). Whatever it raises is treated by the searcher as
    a rejection with the error as the reason (fail closed). A hook travels with the searcher
    when Tune pickles it; one that cannot be pickled stays with the live searcher object only
    (see `search.AgentSearcher`).
    """

    def review(self, request: TrialRequest) -> ApprovalDecision:
        """The decision for the trial described by `request`."""
        ...


class AutoApprovalHook:
    """Approves every trial unchanged (recorded as approval ``"auto"``)."""

    def review(self, request: TrialRequest) -> ApprovalDecision:
        """Approve the trial as proposed."""
        return ApprovalDecision("approve", auto=True)


class CallbackApprovalHook:
    """Asks a function: `fn(overrides, store, run_num) -> ApprovalDecision`.

    Args:
        fn: called with the trial's overrides (a fresh list), the campaign's `FeedbackStore`
            (or None) and the 1-based run number. A callback that raises, or returns anything
            but an `ApprovalDecision`, rejects the trial with that as the reason (fail closed).
            The hook pickles when `fn` does (a module-level function, not a lambda).
    """

    def __init__(self, fn: Callable[[list[str], FeedbackStore | None, int], ApprovalDecision]):
        if not callable(fn):
            raise TypeError(f"CallbackApprovalHook needs a callable, got {fn!r}")
        self.fn = fn

    def review(self, request: TrialRequest) -> ApprovalDecision:
        """The callback's decision, or a rejection when it fails."""
        try:
            decision = self.fn(list(request.overrides), request.store, request.run_num)
        except Exception as e:  # user code: fail closed
            logger.warning("The approval callback raised on run %d: %s", request.run_num, e)
            return ApprovalDecision.reject(f"the approval callback raised {type(e).__name__}: {e}")
        if not isinstance(decision, ApprovalDecision):
            return ApprovalDecision.reject(
                f"the approval callback returned {type(decision).__name__}, not an ApprovalDecision"
            )
        return decision


_HELP = """\
  y, yes           run this trial as proposed
  n, no            do not run it (you are asked for an optional reason)
  m OVERRIDES      run it with these overrides merged by key over the proposed ones,
                   e.g. m trainer.lr=0.001 model.width=32
  a                approve this trial and every later one without asking
  s                show the generated model source (tier-3 arms)
  ?                this help"""

_PROMPT = "run it? [y]es / [n]o / [m] <overrides> / [a]uto-approve all / [s]ource / [?]help: "


def _printable(text: str) -> str:
    """`text` without terminal control characters (agent text must not drive the terminal)."""
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or not a file
        return False


class TerminalApprovalHook:
    """Asks a person at the terminal before every trial.

    Shows the trial (its overrides, who proposed it, arm and tier), the runs done so far by
    status, the best run with its config, the latest recommendation and the proposer's
    rationale, then reads one answer per line: ``y``/``yes``, ``n``/``no`` (then an optional
    reason), ``m <overrides>``, ``a`` (approve this trial and every later one without asking:
    the later ones are recorded as ``auto``), ``s`` (show a tier-3 arm's generated source),
    ``?`` (help). Anything else is answered with what is allowed, and asked again. End of
    input rejects the trial (and every later one, without asking).

    It reads and writes the terminal streams directly (no `input()`), so it works under a
    pseudo-terminal and never touches `sys.stdout`'s result lines by default.

    Args:
        stdin: where answers are read (default `sys.stdin`); must be a terminal.
        stdout: where the prompt goes (default `sys.stderr`).
        pause: returns a context manager entered while the hook asks, e.g. one that stops a
            live progress display and restarts it afterwards.

    Pickling drops the streams and `pause`: an unpickled hook asks at `sys.stdin` and
    `sys.stderr` without pausing anything; whether ``a`` was typed is kept.

    Raises:
        ApprovalError: `stdin` is not an interactive terminal.
    """

    def __init__(
        self,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        pause: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        if not _isatty(stdin if stdin is not None else sys.stdin):
            raise ApprovalError(NO_TERMINAL)
        self._stdin = stdin
        self._stdout = stdout
        self._pause = pause
        self.auto_approve = False
        self.closed = False  # input ended: every later trial is rejected without asking

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_stdin=None, _stdout=None, _pause=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def stdin(self) -> TextIO:
        """The stream answers are read from."""
        return self._stdin if self._stdin is not None else sys.stdin

    @property
    def stdout(self) -> TextIO:
        """The stream the prompt is written to."""
        return self._stdout if self._stdout is not None else sys.stderr

    def review(self, request: TrialRequest) -> ApprovalDecision:
        """Show the trial and ask until the answer is one of y, n, m, a."""
        if self.auto_approve:
            return ApprovalDecision("approve", auto=True)
        if self.closed:
            return ApprovalDecision.reject("no answer: the terminal's input was closed")
        pause = self._pause() if self._pause is not None else contextlib.nullcontext()
        with pause:
            return self._ask_until_answered(request)

    def _ask_until_answered(self, request: TrialRequest) -> ApprovalDecision:
        self._write(describe_request(request))
        while True:
            answer = self._read(_PROMPT)
            if answer is None:
                self.closed = True
                self._write("input closed: rejecting this trial and every later one")
                return ApprovalDecision.reject("no answer: the terminal's input was closed")
            word, _, rest = answer.strip().partition(" ")
            word = word.lower()
            if word in ("y", "yes"):
                return ApprovalDecision.approve()
            if word in ("n", "no"):
                reason = self._read("reason (optional, enter to skip): ") or ""
                return ApprovalDecision.reject(reason.strip() or "rejected at the terminal")
            if word in ("m", "modify"):
                decision = self._modify(rest)
                if decision is not None:
                    return decision
                continue
            if word in ("a", "auto"):
                self.auto_approve = True
                self._write("approved; every later trial is approved without asking (auto)")
                return ApprovalDecision.approve("auto-approve all from here on")
            if word in ("s", "source"):
                if request.model_source:
                    self._write(f"--- generated model source ({request.arm}) ---")
                    self._write(_printable(request.model_source.rstrip("\n")))
                    self._write("--- end of source ---")
                else:
                    self._write(
                        f"arm {request.arm!r} (tier {request.tier}) has no generated source: "
                        "only tier-3 arms do"
                    )
                continue
            if word in ("?", "h", "help"):
                self._write(_HELP)
                continue
            self._write(
                f"{_printable(answer.strip())!r} is not an answer; type y, n, "
                "m <overrides>, a, s or ? (help)"
            )

    def _modify(self, rest: str) -> ApprovalDecision | None:
        text = rest.strip()
        if not text:
            text = (self._read("overrides (e.g. trainer.lr=0.001 model.width=32): ") or "").strip()
        items = text.split()
        bad = [o for o in items if override_key(o) is None]
        if not items or bad:
            self._write(
                "m needs key=value overrides, e.g. m trainer.lr=0.001 model.width=32"
                + (f" (got {_printable(' '.join(bad))!r})" if bad else "")
            )
            return None
        return ApprovalDecision.modify(items, "modified at the terminal")

    def _read(self, prompt: str) -> str | None:
        """One line of input after writing `prompt`; None at end of input."""
        out = self.stdout
        out.write(prompt)
        out.flush()
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\r\n")

    def _write(self, text: str) -> None:
        out = self.stdout
        out.write(text + "\n")
        out.flush()


def describe_request(request: TrialRequest) -> str:
    """The lines a person reads before deciding on a trial (terminal-safe text)."""
    lines = [
        f"--- trial {request.run_num} for approval ---",
        f"proposed by {request.origin}: arm {request.arm}, tier {request.tier}",
        f"overrides: {' '.join(request.overrides) or '(none: the base config)'}",
    ]
    lines.extend(_history_lines(request))
    if request.recommendation:
        lines.append(f"recommendation: {request.recommendation}")
    if request.rationale:
        lines.append(f"why: {request.rationale}")
    if request.model_source:
        n = len(request.model_source.splitlines())
        lines.append(f"generated model: {n} lines of code (type s to read it)")
    return _printable("\n".join(lines))


def _history_lines(request: TrialRequest) -> list[str]:
    store = request.store
    if store is None:
        return []
    try:
        runs = store.runs(campaign=request.campaign)
        best = store.best(request.campaign)
    except (OSError, ValueError) as e:  # FeedbackError is a ValueError
        return [f"history: unavailable ({e})"]
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [f"runs done: {len(runs)}" + (f" ({detail})" if detail else "")]
    if best is None:
        lines.append("best so far: none yet")
    else:
        params = (f"{k}={v}" for k, v in sorted(best.params.items()))
        config = " ".join([*best.overrides, *params]) or "(the base config)"
        value = "-" if best.value is None else f"{best.value:.4f}"
        lines.append(f"best so far: {best.metric}={value} (run {best.run_id}, arm {best.arm})")
        lines.append(f"best config: {config}")
    return lines


def hook_for(
    name: str, *, pause: Callable[[], AbstractContextManager[Any]] | None = None
) -> ApprovalHook:
    """The hook for `--approval NAME`: ``auto`` or ``terminal``.

    Args:
        name: the hook's name.
        pause: for ``terminal``: see `TerminalApprovalHook`.

    Raises:
        ApprovalError: an unknown name, or ``terminal`` when stdin is not a terminal.
    """
    if name == "auto":
        return AutoApprovalHook()
    if name == "terminal":
        return TerminalApprovalHook(pause=pause)
    raise ApprovalError(f"--approval must be one of {', '.join(HOOK_NAMES)}, got {name!r}")
