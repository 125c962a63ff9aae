"""The agent's tools (`agent.tools`): called directly, inside a smolagents CodeAgent, against
real trainer run dirs and a real feedback store; test-set metrics never come out."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
import yaml
from smolagents import CodeAgent, Tool
from smolagents.models import ChatMessage, MessageRole, Model
from smolagents.monitoring import LogLevel, TokenUsage

import agent.tools as tools
from agent.models.examples import generated_model_source
from agent.proposer import Proposal
from agent.safety import ProposalCheck, UnsafeConfigError
from agent.safety.files import GENERATED_MARKER
from agent.tools import ToolContext, current_context, proposals_from_answer, use_context
from agent.tools._context import clip
from feedback import Event, FeedbackStore, RunRecord, SignalThresholds

TEST_VALUE = 0.987654  # every test-set metric in these fixtures; must never come out
METRIC = "val/macro_f1"
CAMPAIGN = "camp"
REPO = Path(__file__).resolve().parents[2]
CNN = {"_target_": "biosignals.models.cnn1d.CNN1D", "width": 8, "depth": 3, "kernel_size": 7}


# --- fixtures: trainer run dirs and a campaign ----------------------------------------------


def write_run(
    run_dir: Path,
    curve: Sequence[tuple[float, float, float]],
    *,
    status: str = "completed",
    lr: float = 3e-3,
    batch_size: int = 128,
    weight_decay: float = 0.01,
    width: int = 8,
    dropout: float = 0.1,
) -> Path:
    """The three artifacts the trainer writes; `curve` is (train/loss, val/loss, f1) per epoch."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "seed": 0,
        "run_dir": str(run_dir),
        "model": {**CNN, "width": width, "dropout": dropout},
        "trainer": {
            "epochs": len(curve),
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "metric": METRIC,
            "mode": "max",
        },
        "dataset": {"_target_": "biosignals.data.mitbih.build_synthetic", "classes": "aami3"},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    rows = [
        {"epoch": i, "train/loss": t, "val/loss": v, METRIC: f, "lr": lr, "test/loss": TEST_VALUE}
        for i, (t, v, f) in enumerate(curve, start=1)
    ]
    (run_dir / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    f1s = [f for _, _, f in curve]
    best = int(np.argmax(f1s)) if f1s else None
    summary = {
        "status": status,
        "metric": METRIC,
        "mode": "max",
        "best_value": None if best is None or status == "diverged" else f1s[best],
        "best_epoch": None if best is None else best + 1,
        "epochs_run": len(curve),
        "num_params": 4700 * width // 8,
        "model": "cnn1d",
        "dataset": "mitbih_synth/aami3",
        "test": {"test/macro_f1": TEST_VALUE, "test/loss": TEST_VALUE},
        "test_macro_f1": TEST_VALUE,
        "error": "loss became nan" if status == "diverged" else None,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run_dir


SETTLED = [(1.0, 0.9, 0.5), (0.7, 0.6, 0.7), (0.5, 0.5, 0.8), (0.45, 0.52, 0.78)]
OVERFIT = [(1.0, 0.8, 0.5), (0.6, 0.5, 0.75), (0.4, 0.6, 0.72), (0.2, 0.8, 0.7), (0.1, 0.9, 0.69)]
UNDERFIT = [(1.1, 1.1, 0.3), (1.05, 1.08, 0.31), (1.0, 1.07, 0.3)]
IMPROVING = [(1.0, 0.9, 0.5), (0.8, 0.7, 0.6), (0.6, 0.6, 0.7)]
DIVERGED = [(1.0, 0.9, 0.5)]


def trial_dir(campaign_dir: Path, trial_id: str) -> Path:
    return campaign_dir / "ray" / "experiment" / f"trial_{trial_id}" / "run"


@pytest.fixture
def campaign(tmp_path: Path, writable_configs: tuple[Path, Path]) -> Iterator[ToolContext]:
    """A campaign of 6 runs in a real store (with test metrics in it), 4 with trial run dirs,
    and the active ToolContext for it."""
    configs, generated = writable_configs
    campaign_dir = tmp_path / "campaign"
    store = FeedbackStore(campaign_dir / "history")
    store.append_event(
        Event(
            campaign=CAMPAIGN,
            kind="campaign",
            message="mitbih:aami3_quick",
            data={"thresholds": SignalThresholds(window=2).to_dict()},
        )
    )
    runs = [
        ("t0001", "base", 0, [], {"trainer.lr": 3e-3, "trainer.batch_size": 128}, SETTLED, 3e-3),
        ("t0002", "base", 0, [], {"trainer.lr": 1e-2, "trainer.batch_size": 64}, OVERFIT, 1e-2),
        (
            "t0003",
            "resnet",
            2,
            ["model=resnet1d", "model.width=32"],
            {"trainer.lr": 2e-3},
            IMPROVING,
            2e-3,
        ),
        ("t0004", "base", 0, [], {"trainer.lr": 0.5}, DIVERGED, 0.5),
    ]
    for tid, arm, tier, overrides, params, curve, lr in runs:
        run = write_run(
            trial_dir(campaign_dir, tid),
            curve,
            lr=lr,
            status="diverged" if curve is DIVERGED else "completed",
        )
        store.append_run_dir(
            run,
            run_id=tid,
            campaign=CAMPAIGN,
            arm=arm,
            tier=tier,
            origin="optuna" if tier == 0 else "agent",
            trial_id=tid,
            overrides=overrides,
            params=params,
        )
    # stored only: the trial dir is gone
    store.append(
        RunRecord(
            run_id="t0005",
            campaign=CAMPAIGN,
            trial_id="t0005",
            arm="resnet",
            tier=2,
            origin="agent",
            overrides=["model=resnet1d", "model.width=32"],
            params={"trainer.lr": 1e-3},
            status="completed",
            metric=METRIC,
            mode="max",
            value=0.83,
            best_epoch=2,
            epochs_run=3,
            model="resnet1d",
            test_metrics={"test/macro_f1": TEST_VALUE},
        )
    )
    store.append_curve("t0005", [{"epoch": 1, METRIC: 0.7}, {"epoch": 2, METRIC: 0.83}])
    ctx = ToolContext(
        store_root=campaign_dir / "history",
        campaign=CAMPAIGN,
        config_dir=configs,
        generated_dir=generated,
        tier=2,
        max_tier=3,
        metric=METRIC,
        mode="max",
        proposal_check=ProposalCheck(
            config_dir=str(configs),
            experiment="mitbih_aami3_quick",
            generated_dir=str(generated),
        ),
    )
    with use_context(ctx):
        yield ctx


def no_test_metrics(output: object) -> None:
    text = json.dumps(output, default=str) if not isinstance(output, str) else output
    assert str(TEST_VALUE) not in text and "test/" not in text and "test_m" not in text


def fake_registration(configs: Path, generated: Path, name: str = "gen_tt_net") -> None:
    """The two files of a registered generated model (what registered_model recognises),
    without running the smoke test."""
    source = generated_model_source(width=4, stages=2, kernel_size=3)
    (generated / f"{name}.py").write_text(f"{GENERATED_MARKER} (tier 3)\n{source}", "utf-8")
    (configs / "model" / f"{name}.yaml").write_text(
        f"{GENERATED_MARKER} (tier 3)\n_target_: generated_models.{name}.SEResNet1D\nwidth: 4\n",
        encoding="utf-8",
    )


# --- the tool objects -----------------------------------------------------------------------

TIER1 = {
    "list_available_configs",
    "read_run_results",
    "read_experiment_config",
    "compare_runs",
    "suggest_search_space",
    "check_drift",
    "get_experiment_history",
}


def test_tools_are_smolagents_tools_with_documented_returns_per_tier() -> None:
    names = {t: {tool.name for tool in tools.tools_for_tier(t)} for t in (1, 2, 3)}
    assert names[1] == TIER1 | {"propose_trials"}
    assert names[2] == names[1] | {"create_config_variant", "compose_experiment_config"}
    assert names[3] == names[2] | {"read_model_source", "register_generated_model"}
    for tool in tools.tools_for_tier(3):
        assert isinstance(tool, Tool)
        assert tool is getattr(tools, tool.name)  # module-level objects
        assert "Returns" in tool.description and "Example" in tool.description
        assert all(spec["description"] for spec in tool.inputs.values())
    assert tools.get_experiment_history.output_type == "string"
    assert tools.read_model_source.output_type == "string"
    assert tools.propose_trials.output_type == "string"
    for name in TIER1 - {"get_experiment_history"}:
        assert getattr(tools, name).output_type == "object"


def test_without_a_context_tools_use_a_default_one_and_the_env_config_dir(
    writable_configs: tuple[Path, Path],
) -> None:
    configs, generated = writable_configs
    fake_registration(configs, generated)
    assert current_context().campaign is None
    listing = tools.list_available_configs()
    assert {"model", "trainer", "dataset", "experiment"} <= set(listing)
    # the copy of configs/ may hold generated files of a campaign run in this checkout
    assert listing["model"] == sorted(p.stem for p in (configs / "model").glob("*.yaml"))
    assert {"cnn1d", "encoder_classifier", "gen_tt_net", "resnet1d"} <= set(listing["model"])
    assert listing["generated_models"] == ["gen_tt_net"]
    assert "mitbih_aami3_quick" in listing["experiment"]
    for call in (tools.check_drift, tools.get_experiment_history):
        with pytest.raises(ValueError, match=r"no campaign history is available.*read_run_results"):
            call()
    with pytest.raises(ValueError, match=r"no campaign history is available.*run directory"):
        tools.read_run_results("t0001")


def test_use_context_is_process_wide_and_nests() -> None:
    outer, inner = ToolContext(campaign="a"), ToolContext(campaign="b")
    seen: list[str | None] = []
    with use_context(outer):
        with use_context(inner):
            thread = threading.Thread(target=lambda: seen.append(current_context().campaign))
            thread.start()
            thread.join()
        assert current_context() is outer
    assert seen == ["b"] and current_context().campaign is None


# --- read_run_results / read_experiment_config -----------------------------------------------


def test_read_run_results_of_a_run_dir_has_no_test_metrics(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run1", SETTLED)
    ctx = ToolContext()
    with use_context(ctx):
        result = tools.read_run_results(str(run))
    assert set(result) == {
        "run_id", "run_dir", "status", "metric", "mode", "best_value", "best_epoch",
        "epochs_run", "num_params", "model", "arm", "tier", "origin", "overrides", "params",
        "error", "epochs", "config",
    }  # fmt: skip
    assert result["status"] == "completed" and result["best_value"] == 0.8
    assert result["best_epoch"] == 3 and result["epochs_run"] == 4 and result["model"] == "cnn1d"
    assert result["run_dir"] == str(run.resolve()) and result["arm"] is None
    assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3, 4]
    assert result["config"]["trainer"]["lr"] == 3e-3
    no_test_metrics(result)
    assert ctx.tool_log == [f"read_run_results({clip(repr(str(run)))})"]
    assert len(ctx.tool_log[0]) <= len("read_run_results()") + 80


def test_read_run_results_by_run_id_resolves_trial_dirs_and_the_store(
    campaign: ToolContext,
) -> None:
    result = tools.read_run_results("t0003")
    root = campaign.campaign_root()
    assert root is not None
    assert result["run_dir"] == str(trial_dir(root, "t0003").resolve())
    assert result["arm"] == "resnet" and result["tier"] == 2 and result["origin"] == "agent"
    assert result["overrides"] == ["model=resnet1d", "model.width=32"]
    assert result["params"] == {"trainer.lr": 2e-3}
    gone = tools.read_run_results("t0005")  # only in the store
    assert gone["run_dir"] is None and gone["best_value"] == 0.83 and gone["config"] is None
    assert [e[METRIC] for e in gone["epochs"]] == [0.7, 0.83]
    by_dir = tools.read_run_results(str(trial_dir(root, "t0002").parent))
    assert by_dir["run_id"] == "t0002" and by_dir["arm"] == "base"  # a trial dir works too
    for result in (gone, by_dir):
        no_test_metrics(result)
    assert campaign.tool_log[0] == "read_run_results('t0003')"


def test_read_run_results_explains_bad_references(campaign: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"is not a directory.*run directory"):
        tools.read_run_results(str(tmp_path / "file.txt"))
    with pytest.raises(ValueError, match=r"holds none of config.yaml"):
        tools.read_run_results(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"did you mean 't0001'.*get_experiment_history"):
        tools.read_run_results("t0001x")
    with pytest.raises(ValueError, match="non-empty string"):
        tools.read_run_results("")
    elsewhere = write_run(tmp_path / "t0001", SETTLED)  # named like a run, not its trial dir
    assert tools.read_run_results(str(elsewhere))["arm"] is None
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "summary.json").symlink_to(tmp_path / "file.txt")
    with pytest.raises(ValueError, match="not a regular file"):
        tools.read_run_results(str(linked))


def test_a_real_training_run_dir_reads_back(tmp_path: Path) -> None:
    import torch
    from omegaconf import OmegaConf

    from biosignals.data.dataset import SignalDataset, Split
    from biosignals.trainer import train

    rng = np.random.default_rng(0)

    def split(n: int, group: str) -> Split:
        y = rng.integers(0, 3, n)
        t = np.arange(32) / 32
        x = np.sin(2 * np.pi * np.array([2.0, 5.0, 9.0])[y][:, None] * t) + 0.3 * rng.normal(
            size=(n, 32)
        )
        return Split(
            x[:, None, :].astype(np.float32), y, np.array([f"{group}{i % 2}" for i in range(n)])
        )

    data = SignalDataset(
        name="tiny",
        task="classification",
        train=split(64, "a"),
        val=split(32, "b"),
        test=split(32, "c"),
        class_names=["a", "b", "c"],
        sampling_rate=32.0,
        target_name="tone",
    )
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "run_dir": str(tmp_path / "real"),
            "model": {**CNN, "depth": 2},
            "trainer": {"epochs": 2, "batch_size": 32, "lr": 1e-2, "device": "cpu",
                        "metric": METRIC, "mode": "max", "save_model": False},
        }
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train(cfg, dataset=data)
    finally:
        torch.set_num_threads(threads)
    assert summary.test  # the trainer did write test metrics
    with use_context(ToolContext()):
        result = tools.read_run_results(str(tmp_path / "real"))
        config = tools.read_experiment_config(str(tmp_path / "real"))
        advice = tools.suggest_search_space(str(tmp_path / "real"))
    assert result["status"] == summary.status and result["epochs_run"] == 2
    assert result["best_value"] == pytest.approx(summary.best_value)
    assert all("test" not in key for epoch in result["epochs"] for key in epoch)
    assert "test" not in json.dumps(result["epochs"]) and not any(
        k.startswith("test") for k in result
    )
    for key in ("test/loss", "test/macro_f1", "test/accuracy", "test/balanced_accuracy"):
        # (per-class Se/PPV are often 0.0 or 1.0, values validation shares: keys checked above)
        assert repr(summary.test[key]) not in json.dumps(result)
    assert config["trainer"]["lr"] == 1e-2 and config["model"]["depth"] == 2
    assert advice["run_id"] == "real" and advice["observations"]


