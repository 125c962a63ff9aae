"""`agentune run GOAL --approval terminal` through a real pseudo-terminal, answered as a person.

The campaign runs in a child process whose stdin, stdout and stderr are the slave side of a
pty (so `isatty()` is true and rich draws its live progress bar); the test reads the master
side and types an answer each time a prompt appears: `y`, then `m trainer.lr=0.001`, then `n`
with a reason, then `a` (every later trial is approved without asking).
"""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feedback import FeedbackStore
from search.cli import EXIT_USAGE, main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")

GOAL = """
goals:
  tiny:
    description: approval through a pseudo-terminal
    experiment: mitbih_aami3_quick
    overrides: ["trainer.epochs=1"]
    metric: val/macro_f1
    mode: max
    budget: 4
    max_concurrent: 1
    space:
      trainer.lr: {loguniform: [1.0e-3, 1.0e-2]}
      model.width: {randint: [4, 8]}
    max_tier: 0
"""

PROMPT = "[?]help: "
REASON = "reason (optional"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


@pytest.fixture
def campaigns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "test.yaml").write_text(GOAL, encoding="utf-8")
    monkeypatch.setenv("AGENTUNE_CAMPAIGNS_DIR", str(folder))
    return folder


class _Terminal:
    """The master side of a pty: everything the child wrote so far, and typing."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.raw = b""

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", errors="replace"))

    def read(self, timeout: float) -> bool:
        """Read what is there (waiting up to `timeout`); False once the child closed it."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: every slave fd is closed
            return False
        self.raw += chunk
        return bool(chunk)

    def wait_for(
        self, needle: str, count: int, proc: subprocess.Popen[bytes], limit: float
    ) -> None:
        deadline = time.monotonic() + limit
        while self.text.count(needle) < count:
            if time.monotonic() > deadline or (not self.read(0.5) and proc.poll() is not None):
                pytest.fail(f"never saw {needle!r} #{count}; the terminal shows:\n{self.text}")

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")  # Enter, as a keyboard sends it


@pytest.mark.slow
def test_terminal_approval_through_a_pty(campaigns: Path, tmp_path: Path) -> None:
    storage = tmp_path / "runs"
    master, slave = os.openpty()
    env = {
        **os.environ,
        "AGENTUNE_CAMPAIGNS_DIR": str(campaigns),
        "COLUMNS": "160",
        "LINES": "40",
        "TERM": "xterm",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    command = [sys.executable, "-m", "search", "run", "test:tiny"]
    command += ["--approval", "terminal", "--storage", str(storage)]
    proc = subprocess.Popen(
        command,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,  # its own session: signals to the test do not reach it
    )
    os.close(slave)
    term = _Terminal(master)
    try:
        term.wait_for(PROMPT, 1, proc, limit=180)
        assert "proposed by optuna: arm base, tier 0" in term.text
        assert "runs done: 0" in term.text and "best so far: none yet" in term.text
        term.type("what?")  # not an answer: told what is allowed, asked again
        term.wait_for(PROMPT, 2, proc, limit=30)
        assert "is not an answer" in term.text
        term.type("y")
        term.wait_for(PROMPT, 3, proc, limit=180)
        assert "runs done: 1 (1 completed)" in term.text and "best config: " in term.text
        term.type("m trainer.lr=0.001")
        term.wait_for(PROMPT, 4, proc, limit=180)
        term.type("n")
        term.wait_for(REASON, 1, proc, limit=30)
        term.type("too similar to the last one")
        term.wait_for(PROMPT, 5, proc, limit=60)  # sampled again in the same suggest()
        term.type("a")
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            term.read(0.5)
        while term.read(0.2) and proc.poll() is not None and len(term.raw) < 10_000_000:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        os.close(master)
    text = term.text
    assert proc.returncode == 0, text
    assert text.count(PROMPT) == 5, text  # nothing asked after `a`
    assert "every later trial is approved without asking" in text
    assert "dashboard: " in text

    (campaign_dir,) = (storage / "test-tiny").iterdir()
    store = FeedbackStore(campaign_dir / "history")
    decisions = [(e.data["run_num"], e.data["decision"]) for e in store.events(kind="approval")]
    assert decisions == [(1, "approved"), (2, "modified"), (3, "rejected"), (4, "approved"),
                         (5, "auto")]  # fmt: skip
    runs = {r.approval: r for r in store.runs()}
    assert runs["modified"].params["trainer.lr"] == 0.001
    assert runs["rejected"].status == "rejected"
    assert runs["rejected"].error == "too similar to the last one"
    assert len([r for r in store.runs() if r.status != "rejected"]) == 4
    assert "trial #2 modified" in (campaign_dir / "dashboard.html").read_text(encoding="utf-8")


def test_terminal_approval_without_a_terminal_exits_2(
    campaigns: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code = main(["run", "test:tiny", "--approval", "terminal", "--storage", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USAGE
    assert len(err.splitlines()) == 1
    assert "interactive terminal" in err and "--approval auto" in err
    assert not (tmp_path / "test-tiny").exists()  # refused before anything started
