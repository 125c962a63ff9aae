"""The approval hooks: decisions, the callback's fail-closed rule, and the terminal dialogue.

The terminal hook is driven here with scripted streams (a stdin that says it is a terminal);
`tests/search/test_cli_approval_pty.py` drives it through a real pseudo-terminal.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import pytest

import agent
from agent import approval as legacy
from agent.hooks import (
    ApprovalDecision,
    ApprovalError,
    ApprovalHook,
    AutoApprovalHook,
    CallbackApprovalHook,
    TerminalApprovalHook,
    TrialRequest,
    hook_for,
    merge_overrides,
)
from feedback import FeedbackStore, RunRecord


class _Tty(io.StringIO):
    """Scripted keyboard input that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _request(**kwargs: Any) -> TrialRequest:
    base: dict[str, Any] = {
        "overrides": ("model=cnn1d", "trainer.lr=0.003", "model.width=8"),
        "run_num": 3,
        "arm": "base",
        "tier": 0,
        "origin": "optuna",
        "campaign": "c",
    }
    return TrialRequest(**{**base, **kwargs})


def _record(run_id: str, status: str, value: float | None, **kwargs: Any) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        campaign="c",
        arm="base",
        tier=0,
        origin="optuna",
        status=status,
        metric="val/macro_f1",
        mode="max",
        value=value,
        **kwargs,
    )


def _terminal(*lines: str, **kwargs: Any) -> tuple[TerminalApprovalHook, io.StringIO]:
    out = io.StringIO()
    stdin = _Tty("".join(f"{line}\n" for line in lines))
    return TerminalApprovalHook(stdin=stdin, stdout=out, **kwargs), out


# --------------------------------------------------------------------- decisions


def test_decisions_validate_their_fields() -> None:
    assert ApprovalDecision.modify(["trainer.lr=0.1 "]).overrides == ("trainer.lr=0.1",)
    assert ApprovalDecision("approve", auto=True).auto
    cases: list[tuple[dict[str, Any], str]] = [
        ({"action": "maybe"}, "must be one of"),
        ({"action": "modify"}, "needs overrides"),
        ({"action": "modify", "overrides": []}, "at least one override"),
        ({"action": "modify", "overrides": "trainer.lr=1"}, "list of 'key=value'"),
        ({"action": "modify", "overrides": ["trainer.lr"]}, "key=value"),
        ({"action": "approve", "overrides": ["trainer.lr=1"]}, "only for 'modify'"),
        ({"action": "reject", "auto": True}, "only for 'approve'"),
        ({"action": "reject", "reason": 3}, "reason must be a str"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            ApprovalDecision(**bad)


def test_merge_overrides_by_key() -> None:
    proposed = ["model=cnn1d", "trainer.lr=0.003", "model.width=8"]
    changed = merge_overrides(proposed, ["trainer.lr=0.001", "model.depth=3"])
    assert changed == ["model=cnn1d", "trainer.lr=0.001", "model.width=8", "model.depth=3"]
    full = merge_overrides(proposed, ["model=cnn1d", "trainer.lr=0.001", "model.width=8"])
    assert full == ["model=cnn1d", "trainer.lr=0.001", "model.width=8"]
    assert merge_overrides(proposed, ["trainer.lr=1", "trainer.lr=2"])[1] == "trainer.lr=2"
    with pytest.raises(ValueError, match="key=value"):
        merge_overrides(proposed, ["oops"])


def test_exports_and_the_old_names() -> None:
    for name in ("ApprovalDecision", "TrialRequest", "TerminalApprovalHook", "hook_for"):
        assert name in agent.__all__ and getattr(agent, name) is not None
    assert legacy.AutoApproval is AutoApprovalHook
    assert legacy.TerminalApproval is TerminalApprovalHook
    assert legacy.ApprovalDecision is ApprovalDecision


def test_auto_hook_approves_everything_and_pickles() -> None:
    hook = pickle.loads(pickle.dumps(AutoApprovalHook()))
    assert isinstance(hook, ApprovalHook)
    assert hook.review(_request()) == ApprovalDecision("approve", auto=True)


# --------------------------------------------------------------------- callback


def _cautious(overrides: list[str], store: FeedbackStore | None, run_num: int) -> ApprovalDecision:
    if "model.width=8" in overrides:
        return ApprovalDecision.modify(["model.width=4"], f"run {run_num}: smaller")
    return ApprovalDecision.approve()


def test_callback_gets_overrides_store_and_run_number(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    seen: list[tuple[list[str], Any, int]] = []

    def fn(overrides: list[str], s: FeedbackStore | None, run_num: int) -> ApprovalDecision:
        seen.append((overrides, s, run_num))
        overrides.append("mutated")  # a fresh list: the request is not changed
        return ApprovalDecision.reject("no")

    request = _request(store=store)
    assert CallbackApprovalHook(fn).review(request) == ApprovalDecision.reject("no")
    assert seen[0][1] is store and seen[0][2] == 3
    assert request.overrides == ("model=cnn1d", "trainer.lr=0.003", "model.width=8")
    hook = pickle.loads(pickle.dumps(CallbackApprovalHook(_cautious)))
    assert hook.review(_request()).overrides == ("model.width=4",)


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (lambda o, s, n: 1 / 0, "the approval callback raised ZeroDivisionError"),
        (lambda o, s, n: "approve", "returned str, not an ApprovalDecision"),
        (lambda o, s, n: None, "returned NoneType"),
    ],
)
def test_callback_fails_closed(fn: Any, reason: str) -> None:
    decision = CallbackApprovalHook(fn).review(_request())
    assert decision.action == "reject" and reason in decision.reason


def test_callback_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        CallbackApprovalHook("approve")  # type: ignore[arg-type]


# --------------------------------------------------------------------- terminal


def test_terminal_shows_the_trial_runs_done_best_and_recommendation(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    store.append(_record("r1", "completed", 0.7, params={"trainer.lr": 0.01}))
    store.append(_record("r2", "failed", None))
    hook, out = _terminal("y")
    request = _request(
        store=store,
        recommendation="change_model: stagnant",
        rationale="try it\x1b[2J",  # agent text cannot drive the terminal
        origin="agent",
        arm="resnet",
        tier=2,
    )
    assert hook.review(request) == ApprovalDecision.approve()
    shown = out.getvalue()
    assert "trial 3 for approval" in shown
    assert "proposed by agent: arm resnet, tier 2" in shown
    assert "overrides: model=cnn1d trainer.lr=0.003 model.width=8" in shown
    assert "runs done: 2 (1 completed, 1 failed)" in shown
    assert "best so far: val/macro_f1=0.7000 (run r1" in shown
    assert "best config: " in shown and "trainer.lr=0.01" in shown
    assert "recommendation: change_model: stagnant" in shown
    assert "why: try it\\x1b[2J" in shown and "\x1b" not in shown


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["yes"], ApprovalDecision.approve()),
        (["n", "too big"], ApprovalDecision.reject("too big")),
        (["no", ""], ApprovalDecision.reject("rejected at the terminal")),
        (
            ["m trainer.lr=0.001 model.width=32"],
            ApprovalDecision.modify(
                ["trainer.lr=0.001", "model.width=32"], "modified at the terminal"
            ),
        ),
        (
            ["m", "trainer.lr=0.001"],
            ApprovalDecision.modify(["trainer.lr=0.001"], "modified at the terminal"),
        ),
        (["m nonsense", "y"], ApprovalDecision.approve()),
        (["what", "?", "y"], ApprovalDecision.approve()),
    ],
)
def test_terminal_answers(lines: list[str], expected: ApprovalDecision) -> None:
    hook, _ = _terminal(*lines)
    assert hook.review(_request()) == expected