def test_read_experiment_config_reads_config_yaml_or_composes_a_stored_run(
    campaign: ToolContext,
) -> None:
    cfg = tools.read_experiment_config("t0001")
    assert cfg["trainer"]["lr"] == 3e-3 and cfg["model"]["_target_"] == CNN["_target_"]
    composed = tools.read_experiment_config("t0005")  # no dir: experiment + overrides + params
    assert composed["model"]["_target_"] == "biosignals.models.resnet1d.ResNet1D"
    assert composed["model"]["width"] == 32 and composed["trainer"]["lr"] == 1e-3
    assert composed["trainer"]["metric"] == METRIC  # from the campaign's experiment
    assert "hydra" not in composed
    assert campaign.tool_log == [
        "read_experiment_config('t0001')",
        "read_experiment_config('t0005')",
    ]


# --- compare_runs / suggest_search_space ----------------------------------------------------


def test_compare_runs_ranks_and_lists_differences(campaign: ToolContext) -> None:
    out = tools.compare_runs(["t0001", "t0003", "t0005", "t0004"])
    assert out["metric"] == METRIC and out["mode"] == "max"
    assert [r["run_id"] for r in out["runs"]] == ["t0005", "t0001", "t0003", "t0004"]
    assert all("epochs" not in r and "config" not in r for r in out["runs"])
    diff = out["differences"]
    assert diff["trainer.lr"] == [1e-3, 3e-3, 2e-3, 0.5]
    assert diff["model"] == ["resnet1d", "cnn1d", "cnn1d", "cnn1d"]
    assert "run_dir" not in diff and "trainer.metric" not in diff  # same everywhere / skipped
    no_test_metrics(out)
    assert campaign.tool_log == ["compare_runs(['t0001', 't0003', 't0005', 't0004'])"]
    with pytest.raises(ValueError, match="list of run directory paths"):
        tools.compare_runs("t0001")
    with pytest.raises(ValueError, match="empty"):
        tools.compare_runs([])
    with pytest.raises(ValueError, match="at most 10"):
        tools.compare_runs(["t0001"] * 11)


