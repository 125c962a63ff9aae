"""Every proposal passes the safety layer before it becomes an arm (the campaign's check).

The attacks here are the ones measured on main before the safety layer existed: a tier-3
proposal whose code calls `os.system` became an arm, overrides setting `_target_`/`_args_`,
deleting keys or changing Hydra settings reached composition. Each is refused once, with the
reason in the history, and a legitimate counterpart still becomes an arm.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ray import tune
from searcher_fakes import TINY_MODEL_SOURCE, ScriptedProposer, ScriptedRecommender, final_result

from agent import Proposal
from agent.safety.proposals import ProposalCheck
from feedback import FeedbackStore
from search import RESERVED_KEY, AgentSearcher

METRIC = "val/macro_f1"
SPACE = {"trainer.lr": tune.loguniform(1e-4, 1e-1), "model.width": tune.choice([4, 8])}
DIMS = {"in_channels": 3, "input_length": 216, "num_classes": 3}

OS_SYSTEM_MODEL = """\
import os

import torch


class Net(torch.nn.Module):
    def __init__(self, *, in_channels: int, input_length: int, num_classes: int) -> None:
        super().__init__()
        os.system("touch /tmp/agentune-pwned")
        self.head = torch.nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, K)
        return self.head(x.mean(dim=-1))
