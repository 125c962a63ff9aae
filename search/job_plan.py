"""The submission as data: `JobPlan`, what the job uploads, what `agentune submit` prints.

`search.submit.plan_submission` builds a `JobPlan`; `search.submit.submit_job` sends it. The
plan holds the job's entrypoint, metadata and runtime_env (the upload, minus
`UPLOAD_EXCLUDES`, and the forwarded variables) and the lines `agentune submit` prints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.contract import GIT_COMMIT_ENV

__all__ = ["PROJECT_ROOT", "UPLOAD_EXCLUDES", "JobPlan"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The folder uploaded as the job's working dir: this checkout (campaigns/, configs/, code)."""
UPLOAD_EXCLUDES: tuple[str, ...] = (
    ".git",
    ".venv",
    "**/__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
    ".cache",
    "build",
    "dist",
    # campaign output, training runs and Hydra's folders: results, not code
    "agentune_runs",
    "runs",
    "outputs",
    "multirun",
    # what a local campaign's agent generated: a job's agent writes its own
    "generated_models/gen_*.py",
    "configs/model/gen_*.yaml",
    # secrets never travel in the upload (they go through runtime_env env_vars)
    ".env",
    ".env.*",
)
"""runtime_env `excludes` of the upload (gitignore syntax); `cluster/runtime_env.yaml`, the
file `ray job submit --runtime-env` takes, lists the same (a test checks it)."""


@dataclass(frozen=True)
class JobPlan:
    """Everything a submission sends, built by `plan_submission`.

    Attributes:
        address: the cluster's dashboard URL (`http://127.0.0.1:8265`).
        submission_id: `agentune-<campaign>`.
        campaign: the campaign's name in the history (`mitbih-aami3_quick-20261201-162452`).
        goal: the goal as the job loads it (`mitbih:aami3_quick`, or a path inside the
            project relative to its root).
        budget: trials to run.
        entrypoint: the shell command the job runs (`agentune run ...`); holds no secret.
        campaign_dir: where the campaign directory lands on the node running the job.
        working_dir: the folder uploaded.
        env_names: the variables forwarded from this shell (names only).
        secrets: their values (never printed: excluded from repr).
    """

    address: str
    submission_id: str
    campaign: str
    goal: str
    budget: int
    entrypoint: str
    campaign_dir: Path
    working_dir: Path = PROJECT_ROOT
    env_names: tuple[str, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    git_commit: str | None = None

    @property
    def history_dir(self) -> Path:
        """The campaign's Parquet history (absolute)."""
        return self.campaign_dir / "history"

    @property
    def dashboard(self) -> Path:
        """The campaign's HTML dashboard (absolute; written when the campaign ends)."""
        return self.campaign_dir / "dashboard.html"

    @property
    def metadata(self) -> dict[str, str]:
        """The job metadata: campaign, goal, budget and the absolute result paths."""
        return {
            "campaign": self.campaign,
            "goal": self.goal,
            "budget": str(self.budget),
            "history": str(self.history_dir),
            "dashboard": str(self.dashboard),
        }

    def runtime_env(self) -> dict[str, Any]:
        """The job's runtime_env: the upload and the forwarded variables (secret values!)."""
        # Unbuffered: the one-line-per-trial progress reaches `ray job logs` as it happens.
        env_vars = {"PYTHONUNBUFFERED": "1", **self.secrets}
        if self.git_commit:  # the upload has no .git: the job's records get it from here
            env_vars[GIT_COMMIT_ENV] = self.git_commit
        return {
            "working_dir": str(self.working_dir),
            "excludes": list(UPLOAD_EXCLUDES),
            "env_vars": env_vars,
        }

    def instructions(self, *, token: bool = False) -> list[str]:
        """What `agentune submit` prints: the id, how to follow the job, where results land.

        Args:
            token: the cluster needs the auth token; `ray job` commands then need
                `RAY_AUTH_MODE=token` in their environment.
        """
        ray = "RAY_AUTH_MODE=token ray" if token and not _auth_mode_set() else "ray"
        at = f"{self.submission_id} --address {self.address}"
        return [
            f"submitted: {self.submission_id} ({self.goal}, {self.budget} trials) to "
            f"{self.address}",
            f"logs:      {ray} job logs --follow {at}",
            f"status:    {ray} job status {at}",
            f"stop:      {ray} job stop {at}",
            f"history:   {self.history_dir}",
            f"dashboard: {self.dashboard} (written when the campaign ends)",
        ]


def _auth_mode_set() -> bool:
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