@pytest.mark.parametrize(
    ("curve", "status", "expect_obs", "expect_keys"),
    [
        (DIVERGED, "diverged", "diverged", {"trainer.lr"}),
        (OVERFIT, "completed", "over-fitting", {"trainer.weight_decay", "model.dropout"}),
        (UNDERFIT, "completed", "under-fitting", {"trainer.lr", "model.width"}),
        (IMPROVING, "completed", "still improved", {"trainer.lr", "trainer.batch_size"}),
        (SETTLED, "completed", "settled", {"trainer.lr", "trainer.batch_size"}),
    ],
)
def test_suggest_search_space_reads_the_curve_and_its_space_passes_the_checks(
    tmp_path: Path, curve: Any, status: str, expect_obs: str, expect_keys: set[str]
) -> None:
    from search.space import convert_search_space

    run = write_run(tmp_path / "run", curve, status=status, lr=3e-3)
    with use_context(ToolContext()):
        out = tools.suggest_search_space(str(run))
    assert out["run_id"] == "run"
    assert any(expect_obs in o for o in out["observations"]), out["observations"]
    assert expect_keys <= set(out["space"])
    assert set(out["params"]) <= set(out["space"])
    convert_search_space(out["space"])  # valid search.space spec dicts
    if "trainer.lr" in out["space"]:
        spec = out["space"]["trainer.lr"]
        assert spec["low"] <= out["params"]["trainer.lr"] <= spec["high"]
        if status == "diverged":
            assert spec["high"] < 3e-3
    proposal = Proposal(name="x", tier=2, params=out["params"], space=out["space"])
    ProposalCheck()(proposal)  # the override policy accepts every key and bound
    no_test_metrics(out)