"""


@pytest.fixture
def dirs(writable_configs: tuple[Path, Path]) -> tuple[Path, Path]:
    return writable_configs


def _check(configs: Path, generated: Path) -> ProposalCheck:
    return ProposalCheck(
        config_dir=str(configs),
        experiment="mitbih_aami3_quick",
        base_overrides=("trainer.epochs=1",),
        generated_dir=str(generated),
        smoke_dims=DIMS,
        space_keys=tuple(SPACE),
    )


def _searcher(store: FeedbackStore, dirs: tuple[Path, Path], **kwargs: Any) -> AgentSearcher:
    kwargs.setdefault("recommender", ScriptedRecommender(["continue"]))
    return AgentSearcher(
        SPACE,
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        models=["cnn1d", "resnet1d"],
        max_tier=3,
        proposal_check=_check(*dirs),
        **kwargs,
    )


def _refusals(store: FeedbackStore) -> list[str]:
    return [
        e.message
        for e in store.events(campaign="ecg", kind="agent_failure")
        if "refused" in e.message
    ]


def _submit(searcher: AgentSearcher, proposal: Proposal) -> dict[str, Any]:
    searcher.submit_proposal(proposal)
    config = searcher.suggest("t0")  # applies queued proposals first
    assert config is not None
    return config


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "history")


def test_tier3_proposal_calling_os_system_never_becomes_an_arm(
    store: FeedbackStore, dirs: tuple[Path, Path]
) -> None:
    searcher = _searcher(store, dirs)
    _submit(searcher, Proposal(name="pwn", tier=3, model_source=OS_SYSTEM_MODEL))
    assert [a.name for a in searcher.arms] == ["base"]
    (message,) = _refusals(store)
    assert "'pwn' refused" in message and "os" in message
    assert not list(dirs[1].iterdir()), "nothing is registered for a rejected model"
    assert not Path("/tmp/agentune-pwned").exists()


def test_tier3_code_is_registered_and_travels_with_its_config(
    store: FeedbackStore, dirs: tuple[Path, Path]
) -> None:
    configs, generated = dirs
    searcher = _searcher(store, dirs, min_trials_per_arm=1)
    _submit(searcher, Proposal(name="Tiny Net!", tier=3, model_source=TINY_MODEL_SOURCE))
    (arm,) = [a for a in searcher.arms if a.tier == 3]
    (selection,) = arm.overrides
    name = selection.removeprefix("model=")
    assert name.startswith("tiny_net_")
    assert (generated / f"{name}.py").read_text(encoding="utf-8") == arm.model_source
    assert TINY_MODEL_SOURCE in (arm.model_source or "")
    assert (configs / "model" / f"{name}.yaml").is_file()
    assert arm.model_config == {"_target_": f"generated_models.{name}.TinyNet"}
    config = searcher.suggest("t1")
    assert config is not None and config[RESERVED_KEY]["arm"] == arm.name
    assert config[RESERVED_KEY]["model_config"] == arm.model_config
    assert config[RESERVED_KEY]["model_source"] == arm.model_source
    assert "model.width" not in config  # the generated model has no width


def test_a_registered_model_is_proposed_by_name(
    store: FeedbackStore, dirs: tuple[Path, Path]
) -> None:
    from agent.safety import register_generated_model

    configs, generated = dirs
    registered = register_generated_model(
        name="tiny", code=TINY_MODEL_SOURCE, args={}, dims=DIMS, configs=configs,
        generated=generated,
    )  # fmt: skip
    searcher = _searcher(store, dirs)
    _submit(searcher, Proposal(name="tiny", tier=3, overrides=["model=tiny"]))
    (arm,) = [a for a in searcher.arms if a.tier == 3]
    assert arm.overrides == ("model=tiny",)
    assert arm.model_source == registered.source
    # naming a model that was never registered, or sending other code under its name, is not
    for bad in (
        Proposal(name="ghost", tier=3, overrides=["model=ghost"]),
        Proposal(name="swap", tier=3, overrides=["model=tiny"], model_source=OS_SYSTEM_MODEL),
        Proposal(name="as-tier2", tier=2, overrides=["model=tiny"]),
    ):
        searcher.submit_proposal(bad)
        searcher.suggest(f"s-{bad.name}")
    assert len(_refusals(store)) == 3


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        (["trainer.optimizer._target_=os.system"], "_target_"),
        (["+trainer.optimizer._args_=[rm,-rf,/]"], "_args_"),
        (["model._target_=generated_models.evil.Net"], "_target_"),
        (["~trainer.lr"], "delet"),
        (["hydra.run.dir=/tmp/elsewhere"], "hydra"),
        (["hydra.job.chdir=true"], "hydra"),
        (["+model.evil=1"], "add"),
        (["model=../../etc/passwd"], "model"),
        (["model=nope"], "nope"),
        (["trainer.lr=${oc.env:HOME}"], "interpolation"),
        (["trainer.lr=abc"], "trainer.lr"),
        (["trainer.epochs=-3"], "trainer.epochs"),
        (["dataset=mitbih_synth_aami5"], "dataset"),
        (["paths.cache_dir=/"], "paths"),
        (["model.width=1,2,3"], "sweep"),
    ],
)
def test_overrides_outside_the_policy_are_refused_once_with_the_reason(
    store: FeedbackStore, dirs: tuple[Path, Path], overrides: list[str], why: str
) -> None:
    searcher = _searcher(store, dirs)
    _submit(searcher, Proposal(name="bad", tier=2, overrides=overrides))
    assert [a.name for a in searcher.arms] == ["base"]
    (message,) = _refusals(store)
    assert why.lower() in message.lower()


@pytest.mark.parametrize(
    "proposal",
    [
        Proposal(name="space-target", tier=2, overrides=["model=resnet1d"],
                 space={"trainer.optimizer._target_": {"type": "choice", "values": ["os.system"]}}),
        Proposal(name="space-hydra", tier=2, overrides=["model=resnet1d"],
                 space={"hydra.job.chdir": {"type": "choice", "values": [True, False]}}),
        Proposal(name="space-range", tier=2, overrides=["model=resnet1d"],
                 space={"trainer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e6}}),
        Proposal(name="param-interp", tier=2, overrides=["model=resnet1d"],
                 params={"trainer.lr": "${oc.env:HOME}"}),
        Proposal(name="param-type", tier=2, overrides=["model=resnet1d"],
                 params={"model.width": "wide"}),
    ],
    ids=lambda p: p.name,
)  # fmt: skip
def test_space_and_initial_params_follow_the_same_policy(
    store: FeedbackStore, dirs: tuple[Path, Path], proposal: Proposal
) -> None:
    searcher = _searcher(store, dirs)
    _submit(searcher, proposal)
    assert [a.name for a in searcher.arms] == ["base"]
    assert len(_refusals(store)) == 1


def test_legitimate_tier2_proposal_becomes_an_arm_with_canonical_overrides(
    store: FeedbackStore, dirs: tuple[Path, Path]
) -> None:
    searcher = _searcher(store, dirs)
    _submit(
        searcher,
        Proposal(
            name="resnet",
            tier=2,
            overrides=["model=resnet1d", "model.width=32", "trainer.weight_decay=0.05"],
            params={"trainer.lr": 0.003},
            space={"model.stages": {"type": "randint", "low": 1, "high": 4}},
        ),
    )
    assert _refusals(store) == []
    (arm,) = [a for a in searcher.arms if a.tier == 2]
    assert arm.overrides == ("model=resnet1d", "model.width=32", "trainer.weight_decay=0.05")


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_the_agents_proposals_are_checked_on_the_background_thread(
    store: FeedbackStore, dirs: tuple[Path, Path]
) -> None:
    proposer = ScriptedProposer(
        [
            [
                Proposal(name="evil", tier=2, overrides=["trainer.optimizer._target_=os.system"]),
                Proposal(name="resnet", tier=2, overrides=["model=resnet1d"]),
            ]
        ]
    )
    searcher = _searcher(
        store, dirs, proposer=proposer, recommender=ScriptedRecommender(["change_model"])
    )
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5, num_params=10))
    _wait_for(lambda: proposer.calls == 1 and not searcher.proposal_pending)
    searcher.suggest("b")
    assert [a.name for a in searcher.arms] == ["base", "resnet"]
    (message,) = _refusals(store)
    assert "'evil' refused" in message and "_target_" in message
