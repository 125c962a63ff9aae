"""The proposer's background thread: one call at a time, collected without ever blocking.

`ProposalWorker` runs `Proposer.propose` on a daemon thread (`suggest()` never waits for an
LLM), checks every returned proposal there (a tier-3 check runs a sandboxed smoke test), and
hands the outcome back when the searcher polls. It also holds the proposals queued from
outside (`AgentSearcher.submit_proposal`) until the searcher can turn them into arms.

A call that runs longer than `timeout_s` is abandoned: a thread cannot be killed, so its
future is dropped (a late answer is ignored), the timeout is handed back like a proposer
failure, and later calls go to a copy of the proposer as pickled when the hung call started
(when it pickles), so the two never share state.

Pickling (Tune pickles the searcher): the future and the inbox are dropped (queued proposals
are kept as held ones); while a call runs, the proposer as pickled when it started is saved
instead of the live one its thread may be changing; an unpickled worker has no call in flight
and the searcher's policy asks again.
"""

from __future__ import annotations

import copy
import logging
import pickle
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agent.proposer import AgentCallReport, Proposal, ProposalContext, Proposer

if TYPE_CHECKING:
    from feedback import FeedbackStore

__all__ = ["FinishedCall", "ProposalBatch", "ProposalRequest", "ProposalWorker"]

logger = logging.getLogger(__name__)


@dataclass
class ProposalRequest:
    """A proposer call in flight (or lost by pickling)."""

    tier: int
    reasons: tuple[str, ...]
    submitted_at: float  # time.time()
    n: int


@dataclass
class ProposalBatch:
    """What one proposer call produced: checked proposals and the refused ones with reasons."""

    accepted: list[Proposal] = field(default_factory=list)
    refused: list[tuple[Any, str]] = field(default_factory=list)
    report: AgentCallReport | None = None  # the proposer's `last_call`, when it has one


@dataclass
class FinishedCall:
    """A collected call: its request, its batch, and the proposer's error (or the timeout)."""

    request: ProposalRequest | None
    batch: ProposalBatch
    error: Exception | None = None