def test_suggest_search_space_mentions_the_campaign_best(campaign: ToolContext) -> None:
    out = tools.suggest_search_space("t0002")
    assert any("campaign best so far: 0.83 (run t0005" in o for o in out["observations"])
    assert campaign.tool_log == ["suggest_search_space('t0002')"]


# --- signals and history --------------------------------------------------------------------


def test_check_drift_reads_the_campaign_signals(campaign: ToolContext) -> None:
    out = tools.check_drift()
    assert set(out) == {"action", "reasons", "stagnation", "drift", "n_runs", "best_value"}
    assert out["action"] in ("continue", "change_lr", "change_model", "stop")
    assert out["reasons"] and all(isinstance(r, str) for r in out["reasons"])
    assert out["n_runs"] == 5 and out["best_value"] == 0.83
    assert out["stagnation"]["best"] == 0.83 and "reason" in out["drift"]
    assert campaign.tool_log == ["check_drift()"]
    no_test_metrics(out)


def test_history_shows_tuned_values_arm_tops_spread_and_reasons(campaign: ToolContext) -> None:
    campaign.history_chars = 6000
    text = tools.get_experiment_history()
    assert "best 0.83: run t0005" in text
    assert "config: [model=resnet1d model.width=32] trainer.lr=0.001" in text
    assert "recommendation:" in text and "stagnation:" in text and "drift:" in text
    lines = text.splitlines()
    arm_line = next(line for line in lines if line.startswith(" resnet (t2 resnet1d"))
    assert "1. 0.83 run t0005: trainer.lr=0.001 | 2. 0.7 run t0003: trainer.lr=0.002" in arm_line
    base_line = next(line for line in lines if line.startswith(" base (t0"))
    assert "best: 1. 0.8 run t0001: trainer.batch_size=128 trainer.lr=0.003 | 2." in base_line
    assert "trainer.lr: 0.001/0.0025/0.01 over 4 runs; best 0.001" in text  # completed runs
    assert "trainer.batch_size: 64/96/128 over 2 runs" in text
    recent = lines[lines.index("last 5 runs (oldest first):") + 1 :]
    assert recent[0].startswith(" t0001 t0 completed 0.8 base trainer.batch_size=128")
    assert "error: loss became nan" in recent[3]
    no_test_metrics(text)
    campaign.history_chars = 300
    short = tools.get_experiment_history()
    assert len(short) <= 300 and short.startswith("campaign camp")