def test_terminal_says_what_is_allowed_and_helps() -> None:
    hook, out = _terminal("maybe", "?", "m oops", "y")
    hook.review(_request())
    shown = out.getvalue()
    assert "'maybe' is not an answer; type y, n, m <overrides>, a, s or ?" in shown
    assert "approve this trial and every later one" in shown  # the help
    assert "m needs key=value overrides" in shown and "'oops'" in shown


def test_terminal_auto_approves_after_a() -> None:
    hook, out = _terminal("a")
    first = hook.review(_request())
    assert first.action == "approve" and not first.auto  # a person approved this one
    assert "every later trial is approved without asking" in out.getvalue()
    later = pickle.loads(pickle.dumps(hook)).review(_request(run_num=4))
    assert later == ApprovalDecision("approve", auto=True)  # asked nothing


def test_terminal_shows_the_generated_source_of_a_tier3_arm() -> None:
    source = "class Net:\n    pass\n"
    hook, out = _terminal("s", "y")
    hook.review(_request(tier=3, model_source=source))
    assert "type s to read it" in out.getvalue()
    assert "class Net:\n    pass\n--- end of source ---" in out.getvalue()
    hook, out = _terminal("s", "y")
    hook.review(_request())
    assert "has no generated source" in out.getvalue()


def test_end_of_input_rejects_without_asking_again() -> None:
    hook, out = _terminal()
    assert hook.review(_request()).action == "reject"
    assert hook.review(_request()).reason == "no answer: the terminal's input was closed"
    assert out.getvalue().count("run it?") == 1


def test_terminal_pauses_the_display_while_it_asks() -> None:
    calls: list[str] = []

    @contextlib.contextmanager
    def pause() -> Iterator[None]:
        calls.append("stop")
        yield
        calls.append("start")

    class _Watching:
        def __init__(self, text: str) -> None:
            self.lines = _Tty(text)

        def isatty(self) -> bool:
            return True

        def readline(self) -> str:
            calls.append("read")
            return self.lines.readline()

    stdin = cast("TextIO", _Watching("y\n"))
    hook = TerminalApprovalHook(stdin=stdin, stdout=io.StringIO(), pause=pause)
    hook.review(_request())
    assert calls == ["stop", "read", "start"]


def test_terminal_pickles_without_its_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    hook, _ = _terminal("y", pause=contextlib.nullcontext)
    copy = pickle.loads(pickle.dumps(hook))
    assert copy._pause is None
    monkeypatch.setattr(sys, "stdin", _Tty("n\n\n"))
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert copy.stdin is sys.stdin and copy.stdout is sys.stderr
    assert copy.review(_request()).action == "reject"
    assert "run it?" in sys.stderr.getvalue()


def test_terminal_refuses_to_start_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ApprovalError, match="interactive terminal") as info:
        TerminalApprovalHook(stdin=io.StringIO())
    assert "--approval auto" in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    with pytest.raises(ApprovalError, match="interactive terminal"):
        hook_for("terminal")


def test_hook_for() -> None:
    assert isinstance(hook_for("auto"), AutoApprovalHook)
    with pytest.raises(ApprovalError, match="must be one of auto, terminal, got 'sometimes'"):
        hook_for("sometimes")
