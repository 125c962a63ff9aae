"""Submit a campaign to a Ray cluster as a Ray job: what `agentune submit GOAL` does.

The job is `agentune run GOAL --storage ABS --stamp STAMP ...` run by the cluster in an
uploaded copy of this project (runtime_env `working_dir`, minus `UPLOAD_EXCLUDES`), exactly
what `ray job submit --working-dir . -- agentune run GOAL` runs, plus:

* the submission id `agentune-<campaign>`, where the campaign is named after the goal and
  the UTC submission time (`agentune-mitbih-aami3_quick-20261201-162452`), and the same stamp
  is the campaign directory's name, so
* the job metadata can name the campaign and the absolute paths of its history and dashboard
  before the job starts (`ray job list` / the dashboard's job page show them);
* secrets (the goal's `llm.api_key_env`, and every `--env NAME`) are read from this shell's
  environment at submit time and reach the job only through runtime_env `env_vars`: they are
  never written into a file of the upload, the entrypoint or the metadata;
* Ray's token authentication: the token is read the way Ray reads it (`RAY_AUTH_TOKEN`,
  `RAY_AUTH_TOKEN_PATH`, `~/.ray/auth_token`) and sent as the `Authorization` header, unless
  `RAY_AUTH_MODE=disabled`.

`plan_submission` builds the `JobPlan` (`search.job_plan`; no network); `submit_job` sends
it through `ray.job_submission.JobSubmissionClient`; `follow_job` streams its logs until it
ends.

Example::

    goal = load_goal("mitbih:aami3_quick")
    plan = plan_submission(goal, address="http://127.0.0.1:8265", budget=4)
    submit_job(plan)
    print("\\n".join(plan.instructions()))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from search.goals import CampaignError, CampaignGoal
from search.job_plan import PROJECT_ROOT, UPLOAD_EXCLUDES, JobPlan

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DEFAULT_ADDRESS",
    "PROJECT_ROOT",
    "UPLOAD_EXCLUDES",
    "JobPlan",
    "SubmitError",
    "auth_headers",
    "follow_job",
    "normalize_address",
    "plan_submission",
    "submit_job",
]

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
_TIMESTAMP = "%Y%m%d-%H%M%S"  # the runner's campaign folder format
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Ray's own variables are the cluster's business, never forwarded from the client.
_RAY_PREFIX = "RAY_"


class SubmitError(CampaignError):
    """The job cannot be submitted; the message says what was wrong and what to do."""


def normalize_address(address: str | None, environ: Mapping[str, str]) -> str:
    """The dashboard URL to submit to: `address`, else `RAY_API_SERVER_ADDRESS`, else an
    http(s) `RAY_ADDRESS`, else `DEFAULT_ADDRESS`; `host:port` gets `http://`.

    Raises:
        SubmitError: not an http(s) URL with a host and a port.
    """
    chosen = address or environ.get("RAY_API_SERVER_ADDRESS") or ""
    if not chosen:
        env_address = environ.get("RAY_ADDRESS", "")
        chosen = env_address if env_address.startswith(("http://", "https://")) else ""
    chosen = (chosen or DEFAULT_ADDRESS).strip().rstrip("/")
    if "://" not in chosen:
        chosen = f"http://{chosen}"
    parsed = urlparse(chosen)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or port is None:
        raise SubmitError(
            f"--address must be the cluster dashboard's URL, http://HOST:PORT (Ray's default "
            f"port is 8265, e.g. {DEFAULT_ADDRESS}), got {address or chosen!r}"
        )
    return chosen


def auth_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `Authorization` header for Ray's token authentication, or {} without a token.

    The token is looked up as Ray does: `RAY_AUTH_TOKEN`, else the file `RAY_AUTH_TOKEN_PATH`,
    else `~/.ray/auth_token`; `RAY_AUTH_MODE=disabled` sends none.

    Raises:
        SubmitError: `RAY_AUTH_TOKEN_PATH` names a file that cannot be read.
    """
    env = os.environ if environ is None else environ
    if env.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    token = env.get("RAY_AUTH_TOKEN", "").strip()
    if not token and env.get("RAY_AUTH_TOKEN_PATH"):
        path = Path(env["RAY_AUTH_TOKEN_PATH"]).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as e:
            raise SubmitError(
                f"RAY_AUTH_TOKEN_PATH={path} cannot be read ({e.strerror or e}); point it at "
                "the cluster's token file, or unset it to use ~/.ray/auth_token"
            ) from e
    if not token:
        default = Path(env.get("HOME", str(Path.home()))) / ".ray" / "auth_token"
        try:
            token = default.read_text().strip()
        except OSError:
            token = ""
    return {"Authorization": f"Bearer {token}"} if token else {}