def test_history_stays_bounded_and_cheap_for_a_long_campaign(tmp_path: Path) -> None:
    import time

    store = FeedbackStore(tmp_path / "h")
    records = [
        RunRecord(
            run_id=f"r{i:05d}",
            campaign="long",
            arm=f"arm{i % 12}",
            tier=0 if i % 12 == 0 else 2,
            origin="optuna",
            overrides=[f"model.width={8 * (1 + i % 12)}"] if i % 12 else [],
            params={"trainer.lr": 10 ** -(2 + (i % 7) / 3), "trainer.batch_size": 32 * (1 + i % 4)},
            status="completed" if i % 9 else "failed",
            metric=METRIC,
            mode="max",
            value=0.5 + 0.4 * (1 - 0.999**i) if i % 9 else None,
            error=None if i % 9 else "boom " * 100,
            test_metrics={"test/macro_f1": TEST_VALUE},
        )
        for i in range(5000)
    ]
    store.append_many(records)
    t0 = time.perf_counter()
    text = store.history_for_agent("long", 4000)
    elapsed = time.perf_counter() - t0
    assert len(text) <= 4000 and "arms (12; best first" in text and "(+4 more arms)" in text
    assert "tuned values over the last 1000 completed runs" in text
    no_test_metrics(text)
    assert elapsed < 5.0


# --- tier 2 ---------------------------------------------------------------------------------


