"""`agentune submit` without a cluster: the job plan, secrets, auth headers, bad input.

A fake job client stands in for the cluster here; test_job_submit_integration.py submits to
a real head on loopback.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feedback import git_commit
from search.campaign_dirs import campaign_directory
from search.cli import main
from search.contract import GIT_COMMIT_ENV
from search.goals import CampaignError, CampaignGoal, load_goal
from search.runner import CampaignOptions
from search.submit import (
    DEFAULT_ADDRESS,
    PROJECT_ROOT,
    UPLOAD_EXCLUDES,
    JobPlan,
    SubmitError,
    auth_headers,
    normalize_address,
    plan_submission,
    submit_job,
)

NOW = datetime(2026, 12, 1, 16, 24, 52, tzinfo=UTC)
SECRET = "sk-test-0123456789abcdefSECRET"


@pytest.fixture(scope="module")
def quick() -> CampaignGoal:
    return load_goal("mitbih:aami3_quick")


def _with_llm(goal: CampaignGoal, **llm: object) -> CampaignGoal:
    return goal.model_copy(update={"llm": goal.llm.model_copy(update=llm)})


def test_plan_names_the_job_after_the_campaign_and_its_paths(
    quick: CampaignGoal, tmp_path: Path
) -> None:
    plan = plan_submission(
        quick, address="http://127.0.0.1:8265", budget=4, storage=tmp_path, environ={}, now=NOW
    )
    campaign = "mitbih-aami3_quick-20261201-162452"
    assert plan.campaign == campaign
    assert plan.submission_id == f"agentune-{campaign}"
    campaign_dir = tmp_path / "mitbih-aami3_quick" / "20261201-162452"
    assert plan.campaign_dir == campaign_dir
    assert plan.entrypoint == (
        f"agentune run mitbih:aami3_quick --budget 4 --storage {tmp_path} --stamp 20261201-162452"
    )
    assert plan.metadata == {
        "campaign": campaign,
        "goal": "mitbih:aami3_quick",
        "budget": "4",
        "history": str(campaign_dir / "history"),
        "dashboard": str(campaign_dir / "dashboard.html"),
    }
    env = plan.runtime_env()
    assert env["working_dir"] == str(PROJECT_ROOT)
    assert env["excludes"] == list(UPLOAD_EXCLUDES)
    assert {k: v for k, v in env["env_vars"].items() if k != GIT_COMMIT_ENV} == {
        "PYTHONUNBUFFERED": "1"
    }
    # The job's runner puts the campaign exactly where the metadata says.
    same = campaign_directory(quick, CampaignOptions(storage=tmp_path, stamp="20261201-162452"))
    assert same == campaign_dir


def test_relative_storage_becomes_absolute(
    quick: CampaignGoal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    plan = plan_submission(quick, storage=Path("runs"), environ={}, now=NOW)
    assert plan.campaign_dir.is_absolute()
    assert plan.campaign_dir.parent.parent == tmp_path.resolve() / "runs"
    assert f"--storage {tmp_path.resolve() / 'runs'}" in plan.entrypoint


def test_secrets_reach_only_the_runtime_env(quick: CampaignGoal, tmp_path: Path) -> None:
    goal = _with_llm(quick, model="gpt-4o-mini", api_key_env="AGENTUNE_TEST_KEY")
    environ = {"AGENTUNE_TEST_KEY": SECRET, "OTHER_KEY": SECRET + "2"}
    plan = plan_submission(
        goal, storage=tmp_path, model="gpt-4o-mini", env_names=["OTHER_KEY"], environ=environ
    )
    env_vars = dict(plan.runtime_env()["env_vars"])
    env_vars.pop(GIT_COMMIT_ENV, None)
    assert env_vars == {
        "PYTHONUNBUFFERED": "1",
        "AGENTUNE_TEST_KEY": SECRET,
        "OTHER_KEY": SECRET + "2",
    }
    assert plan.env_names == ("AGENTUNE_TEST_KEY", "OTHER_KEY")
    shown = [plan.entrypoint, repr(plan), *plan.metadata.values(), *plan.instructions()]
    assert not any(SECRET in text for text in shown)
    assert ".env" in plan.runtime_env()["excludes"]  # a dotenv file never travels


def test_the_job_records_the_submitting_checkouts_commit(
    quick: CampaignGoal, tmp_path: Path
) -> None:
    # The upload has no .git, so the commit travels as a variable the recorder reads.
    plan = plan_submission(quick, storage=tmp_path, environ={})
    commit = git_commit(PROJECT_ROOT)
    assert plan.git_commit == commit
    assert plan.runtime_env()["env_vars"].get(GIT_COMMIT_ENV) == commit
    assert commit is None or commit not in plan.entrypoint


def test_offline_model_needs_no_key(quick: CampaignGoal, tmp_path: Path) -> None:
    goal = _with_llm(quick, model="offline", api_key_env="AGENTUNE_TEST_KEY")
    plan = plan_submission(goal, storage=tmp_path, environ={})
    assert plan.env_names == ()


def test_a_missing_secret_is_refused_by_name(quick: CampaignGoal, tmp_path: Path) -> None:
    goal = _with_llm(quick, model="gpt-4o-mini", api_key_env="AGENTUNE_TEST_KEY")
    with pytest.raises(SubmitError, match=r"AGENTUNE_TEST_KEY is not set in this shell"):
        plan_submission(goal, storage=tmp_path, environ={})


@pytest.mark.parametrize(
    ("name", "message"),
    [("bad-name", "NAME of an environment variable"), ("RAY_AUTH_TOKEN", "Ray's own")],
)
def test_bad_env_names_are_refused(
    quick: CampaignGoal, tmp_path: Path, name: str, message: str
) -> None:
    with pytest.raises(SubmitError, match=message):
        plan_submission(quick, storage=tmp_path, env_names=[name], environ={name: "x"})


@pytest.mark.parametrize(
    ("given", "environ", "expected"),
    [
        (None, {}, DEFAULT_ADDRESS),
        ("127.0.0.1:8265", {}, "http://127.0.0.1:8265"),
        ("https://ray.example.org:443/", {}, "https://ray.example.org:443"),
        (None, {"RAY_API_SERVER_ADDRESS": "http://10.0.0.5:8265"}, "http://10.0.0.5:8265"),
        (None, {"RAY_ADDRESS": "http://10.0.0.6:8265"}, "http://10.0.0.6:8265"),
        (None, {"RAY_ADDRESS": "10.0.0.7:6379"}, DEFAULT_ADDRESS),  # a GCS address: not ours
    ],
)
def test_address_normalization(
    given: str | None, environ: Mapping[str, str], expected: str
) -> None:
    assert normalize_address(given, environ) == expected


@pytest.mark.parametrize("bad", ["ftp://x:1", "http://", "http://host", "http://host:port"])
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(SubmitError, match=r"--address must be the cluster dashboard's URL"):
        normalize_address(bad, {})


def test_goal_files_travel_by_their_path_inside_the_project(tmp_path: Path) -> None:
    gpu = load_goal("cluster/campaigns/gpu.yaml:aami3_gpu")
    plan = plan_submission(gpu, storage=tmp_path, environ={}, now=NOW)
    assert plan.goal == "cluster/campaigns/gpu.yaml:aami3_gpu"
    assert plan.entrypoint.startswith("agentune run cluster/campaigns/gpu.yaml:aami3_gpu ")
    assert plan.campaign == "gpu-aami3_gpu-20261201-162452"


def test_a_goal_file_outside_the_project_is_refused(tmp_path: Path) -> None:
    source = (PROJECT_ROOT / "campaigns" / "mitbih.yaml").read_text()
    outside = tmp_path / "mine.yaml"
    outside.write_text(source)
    goal = load_goal(f"{outside}:aami3_quick")
    with pytest.raises(SubmitError, match=r"outside the project folder"):
        plan_submission(goal, storage=tmp_path, environ={})


def test_an_existing_campaign_directory_is_refused(quick: CampaignGoal, tmp_path: Path) -> None:
    (tmp_path / "mitbih-aami3_quick" / "20261201-162452").mkdir(parents=True)
    with pytest.raises(CampaignError, match=r"already exists"):
        plan_submission(quick, storage=tmp_path, environ={}, now=NOW)


@pytest.mark.parametrize("stamp", ["../escape", "a/b", "", "-x"])
def test_the_runner_refuses_a_stamp_that_is_no_folder_name(
    quick: CampaignGoal, tmp_path: Path, stamp: str
) -> None:
    with pytest.raises(CampaignError, match=r"--stamp names the campaign folder"):
        campaign_directory(quick, CampaignOptions(storage=tmp_path, stamp=stamp))


def test_auth_headers_look_for_the_token_as_ray_does(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    token_file = tmp_path / "token"
    token_file.write_text("from-path")
    bearer = "Authorization"
    assert auth_headers({"HOME": str(home)}) == {bearer: "Bearer from-home"}
    assert auth_headers({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(token_file)}) == {
        bearer: "Bearer from-path"
    }
    assert auth_headers(
        {"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(token_file), "RAY_AUTH_TOKEN": "env"}
    ) == {bearer: "Bearer env"}
    assert auth_headers({"HOME": str(home), "RAY_AUTH_MODE": "disabled"}) == {}
    assert auth_headers({"HOME": str(tmp_path / "nobody")}) == {}
    with pytest.raises(SubmitError, match=r"RAY_AUTH_TOKEN_PATH=.* cannot be read"):
        auth_headers({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})


class _FakeClient:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def submit_job(self, **kwargs: Any) -> str:
        if self.fail is not None:
            raise self.fail
        self.calls.append(kwargs)
        return str(kwargs["submission_id"])


def _plan(quick: CampaignGoal, tmp_path: Path) -> JobPlan:
    goal = _with_llm(quick, model="gpt-4o-mini", api_key_env="AGENTUNE_TEST_KEY")
    return plan_submission(goal, storage=tmp_path, environ={"AGENTUNE_TEST_KEY": SECRET}, now=NOW)


def test_submit_job_sends_the_plan(quick: CampaignGoal, tmp_path: Path) -> None:
    plan = _plan(quick, tmp_path)
    client = _FakeClient()
    seen: list[tuple[str, Mapping[str, str]]] = []

    def factory(address: str, headers: Mapping[str, str]) -> _FakeClient:
        seen.append((address, headers))
        return client

    headers = {"Authorization": "Bearer t"}
    assert submit_job(plan, headers=headers, client_factory=factory) == plan.submission_id
    assert seen == [(plan.address, headers)]
    (call,) = client.calls
    assert call["entrypoint"] == plan.entrypoint
    assert call["metadata"] == plan.metadata
    assert call["runtime_env"]["env_vars"]["AGENTUNE_TEST_KEY"] == SECRET
    assert SECRET not in str({k: v for k, v in call.items() if k != "runtime_env"})


def test_a_refused_job_is_one_line(quick: CampaignGoal, tmp_path: Path) -> None:
    plan = _plan(quick, tmp_path)
    client = _FakeClient(RuntimeError("Request failed with status code 400: id exists\n..."))
    with pytest.raises(SubmitError, match=r"refused the job .*: Request failed") as caught:
        submit_job(plan, headers={}, client_factory=lambda a, h: client)
    assert "\n" not in str(caught.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "mitbih:nope"], "no such goal"),
        (["submit", "nofile:goal"], "no campaign file"),
        (["submit", "mitbih:aami3_quick", "--address", "ftp://x:1"], "--address must be"),
        (["submit", "mitbih:aami3_quick", "--budget", "0"], "--budget must be a positive"),
        (["submit", "mitbih:aami3_quick", "--env", "NOT_SET_ANYWHERE_X"], "is not set"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentune submit: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_unreachable_cluster_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    address = f"http://127.0.0.1:{_closed_port()}"
    argv = ["submit", "mitbih:aami3_quick", "--address", address, "--storage", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agentune submit: cannot reach a Ray cluster at {address}")
    assert err.count("\n") == 1