def _job_goal(goal: CampaignGoal) -> str:
    """The goal as the job loads it: the spec when the file is one of the project's
    campaigns, else the file's path relative to the project root.

    Raises:
        SubmitError: the goal file is outside the project (the job could not read it).
    """
    source = goal.source.resolve() if goal.source is not None else None
    if source is None or source.parent == PROJECT_ROOT / "campaigns":
        return goal.spec
    try:
        relative = source.relative_to(PROJECT_ROOT)
    except ValueError:
        raise SubmitError(
            f"the goal file {source} is outside the project folder {PROJECT_ROOT}, which is "
            "what the job receives; move the file into the project (e.g. campaigns/) and "
            "submit it from there"
        ) from None
    return f"{relative.as_posix()}:{goal.name}"


def _secret_names(goal: CampaignGoal, model: str | None, env_names: Sequence[str]) -> list[str]:
    """The variables to forward: the goal's `llm.api_key_env` (when a real model is used),
    then every `--env` name, each once.

    Raises:
        SubmitError: a name that is not a variable name, or one of Ray's own.
    """
    names: list[str] = []
    effective_model = model or goal.llm.model
    if goal.llm.api_key_env and effective_model != "offline":
        names.append(goal.llm.api_key_env)
    for name in env_names:
        if not _ENV_NAME.fullmatch(name):
            raise SubmitError(
                f"--env takes the NAME of an environment variable of this shell "
                f"([A-Za-z_][A-Za-z0-9_]*; its value is read here), got {name!r}"
            )
        if name.startswith(_RAY_PREFIX):
            raise SubmitError(
                f"--env {name}: Ray's own variables are the cluster's settings and are not "
                "forwarded; set them on the cluster's nodes"
            )
        if name not in names:
            names.append(name)
    return names


def plan_submission(
    goal: CampaignGoal,
    *,
    address: str | None = None,
    budget: int | None = None,
    storage: Path | None = None,
    model: str | None = None,
    api_base: str | None = None,
    env_names: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> JobPlan:
    """Build the submission of `goal` (no network).

    Args:
        goal: the loaded goal (`search.goals.load_goal`).
        address: the dashboard URL (see `normalize_address`).
        budget: trials (default the goal's).
        storage: where campaign directories go on the node running the job; relative paths
            are made absolute here (the job runs in a temporary copy of the project). Default
            `$AGENTUNE_STORAGE` or `./agentune_runs`, made absolute.
        model: the agent's model instead of the goal's (`agentune run --model`).
        api_base: an OpenAI-compatible server (`agentune run --api-base`).
        env_names: further variables to forward from `environ` (API keys of other backends).
        environ: where secrets are read (default `os.environ`).
        now: the submission time (default now, UTC).

    Raises:
        SubmitError: a bad address, budget or variable name, a variable that is not set, a
            goal file outside the project, or a campaign directory that exists already.
    """
    from feedback import git_commit
    from search.campaign_dirs import campaign_directory, campaign_name, storage_root
    from search.runner import CampaignOptions

    env = os.environ if environ is None else environ
    url = normalize_address(address, env)
    if budget is not None and budget < 1:
        raise SubmitError(f"--budget must be a positive number of trials, got {budget}")
    names = _secret_names(goal, model, env_names)
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise SubmitError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set in this shell; "
            "the job gets secrets from the environment you submit from: export "
            f"{missing[0]}=... and submit again (or drop --env {missing[0]})"
        )
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(_TIMESTAMP)
    root = storage_root(storage)
    campaign_dir = campaign_directory(goal, CampaignOptions(storage=root, stamp=stamp))
    campaign = campaign_name(goal, campaign_dir)
    job_goal = _job_goal(goal)
    trials = budget or goal.budget
    argv = ["agentune", "run", job_goal, "--budget", str(trials), "--storage", str(root)]
    argv += ["--stamp", stamp]
    if model:
        argv += ["--model", model]
    if api_base:
        argv += ["--api-base", api_base]
    return JobPlan(
        address=url,
        submission_id=f"agentune-{campaign}",
        campaign=campaign,
        goal=job_goal,
        budget=trials,
        entrypoint=shlex.join(argv),
        campaign_dir=campaign_dir,
        env_names=tuple(names),
        secrets={n: env[n] for n in names},
        git_commit=git_commit(PROJECT_ROOT),
    )


def _client(address: str, headers: Mapping[str, str]) -> Any:
    """A connected `JobSubmissionClient`.

    Raises:
        SubmitError: the cluster cannot be reached or refuses the token.
    """
    from ray.exceptions import RayError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=dict(headers))
    except (RayError, ConnectionError, RuntimeError, ValueError, OSError) as e:
        raise SubmitError(_connection_problem(address, e, bool(headers))) from e