def test_tier2_tools_write_into_the_context_config_dir(
    writable_configs: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    other = tmp_path / "other_configs"
    shutil.copytree(REPO / "configs", other)
    ctx = ToolContext(config_dir=other)
    with use_context(ctx):
        path = tools.create_config_variant("model", "cnn1d", "cnn1d_tt_wide", {"width": 32})
        exp = tools.compose_experiment_config(
            "exp_tt_wide", ["model=cnn1d_tt_wide", "trainer=quick"], ["trainer.lr=0.001"]
        )
        assert Path(tools.compose_experiment_config("exp_tt_plain", {"model": "cnn1d"})).is_file()
        with pytest.raises(UnsafeConfigError, match="does not exist in the base config"):
            tools.create_config_variant("model", "cnn1d", "cnn1d_bad", {"widht": 32})
        assert "cnn1d_tt_wide" in tools.list_available_configs()["model"]
    assert path == other / "model" / "cnn1d_tt_wide.yaml" and exp.parent == other / "experiment"
    assert isinstance(path, PurePosixPath) and not isinstance(path, Path)  # inert: no I/O
    assert not (writable_configs[0] / "model" / "cnn1d_tt_wide.yaml").exists()
    assert (
        ctx.tool_log[0] == "create_config_variant('model', 'cnn1d', 'cnn1d_tt_wide', {'width': 32})"
    )
    assert ctx.tool_log[1].startswith(
        "compose_experiment_config('exp_tt_wide', ['model=cnn1d_tt_wide'"
    )
    assert all(len(entry[entry.index("(") + 1 : -1]) <= 80 for entry in ctx.tool_log)
    # no context: the env's config dir ($AGENTUNE_CONFIG_DIR, set by writable_configs)
    direct = tools.create_config_variant("trainer", "default", "default_tt_long", {"epochs": 40})
    assert direct == writable_configs[0] / "trainer" / "default_tt_long.yaml"


# --- tier 3 ---------------------------------------------------------------------------------


def test_read_model_source_reads_built_in_and_generated_models_only(
    writable_configs: tuple[Path, Path],
) -> None:
    configs, generated = writable_configs
    fake_registration(configs, generated)
    (configs / "model" / "linear.yaml").write_text("_target_: torch.nn.Linear\n", "utf-8")
    ctx = ToolContext(config_dir=configs, generated_dir=generated)
    with use_context(ctx):
        source = tools.read_model_source("cnn1d")
        assert source == (REPO / "biosignals" / "models" / "cnn1d.py").read_text("utf-8")
        assert "class SEResNet1D" in tools.read_model_source("gen_tt_net")
        for bad in ("../../etc/passwd", "os.path", "CNN1D", ""):
            with pytest.raises(ValueError, match="model_name must match"):
                tools.read_model_source(bad)
        with pytest.raises(ValueError, match=r"no model config 'nope'.*cnn1d"):
            tools.read_model_source("nope")
        with pytest.raises(ValueError, match="not a project model"):
            tools.read_model_source("linear")
    assert ctx.tool_log[:2] == ["read_model_source('cnn1d')", "read_model_source('gen_tt_net')"]


def test_register_generated_model_tool_uses_the_context_and_logs_no_code(
    writable_configs: tuple[Path, Path], tmp_path: Path
) -> None:
    configs, generated = writable_configs
    code = generated_model_source(width=4, stages=2, kernel_size=3)
    ctx = ToolContext(
        config_dir=configs,
        generated_dir=generated,
        smoke_dims={"in_channels": 2, "input_length": 128, "num_classes": 4},
        max_tier=3,
    )
    with use_context(ctx):
        reg = tools.register_generated_model("se_tt_tool", code, {"width": 4})
        assert "se_tt_tool" in tools.list_available_configs()["generated_models"]
        assert tools.read_model_source("se_tt_tool") == reg.source
    assert isinstance(reg, tools.RegisteredModel) and reg.output_shape == (2, 4)
    assert "train it with the override model=se_tt_tool" in str(reg)
    assert (generated / "se_tt_tool.py").is_file() and (
        configs / "model" / "se_tt_tool.yaml"
    ).is_file()
    assert reg.source_path == generated / "se_tt_tool.py" and not isinstance(reg.source_path, Path)
    assert ctx.tool_log[0] == (
        f"register_generated_model('se_tt_tool', code=<{len(code)} chars>, args={{'width': 4}})"
    )
    assert "import torch" not in "".join(ctx.tool_log)


# --- propose_trials / proposals_from_answer -------------------------------------------------


def test_propose_trials_accepts_checks_and_caps(writable_configs: tuple[Path, Path]) -> None:
    configs, generated = writable_configs
    fake_registration(configs, generated)
    ctx = ToolContext(
        config_dir=configs,
        generated_dir=generated,
        max_tier=3,
        max_proposals=2,
        proposal_check=ProposalCheck(),  # structural checks
    )
    with use_context(ctx):
        report = tools.propose_trials(
            [
                {
                    "name": "resnet-w32",
                    "overrides": ["model=resnet1d", "model.width=32"],
                    "params": {"trainer.lr": 0.002},
                    "rationale": "cnn1d plateaued",
                },
                {"name": "bad", "overrides": ["trainer.metric=val/loss"]},
                {"name": "gen", "overrides": ["model=gen_tt_net"], "tier": 2},
                {"name": "third", "overrides": ["model=cnn1d"]},
            ]
        )
    lines = report.splitlines()
    assert lines[0] == "accepted 'resnet-w32' (tier 2): model=resnet1d model.width=32"
    assert lines[1].startswith("refused 'bad': ") and "trainer.metric" in lines[1]
    assert lines[2] == "accepted 'gen' (tier 3): model=gen_tt_net"  # a generated model is tier 3
    assert lines[3].startswith("refused 'third': this agent call takes at most 2 proposal(s)")
    first, gen = ctx.proposals
    assert first.origin == "agent" and first.tier == 2 and first.params == {"trainer.lr": 0.002}
    assert first.rationale == "cnn1d plateaued" and first.model_source is None
    assert gen.tier == 3 and gen.model_source and "class SEResNet1D" in gen.model_source
    assert gen.model_config == {"_target_": "generated_models.gen_tt_net.SEResNet1D", "width": 4}
    assert ctx.tool_log == ["propose_trials(['resnet-w32', 'bad', 'gen', 'third'])"]


def test_propose_trials_refusals_carry_reasons(writable_configs: tuple[Path, Path]) -> None:
    configs, generated = writable_configs
    fake_registration(configs, generated)

    def refuse(p: Proposal) -> Proposal:
        raise UnsafeConfigError(f"{p.name} looks wrong; try model=resnet1d")

    ctx = ToolContext(config_dir=configs, generated_dir=generated, max_tier=2)
    with use_context(ctx):
        with pytest.raises(ValueError, match="no proposal was accepted") as info:
            tools.propose_trials(
                [
                    {"name": "gen", "overrides": ["model=gen_tt_net"]},
                    {"name": "src", "model_source": "import torch\n"},
                    {"name": "t9", "tier": 9},
                    {"overrides": ["model=cnn1d"]},
                    {"name": "typo", "overide": ["model=cnn1d"]},
                    {"name": "str", "overrides": "model=cnn1d"},
                    "model=cnn1d",
                ]
            )
        message = str(info.value)
        assert (
            "refused 'gen': tier 3 is above this campaign's max_tier 2 (model=gen_tt_net" in message
        )
        assert "refused 'src': tier 3 is above" in message and "it carries model_source" in message
        assert "refused 't9': tier must be 2" in message
        assert "refused (unnamed): every proposal needs a 'name'" in message
        assert "unknown proposal key(s) overide" in message
        assert "overrides must be a list of strings" in message
        assert "each proposal must be a dict" in message
        ctx.proposal_check = refuse
        with pytest.raises(ValueError, match="refused 'x': x looks wrong; try model=resnet1d"):
            tools.propose_trials({"name": "x", "overrides": ["model=cnn1d"]})
        with pytest.raises(ValueError, match="non-empty list"):
            tools.propose_trials([])
        ctx.proposal_check = None
        report = tools.propose_trials(  # one dict is fine, and a repeat is refused
            [{"name": "a", "overrides": ["model=cnn1d"]}, {"name": "a", "overrides": []}]
        )
        assert report.splitlines()[1] == (
            "refused 'a': a proposal named 'a' was accepted already; rename it"
        )
    assert [p.name for p in ctx.proposals] == ["a"]


def test_propose_trials_in_a_campaign_registers_and_composes(campaign: ToolContext) -> None:
    report = tools.propose_trials(
        [
            {"name": "wide", "overrides": ["model=resnet1d", "model.width=24"]},
            {"name": "nomodel", "overrides": ["model=transformer"]},
        ]
    )
    assert report.splitlines()[0] == "accepted 'wide' (tier 2): model=resnet1d model.width=24"
    assert report.splitlines()[1].startswith("refused 'nomodel': ") and "transformer" in report
    assert [p.name for p in campaign.proposals] == ["wide"]


def test_proposals_from_answer_converts_final_answers(writable_configs: tuple[Path, Path]) -> None:
    configs, generated = writable_configs
    ctx = ToolContext(config_dir=configs, generated_dir=generated, max_proposals=3)
    item = {"name": "r", "overrides": ["model=resnet1d"]}
    assert [p.name for p in proposals_from_answer([item], ctx)] == ["r"]
    assert [p.name for p in proposals_from_answer(item, ctx)] == ["r"]
    assert [p.name for p in proposals_from_answer({"proposals": [item]}, ctx)] == ["r"]
    assert [p.name for p in proposals_from_answer(json.dumps([item]), ctx)] == ["r"]
    fenced = f"Here you go:\n```json\n{json.dumps(item)}\n```\nGood luck."
    assert [p.name for p in proposals_from_answer(fenced, ctx)] == ["r"]
    nothings: tuple[object, ...] = (None, 3, "no proposals today", "[1, 2", [], {})
    for nothing in nothings:
        assert proposals_from_answer(nothing, ctx) == []
    mixed = [item, {"name": "bad", "tier": 7}, {"name": "s", "overrides": ["model=cnn1d"]}]
    assert [p.name for p in proposals_from_answer(mixed, ctx)] == ["r", "s"]
    ctx.proposals.append(Proposal(name="r", tier=2, overrides=["model=resnet1d"]))
    out = proposals_from_answer(mixed * 2, ctx)  # "r" was proposed with the tool already
    assert [p.name for p in out] == ["s"] and len(ctx.proposals) == 1
    assert all(p.origin == "agent" for p in out)
    coded = {"name": "coded", "model_source": "import torch\n"}
    assert proposals_from_answer([coded], ctx) == []  # tier 3 by default; max_tier is 2
    ctx.max_tier = 3
    (p3,) = proposals_from_answer([coded], ctx)
    assert p3.tier == 3 and p3.model_source == "import torch\n"


# --- inside a smolagents CodeAgent ----------------------------------------------------------


class ScriptedModel(Model):
    """A smolagents Model that answers with fixed code actions, one per step."""

    def __init__(self, actions: Sequence[str]) -> None:
        super().__init__(model_id="scripted")
        self.actions = list(actions)
        self.calls = 0

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Tool] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        action = self.actions[min(self.calls, len(self.actions) - 1)]
        self.calls += 1
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=f"Thought: next step.\n<code>\n{action}\n</code>",
            token_usage=TokenUsage(input_tokens=10, output_tokens=5),
        )


