"""`agentune run/list/dashboard` and the campaign runner behind them."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedback import FeedbackStore
from search.campaign_dirs import campaign_directory
from search.cli import EXIT_OK, EXIT_USAGE, main
from search.goals import CampaignError, load_goal
from search.runner import CampaignOptions, searcher_constraints

TINY_GOALS = """
goals:
  tiny:
    description: two-minute test campaign that must escalate
    experiment: mitbih_aami3_quick
    overrides: ["trainer.epochs=1"]
    metric: val/macro_f1
    mode: max
    budget: 9
    max_concurrent: 2
    space:
      trainer.lr: {loguniform: [1.0e-3, 1.0e-2]}
      model.width: {randint: [4, 8]}
    # a gain of 1.0 in macro F1 never happens: every window is stagnant, so it escalates
    escalation: {window: 2, min_delta: 1.0, patience: 1}
    max_tier: 2
    models: [cnn1d, resnet1d]
    constraints:
      num_params: {max: 200000}
  both_bounds:
    description: a constraint with both bounds
    experiment: mitbih_aami3_quick
    metric: val/macro_f1
    mode: max
    budget: 2
    space:
      trainer.lr: {loguniform: [1.0e-3, 1.0e-2]}
    constraints:
      num_params: {min: 10, max: 200000}
  bad_space:
    description: a space key the experiment lacks
    experiment: mitbih_aami3_quick
    metric: val/macro_f1
    mode: max
    budget: 2
    space:
      trainer.lrr: {loguniform: [1.0e-3, 1.0e-2]}
  bad_target:
    description: an override naming a target the trainer refuses
    experiment: mitbih_aami3_quick
    overrides: ["trainer.optimizer._target_=builtins.eval"]
    metric: val/macro_f1
    mode: max
    budget: 2
    space:
      trainer.lr: {loguniform: [1.0e-3, 1.0e-2]}
"""


@pytest.fixture
def campaigns_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "test.yaml").write_text(TINY_GOALS, encoding="utf-8")
    monkeypatch.setenv("AGENTUNE_CAMPAIGNS_DIR", str(folder))
    return folder


def test_campaign_directories_are_fresh_and_resume_picks_the_newest(
    campaigns_dir: Path, tmp_path: Path
) -> None:
    goal = load_goal("test:tiny")
    options = CampaignOptions(storage=tmp_path / "store")
    first = campaign_directory(goal, options)
    assert first.parent == (tmp_path / "store" / "test-tiny").resolve()
    (first / "history").mkdir(parents=True)
    second = campaign_directory(goal, options)
    assert second != first
    (second / "history").mkdir(parents=True)
    resumed = campaign_directory(goal, CampaignOptions(storage=tmp_path / "store", resume=True))
    assert resumed == max(first, second)


def test_resume_without_an_earlier_campaign_is_an_error(
    campaigns_dir: Path, tmp_path: Path
) -> None:
    goal = load_goal("test:tiny")
    with pytest.raises(CampaignError, match="no earlier campaign of test:tiny"):
        campaign_directory(goal, CampaignOptions(storage=tmp_path, resume=True))


def test_resume_refuses_another_budget_before_anything_runs(
    campaigns_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from feedback import Event

    goal = load_goal("test:tiny")
    earlier = campaign_directory(goal, CampaignOptions(storage=tmp_path))
    store = FeedbackStore(earlier / "history")
    campaign = f"test-tiny-{earlier.name}"
    store.append_event(Event(campaign=campaign, kind="campaign", message="x", data={"budget": 9}))
    code = main(["run", "test:tiny", "--resume", "--budget", "5", "--storage", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USAGE and len(err.splitlines()) == 1
    assert "budget it started with (9 trials)" in err and "--budget 5" in err
    assert store.runs() == [] and not (earlier / "ray").exists()  # nothing ran


def test_goal_constraints_map_to_searcher_constraints(campaigns_dir: Path) -> None:
    assert searcher_constraints(load_goal("test:tiny")) == {"num_params": ("<=", 200000.0)}
    with pytest.raises(CampaignError, match="give min or max, not both"):
        searcher_constraints(load_goal("test:both_bounds"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nofile:tiny"], "nofile"),
        (["run", "test:nogoal"], "nogoal"),
        (["run", "no-colon"], "file:goal"),
        (["run", "test:tiny", "--budget", "0"], "--budget must be a positive"),
        (["run", "test:tiny", "--resume", "--storage", "{tmp}"], "no earlier campaign"),
        (["dashboard", "{tmp}/missing"], "does not exist"),
        (["dashboard", "{tmp}"], "no feedback history"),
        (["run", "test:bad_space"], "trainer.lrr"),
        (["run", "test:bad_target"], "builtins.eval"),
        (["dashboard"], "needs CAMPAIGN_DIR"),
        (["train", "trainer.lrr=1"], "Could not override 'trainer.lrr'"),
        (["train", "model=transformer"], "Could not find 'model/transformer'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    campaigns_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USAGE
    assert message in err
    assert len(err.splitlines()) == 1


def test_list_prints_every_goal(campaigns_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines) == [
        "test:bad_space", "test:bad_target", "test:both_bounds", "test:tiny",
    ]  # fmt: skip


def test_list_reports_a_bad_file_in_one_line_and_lists_the_rest(
    campaigns_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (campaigns_dir / "broken.yaml").write_text("goals: [\n", encoding="utf-8")
    (campaigns_dir / "wrong.yaml").write_text("goals:\n  g: {budget: -1}\n", encoding="utf-8")
    assert main(["list"]) == EXIT_USAGE
    captured = capsys.readouterr()
    listed = sorted(line.split()[0] for line in captured.out.splitlines())
    assert listed == ["test:bad_space", "test:bad_target", "test:both_bounds", "test:tiny"]
    errors = captured.err.splitlines()
    assert len(errors) == 2
    assert "broken.yaml" in errors[0] and "wrong.yaml" in errors[1]
    assert all(line.startswith("agentune list: ") for line in errors)


def test_demo_dashboard_needs_no_training(tmp_path: Path) -> None:
    out = tmp_path / "demo.html"
    assert main(["dashboard", "--demo", str(out)]) == EXIT_OK
    assert out.stat().st_size > 10_000 and "<svg" in out.read_text(encoding="utf-8")


@pytest.mark.slow
def test_run_escalates_and_leaves_history_and_dashboard(
    campaigns_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    writable_configs: tuple[Path, Path],  # tier 2 may write a config variant
) -> None:
    storage = tmp_path / "runs"
    assert main(["run", "test:tiny", "--storage", str(storage)]) == EXIT_OK
    out = capsys.readouterr().out
    trial_lines = [line for line in out.splitlines() if line.startswith("trial ")]
    assert len(trial_lines) == 9
    assert "dashboard: " in out and "history: " in out and "best config: " in out

    (campaign_dir,) = (storage / "test-tiny").iterdir()
    store = FeedbackStore(campaign_dir / "history")
    runs = store.runs()
    assert len(runs) == 9
    assert {r.status for r in runs} <= {"completed", "infeasible"}
    assert any(r.tier == 2 and r.model == "resnet1d" for r in runs), "never escalated"
    assert store.events(kind="escalation")
    assert store.curve(runs[0].run_id), "epoch curves are stored with the runs"
    html = (campaign_dir / "dashboard.html").read_text(encoding="utf-8")
    assert "escalation" in html and "resnet1d" in html


TIER3_GOAL = """
goals:
  gen:
    description: reaches tier 3 at once (one listed model) and trains generated code
    experiment: mitbih_aami3_quick
    overrides: ["trainer.epochs=1"]
    metric: val/macro_f1
    mode: max
    budget: 12
    max_concurrent: 2
    space:
      trainer.lr: {loguniform: [1.0e-3, 1.0e-2]}
      model.width: {randint: [4, 8]}
    escalation: {window: 2, min_delta: 1.0, patience: 1}
    max_tier: 3
    models: [cnn1d]