def _connection_problem(address: str, error: BaseException, token: bool) -> str:
    text = " ".join(str(error).split())
    if "401" in text or "403" in text or "nauthorized" in text or "orbidden" in text:
        have = "the token sent was refused" if token else "no token was found"
        if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
            have = "RAY_AUTH_MODE=disabled in this shell sends none (unset it)"
        return (
            f"the cluster at {address} requires Ray's token authentication and {have}; put "
            "the cluster's token (`ray get-auth-token` on the head node) in ~/.ray/auth_token "
            "or RAY_AUTH_TOKEN and submit again"
        )
    return (
        f"cannot reach a Ray cluster at {address} ({text[:200]}); start one (`ray start "
        "--head --dashboard-host=127.0.0.1 ...`, see cluster/README.md) or pass the "
        "dashboard's URL with --address"
    )


# Ray's client logs every ignore file of the upload (INFO) and its changed default excludes
# (WARNING, about .git and .venv, which UPLOAD_EXCLUDES leaves out anyway).
_RAY_CLIENT_LOGGERS = ("ray", "ray.dashboard.modules.dashboard_sdk")


@contextlib.contextmanager
def _quiet_ray_logs() -> Iterator[None]:
    """Only errors from Ray's client, unless `agentune -v` (our logger at INFO)."""
    import ray.job_submission  # noqa: F401  # its modules set their loggers' levels on import

    loggers = [logging.getLogger(name) for name in _RAY_CLIENT_LOGGERS]
    before = [each.level for each in loggers]
    if not logger.isEnabledFor(logging.INFO):
        for each in loggers:
            each.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for each, level in zip(loggers, before, strict=True):
            each.setLevel(level)


def submit_job(
    plan: JobPlan,
    *,
    headers: Mapping[str, str] | None = None,
    client_factory: Callable[[str, Mapping[str, str]], Any] = _client,
) -> str:
    """Submit `plan` and return its submission id.

    Args:
        plan: from `plan_submission`.
        headers: HTTP headers (default `auth_headers()`).
        client_factory: builds the job client (tests pass a fake).

    Raises:
        SubmitError: the cluster cannot be reached, refuses the token, or refuses the job
            (e.g. the submission id exists).
    """
    from ray.exceptions import RayError

    sent = auth_headers() if headers is None else dict(headers)
    try:
        with _quiet_ray_logs():
            client = client_factory(plan.address, sent)
            submission_id: str = client.submit_job(
                entrypoint=plan.entrypoint,
                submission_id=plan.submission_id,
                runtime_env=plan.runtime_env(),
                metadata=plan.metadata,
            )
    except SubmitError:
        raise
    except (RayError, ConnectionError, RuntimeError, ValueError, OSError) as e:
        first = " ".join(str(e).split())[:300]
        hint = ""
        if "No available agent" in first:
            hint = (
                "; the head's dashboard agent is not up (another Ray session on that machine may "
                "hold its port 52365): restart the head with --dashboard-agent-listen-port=PORT"
            )
        raise SubmitError(
            f"the cluster at {plan.address} refused the job {plan.submission_id}: {first}{hint}"
        ) from e
    logger.info("submitted %s: %s", submission_id, plan.entrypoint)
    return submission_id


def follow_job(
    plan: JobPlan,
    *,
    headers: Mapping[str, str] | None = None,
    write: Callable[[str], object] | None = None,
    poll_s: float = 2.0,
    client_factory: Callable[[str, Mapping[str, str]], Any] = _client,
) -> str:
    """Stream the job's logs to `write` until it ends; returns its final status
    (`SUCCEEDED`, `FAILED`, `STOPPED`)."""
    sent = auth_headers() if headers is None else dict(headers)
    client = client_factory(plan.address, sent)
    out = write or (lambda text: print(text, end="", flush=True))

    async def tail() -> None:
        async for lines in client.tail_job_logs(plan.submission_id):
            out(lines)

    try:
        asyncio.run(tail())
    except (ConnectionError, RuntimeError, OSError) as e:  # the stream broke: poll instead
        logger.warning("log stream ended (%s); waiting for the job's status", e)
    for status in _statuses(client, plan.submission_id, poll_s):
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            return status
    return "UNKNOWN"  # pragma: no cover - _statuses only ends on a final status


def _statuses(client: Any, submission_id: str, poll_s: float) -> Iterator[str]:
    while True:
        yield str(client.get_job_status(submission_id))
        time.sleep(poll_s)