class _ProposerFailedError(Exception):
    """The proposer raised: carries the error and the call's report to the searcher thread."""

    def __init__(self, error: Exception, report: AgentCallReport | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.report = report


def _call_report(proposer: Any, error: BaseException | None = None) -> AgentCallReport | None:
    """The call's report: the error's `.report`, else the proposer's `last_call`, if any."""
    report = getattr(error, "report", None) if error is not None else None
    if report is None:
        report = getattr(proposer, "last_call", None)
    return report if isinstance(report, AgentCallReport) else None


def _run_proposer(
    proposer: Proposer,
    context: ProposalContext,
    n: int,
    store: FeedbackStore | None,
    history_chars: int,
    check: Callable[[Any], Proposal],
) -> ProposalBatch:
    """Worker-thread body: add the store's history to the context, call the proposer, and
    put each of its first `n` proposals through `check` (the proposal contract and the safety
    layer), here rather than in `suggest()`: a tier-3 check runs a sandboxed smoke test."""
    if store is not None and context.campaign:
        try:
            # A reader of its own (a copy re-opens from the root): the searcher's store
            # object and its read cache are not shared across threads.
            reader = copy.copy(store)
            context = replace(
                context, history=reader.history_for_agent(context.campaign, history_chars)
            )
        except (OSError, ValueError) as e:  # a broken store must not cost the proposal
            logger.warning("Could not read the campaign history for the agent: %s", e)
    try:
        proposals = list(proposer.propose(context, n))
    except Exception as e:  # the proposer is untrusted code: any failure is recorded
        raise _ProposerFailedError(e, _call_report(proposer, e)) from e
    if len(proposals) > n:
        logger.info("The proposer returned %d proposals; using the first %d.", len(proposals), n)
    batch = ProposalBatch(report=_call_report(proposer))
    for proposal in proposals[:n]:
        try:
            batch.accepted.append(check(proposal))
        except ValueError as e:  # ProposalError, SafetyError, SearchSpaceError
            batch.refused.append((proposal, str(e)))
        except Exception as e:  # fail closed: a check that cannot finish refuses
            batch.refused.append((proposal, f"the check failed ({type(e).__name__}: {e})"))
    return batch


def _start_thread(fn: Callable[..., ProposalBatch], *args: Any) -> Future[ProposalBatch]:
    """Run `fn(*args)` on a new daemon thread; its outcome lands in the returned future.

    A daemon thread, unlike a `ThreadPoolExecutor` worker, does not hold up interpreter exit
    while an LLM call is still running (or hung).
    """
    future: Future[ProposalBatch] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # delivered to the searcher through the future
            future.set_exception(e)

    threading.Thread(target=run, name="agentune-proposer", daemon=True).start()
    return future


class ProposalWorker:
    """The searcher's single proposer thread and its inbox (see the module docstring).

    Args:
        proposer: the agent, or None (no calls; the inbox still works).
        timeout_s: seconds a call may run before it is abandoned; None waits forever.

    Raises:
        ValueError: `timeout_s` is not positive.
    """

    def __init__(self, proposer: Proposer | None, *, timeout_s: float | None) -> None:
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(
                f"`proposer_timeout_s` must be > 0 seconds or None (wait forever), got "
                f"{timeout_s!r}; e.g. 600 for a 10-minute cap on one agent call."
            )
        self.proposer = proposer
        self.timeout_s = timeout_s
        self.request: ProposalRequest | None = None
        # proposals waiting for the searcher to be set up, with whether they were checked
        self.held: list[tuple[Proposal, bool]] = []
        self._inbox: queue.SimpleQueue[Proposal] = queue.SimpleQueue()
        self._future: Future[ProposalBatch] | None = None
        self._deadline: float | None = None  # time.monotonic() after which the call is abandoned
        self._snapshot: bytes | None = None  # the proposer as pickled when the call started

    @property
    def in_flight(self) -> bool:
        """A call was started and its outcome not collected yet (it may have finished)."""
        return self._future is not None

    @property
    def overdue(self) -> bool:
        """The running call has run past `timeout_s` (`expire` abandons it)."""
        return (
            self._future is not None
            and not self._future.done()
            and self._deadline is not None
            and time.monotonic() >= self._deadline
        )

    @property
    def running(self) -> bool:
        """A call is running and not yet overdue."""
        return self._future is not None and not self._future.done() and not self.overdue

    def start(
        self,
        context: ProposalContext,
        n: int,
        *,
        store: FeedbackStore | None,
        history_chars: int,
        check: Callable[[Any], Proposal],
    ) -> None:
        """Call the proposer for `n` proposals of `context.tier` on the background thread.

        Raises:
            RuntimeError: no proposer, or a call is still in flight (collect it first).
        """
        proposer = self.proposer
        if proposer is None or self._future is not None:
            raise RuntimeError("ProposalWorker.start needs a proposer and no call in flight.")
        try:
            self._snapshot = pickle.dumps(proposer)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            logger.error(
                "The proposer is not picklable (%s); Tune cannot checkpoint this searcher. "
                "Build unpicklable handles lazily and drop them in __getstate__.",
                e,
            )
            self._snapshot = None
        self._future = _start_thread(
            _run_proposer, proposer, context, n, store, history_chars, check
        )
        self._deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        self.request = ProposalRequest(context.tier, context.reasons, time.time(), n)

    def collect(self) -> FinishedCall | None:
        """The call that finished since the last collect, or None (none, or still running)."""
        future = self._future
        if future is None or not future.done():
            return None
        request = self._forget()
        try:
            return FinishedCall(request, future.result())
        except Exception as failure:  # the proposer is untrusted code: any failure is handed on
            if isinstance(failure, _ProposerFailedError):
                return FinishedCall(request, ProposalBatch(report=failure.report), failure.error)
            return FinishedCall(request, ProposalBatch(), failure)

    def expire(self) -> FinishedCall | None:
        """Abandon an overdue call: a `FinishedCall` whose error is a `TimeoutError` (with an
        ``interrupted`` report), or None when no call is overdue."""
        if not self.overdue:
            return None
        request = self._forget()
        elapsed = time.time() - request.submitted_at if request else float(self.timeout_s or 0)
        reason = (
            f"the proposer did not answer within {self.timeout_s:g} s; the call was abandoned "
            "(its thread cannot be stopped and a late answer is ignored) and tuning continues"
        )
        proposer = self.proposer
        report = AgentCallReport(
            model=str(getattr(proposer, "model_id", None) or type(proposer).__name__),
            duration_s=elapsed,
            outcome="interrupted",
            error=f"no answer within {self.timeout_s:g} s",
            token_budget=getattr(proposer, "token_budget", None),
        )
        if self._snapshot is not None:
            # The hung thread keeps the live object; the next call gets its own copy.
            self.proposer = pickle.loads(self._snapshot)
        self._snapshot = None
        return FinishedCall(request, ProposalBatch(report=report), TimeoutError(reason))

    def _forget(self) -> ProposalRequest | None:
        """Drop the current call (its future and deadline) and return its request."""
        request, self.request = self.request, None
        self._future = None
        self._deadline = None
        return request

    def submit(self, proposal: Proposal) -> None:
        """Queue a proposal from outside the agent; thread-safe."""
        self._inbox.put(proposal)

    def take(self) -> list[tuple[Proposal, bool]]:
        """Every held and queued proposal, with whether it was checked; they are removed."""
        taken, self.held = self.held, []
        taken.extend((p, False) for p in _drain(self._inbox))
        return taken

    def close(self) -> None:
        """Forget a running call (its daemon thread ends on its own; not waited for)."""
        if self._future is not None:
            self._future.cancel()
        self._forget()
        self._snapshot = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        queued = _drain(self._inbox)
        for p in queued:  # put back: the live worker keeps them queued
            self._inbox.put(p)
        state["held"] = [*self.held, *((p, False) for p in queued)]
        state.update(_inbox=None, _future=None, _deadline=None, _snapshot=None)
        if self._future is not None and not self._future.done() and self._snapshot is not None:
            # The worker thread may be mutating the live proposer (building its agent):
            # pickle the copy taken when the call started instead of racing with it.
            state["proposer"] = None
            state["_proposer_blob"] = self._snapshot
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.pop("_proposer_blob", None)
        self.__dict__.update(state)
        self._inbox = queue.SimpleQueue()
        if blob is not None:
            self.proposer = pickle.loads(blob)
        if self.request is not None:
            logger.info("A proposer call in flight when the searcher was saved is dropped.")
            self.request = None


def _drain(inbox: queue.SimpleQueue[Proposal]) -> list[Proposal]:
    out: list[Proposal] = []
    while True:
        try:
            out.append(inbox.get_nowait())
        except queue.Empty:
            return out