def run_agent(actions: Sequence[str], max_tier: int = 3) -> tuple[Any, CodeAgent]:
    agent = CodeAgent(
        tools=tools.tools_for_tier(max_tier),
        model=ScriptedModel(actions),
        max_steps=3,
        verbosity_level=LogLevel.OFF,
    )
    return agent.run("Propose trials."), agent


def observations(agent: CodeAgent) -> list[str]:
    return [getattr(s, "observations", None) or "" for s in agent.memory.steps]


def test_a_code_agent_calls_the_tools(writable_configs: tuple[Path, Path]) -> None:
    ctx = ToolContext(max_tier=3, max_proposals=1)
    with use_context(ctx):
        result, agent = run_agent(
            [
                "print(list_available_configs())",
                "final_answer(list_available_configs()['model'])",
            ]
        )
    expected = sorted(p.stem for p in (writable_configs[0] / "model").glob("*.yaml"))
    assert result == expected and {"cnn1d", "resnet1d"} <= set(result)
    assert any(f"'model': {expected!r}" in o for o in observations(agent))
    assert ctx.tool_log == ["list_available_configs()", "list_available_configs()"]


def test_a_code_agent_reads_tool_errors_and_proposes(campaign: ToolContext) -> None:
    campaign.max_proposals = 1
    result, agent = run_agent(
        [
            "print(read_run_results('no-such-run'))",
            "r = read_run_results('t0005')\nprint(r['best_value'], r['params'])\n"
            "print(propose_trials([{'name': 'r2', 'overrides': ['model=resnet1d'],"
            " 'params': r['params']}]))",
            "final_answer(get_experiment_history())",
        ]
    )
    steps = observations(agent)
    errors = [str(getattr(s, "error", "") or "") for s in agent.memory.steps]
    assert any("neither an existing directory nor a run id" in e for e in errors)
    assert any("0.83 {'trainer.lr': 0.001}" in o and "accepted 'r2' (tier 2)" in o for o in steps)
    assert isinstance(result, str) and result.startswith("campaign camp")
    no_test_metrics(result)
    assert [p.name for p in campaign.proposals] == ["r2"]
    assert campaign.tool_log == [
        "read_run_results('no-such-run')",
        "read_run_results('t0005')",
        "propose_trials(['r2'])",
        "get_experiment_history()",
    ]


def test_what_tools_return_gives_agent_code_no_way_to_write_files(
    writable_configs: tuple[Path, Path],
) -> None:
    configs, _ = writable_configs
    ctx = ToolContext(max_tier=2)
    with use_context(ctx):
        _, agent = run_agent(
            [
                "p = create_config_variant('model', 'cnn1d', 'cnn1d_tt_w16', {'width': 16})\n"
                "print(p.name)\np.with_name('evil.py').write_text('import os')",
                "p = compose_experiment_config('exp_tt_w16', ['model=cnn1d_tt_w16'], [])\n"
                "p.unlink()",
                "final_answer('done')",
            ],
            max_tier=2,
        )
    errors = [str(getattr(s, "error", "") or "") for s in agent.memory.steps]
    assert sum("has no attribute write_text" in e for e in errors) == 1
    assert sum("has no attribute unlink" in e for e in errors) == 1
    assert any("cnn1d_tt_w16.yaml" in o for o in observations(agent))
    assert not (configs / "model" / "evil.py").exists()
    assert (configs / "model" / "cnn1d_tt_w16.yaml").is_file()
    assert (configs / "experiment" / "exp_tt_w16.yaml").is_file()