"""


@pytest.mark.slow
def test_run_registers_and_trains_a_generated_model_under_the_safety_layer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writable_configs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "gen.yaml").write_text(TIER3_GOAL, encoding="utf-8")
    configs, generated = writable_configs
    monkeypatch.setenv("AGENTUNE_CAMPAIGNS_DIR", str(folder))
    storage = tmp_path / "runs"
    assert main(["run", "gen:gen", "--storage", str(storage)]) == EXIT_OK
    capsys.readouterr()
    (campaign_dir,) = (storage / "gen-gen").iterdir()
    store = FeedbackStore(campaign_dir / "history")
    tier3 = [r for r in store.runs() if r.tier == 3]
    assert tier3 and all(r.status == "completed" for r in tier3), "no generated model trained"
    # one registration per tier-3 request; a second request may come before the budget ends
    registered = {module.stem for module in generated.glob("*.py")}
    assert registered and all((configs / "model" / f"{m}.yaml").is_file() for m in registered)
    assert {r.model for r in tier3} <= registered
    assert not [e for e in store.events(kind="agent_failure") if "refused" in e.message]
    # the CodeAgent got there: each call's tool calls and tokens are in the history
    calls = store.events(kind="agent_call")
    assert calls and all(e.data["tokens_in"] > 0 for e in calls)
    tier3_calls = [e for e in calls if e.tier == 3]
    assert any(
        c.startswith("register_generated_model(") for e in tier3_calls for c in e.data["tool_calls"]
    )
    (summary,) = store.events(kind="agent_summary")
    assert "trials" in summary.message and summary.data["source"] == "offline"


@pytest.mark.slow
def test_the_same_campaign_runs_through_an_openai_compatible_server(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writable_configs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--model --api-base` against a scripted server on loopback: the real OpenAI client path,
    with the offline policy computing the replies, and a key that never reaches the history."""
    from agent.testing import ScriptedOpenAIServer, offline_responder

    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "gen.yaml").write_text(
        TIER3_GOAL.replace("models: [cnn1d]", "models: [cnn1d]\n    llm: {api_key_env: STUB_KEY}"),
        encoding="utf-8",
    )
    monkeypatch.setenv("AGENTUNE_CAMPAIGNS_DIR", str(folder))
    monkeypatch.setenv("STUB_KEY", "sk-stub-secret-0123456789")
    storage = tmp_path / "runs"
    with ScriptedOpenAIServer(responder=offline_responder()) as server:
        code = main(
            [
                "run",
                "gen:gen",
                "--storage",
                str(storage),
                "--model",
                "stub",
                "--api-base",
                server.url,
            ]
        )
        requests = list(server.chat_requests)
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert requests and all(
        r.headers.get("authorization") == "Bearer sk-stub-secret-0123456789" for r in requests
    )
    (campaign_dir,) = (storage / "gen-gen").iterdir()
    store = FeedbackStore(campaign_dir / "history")
    calls = store.events(kind="agent_call")
    assert calls and {e.data["model"] for e in calls} == {"stub"}
    assert any(r.tier == 3 and r.status == "completed" for r in store.runs())
    assert "summary: " in out
    for path in campaign_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert b"sk-stub-secret" not in path.read_bytes(), path
