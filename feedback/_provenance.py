"""Where a run's code came from: :func:`git_commit`.

The driver calls it once per campaign and stamps every :class:`feedback.RunRecord` with it
(``git_commit=``); the trainer does not, since trials may run in a copy of the working tree
without ``.git`` (``ray job submit --working-dir``).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from pathlib import Path

__all__ = ["GIT_TIMEOUT_S", "git_commit"]

logger = logging.getLogger(__name__)

#: Seconds each git command may take; a slow or hung git (network file system) gives None.
GIT_TIMEOUT_S = 5.0

_HASH = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # SHA-1, or SHA-256 object format


def _git(args: list[str], cwd: Path) -> str | None:
    """stdout of ``git <args>`` in ``cwd``; None when git is missing, fails or times out."""
    # No optional locks: `git status` would otherwise refresh and rewrite the index, racing
    # with whoever else uses the checkout.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        logger.info("git is not installed; runs record no git commit")
        return None
    except (subprocess.TimeoutExpired, OSError) as e:
        logger.warning("git %s in %s failed (%s); runs record no git commit", args[0], cwd, e)
        return None
    if done.returncode != 0:
        logger.debug("git %s in %s: %s", " ".join(args), cwd, done.stderr.strip())
        return None
    return done.stdout


def git_commit(path: str | Path | None = None) -> str | None:
    """The git commit of the checkout holding ``path``, for a run's provenance.

    Runs ``git rev-parse HEAD`` and ``git status --porcelain --untracked-files=no`` in
    ``path`` (each with a :data:`GIT_TIMEOUT_S` timeout, without taking git's optional
    locks). The commit is ``HEAD``'s full hash, with ``-dirty`` appended when a tracked file
    differs from it (staged or not): the commit alone would then not reproduce the code.
    Untracked files do not count: campaigns create them (generated models and configs, run
    directories), and what matters of them is recorded with each run.

    Args:
        path: A directory inside the project's checkout (or a file in it); default the
            current directory.

    Returns:
        ``"<hash>"`` or ``"<hash>-dirty"``; None when ``path`` is not in a git checkout, the
        repository has no commit yet, git is not installed or does not answer in time. When
        the hash is known but ``git status`` fails, the hash is returned without ``-dirty``
        and a warning is logged.
    """
    cwd = Path(path).expanduser() if path is not None else Path.cwd()
    if cwd.is_file():
        cwd = cwd.parent
    if not cwd.is_dir():
        logger.info("git_commit: %s is not a directory; no git commit", cwd)
        return None
    head = _git(["rev-parse", "--verify", "HEAD"], cwd)
    commit = head.strip() if head is not None else ""
    if not _HASH.match(commit):
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    if status is None:
        logger.warning(
            "git status failed in %s: recording commit %s without knowing whether the "
            "working tree has uncommitted changes",
            cwd,
            commit[:12],
        )
        return commit
    return f"{commit}-dirty" if status.strip() else commit
