"""Where campaigns live: `<storage>/<file>-<goal>/<timestamp>/` and the campaign's name.

`agentune run` and `agentune submit` (which must know the folder before the job starts) both
pick the directory here.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from search.goals import CampaignError, CampaignGoal

if TYPE_CHECKING:
    from search.runner import CampaignOptions

__all__ = ["DEFAULT_STORAGE", "STORAGE_ENV", "campaign_directory", "campaign_name", "storage_root"]

STORAGE_ENV = "AGENTUNE_STORAGE"
DEFAULT_STORAGE = "agentune_runs"
_TIMESTAMP = "%Y%m%d-%H%M%S"
_STAMP_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def storage_root(storage: Path | None) -> Path:
    """The folder that holds campaign directories, absolute (Ray jobs run in a copy of cwd)."""
    root = storage or Path(os.environ.get(STORAGE_ENV, DEFAULT_STORAGE))
    return root.expanduser().resolve()


def campaign_directory(goal: CampaignGoal, options: CampaignOptions) -> Path:
    """A fresh `<storage>/<file>-<goal>/<timestamp>/`, or with `resume` the newest existing one.

    Raises:
        CampaignError: `resume` with no earlier campaign of this goal; a `stamp` that is not
            a plain folder name, or whose directory exists.
    """
    goal_dir = storage_root(options.storage) / goal.spec.replace(":", "-")
    if options.stamp is not None and not options.resume:
        if not _STAMP_RE.fullmatch(options.stamp):
            raise CampaignError(
                "--stamp names the campaign folder: letters, digits, '.', '_' and '-' (e.g. "
                f"20261201-162452), got {options.stamp!r}"
            )
        path = goal_dir / options.stamp
        if path.exists():
            raise CampaignError(
                f"--stamp {options.stamp}: the campaign directory {path} already exists; "
                "pick another stamp, or continue it with --resume"
            )
        return path
    if options.resume:
        earlier = sorted(p for p in goal_dir.glob("*") if (p / "history").is_dir())
        if not earlier:
            raise CampaignError(
                f"--resume: no earlier campaign of {goal.spec} under {goal_dir}; run it "
                "without --resume first, or pass the --storage it used"
            )
        return earlier[-1]
    stamp = datetime.now(UTC).strftime(_TIMESTAMP)
    path = goal_dir / stamp
    suffix = 1
    while path.exists():  # two campaigns started in the same second
        path = goal_dir / f"{stamp}-{suffix}"
        suffix += 1
    return path


def campaign_name(goal: CampaignGoal, campaign_dir: Path) -> str:
    """The campaign's name in the history: `<file>-<goal>-<folder>`
    (`mitbih-aami3_quick-20261201-162452`)."""
    return f"{goal.spec.replace(':', '-')}-{campaign_dir.name}"
