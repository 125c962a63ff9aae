"""The offline proposer's rules and the approval hooks (approve / modify / reject)."""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import pytest
import torch

from agent.approval import (
    ApprovalError,
    ApprovingProposer,
    AutoApproval,
    TerminalApproval,
    hook_for,
)
from agent.offline import OfflineProposer, generated_model_source
from agent.proposer import ArmSummary, Proposal, ProposalContext
from feedback import FeedbackStore

BEST_CNN = ArmSummary(
    name="base",
    tier=0,
    overrides=(),
    model="cnn1d",
    n_results=6,
    n_completed=6,
    best_value=0.8,
    best_params={"trainer.lr": 3e-3, "model.width": 12},
)


def _context(
    tier: int, tried: tuple[str, ...], arms: tuple[ArmSummary, ...] = (BEST_CNN,)
) -> ProposalContext:
    return ProposalContext(
        tier=tier,
        metric="val/macro_f1",
        mode="max",
        campaign="c",
        reasons=("stagnant",),
        space={"trainer.lr": "float", "model.width": "int"},
        arms=arms,
        models=("cnn1d", "resnet1d", "encoder_classifier"),
        tried_models=tried,
        max_tier=3,
    )


def test_tier2_proposes_untried_models_starting_from_the_best_shared_params() -> None:
    proposals = OfflineProposer().propose(_context(2, ("cnn1d",)), n=5)
    assert [p.overrides for p in proposals] == [["model=resnet1d"], ["model=encoder_classifier"]]
    for p in proposals:
        assert p.params == {"trainer.lr": 3e-3}  # model.* does not carry over to another model
        assert list(p.drop_params) == ["model.width"]
        assert p.tier == 2


def test_tier2_widens_the_best_model_once_every_model_was_tried() -> None:
    (proposal,) = OfflineProposer().propose(
        _context(2, ("cnn1d", "resnet1d", "encoder_classifier")), n=2
    )
    assert proposal.overrides == ["model.width=24"]
    assert proposal.name == "cnn1d-w24"


def test_tier2_respects_n() -> None:
    assert len(OfflineProposer().propose(_context(2, ()), n=1)) == 1


def test_tier3_source_follows_the_model_contract_and_passes_the_static_check() -> None:
    from agent.safety.code_policy import validate_model_source

    (proposal,) = OfflineProposer().propose(_context(3, ("cnn1d", "resnet1d")), n=2)
    assert proposal.tier == 3 and proposal.model_source
    # no _target_ override: the safety layer registers the code and selects it by name
    assert not any("_target_" in o for o in proposal.overrides)
    report = validate_model_source(proposal.model_source)
    assert report.ok and report.model_class == "SEResNet1D"
    module = types.ModuleType("m")  # trusted test code: the template is ours
    exec(proposal.model_source, module.__dict__)
    net = module.SEResNet1D(in_channels=2, input_length=64, num_classes=3)
    assert net(torch.randn(5, 2, 64)).shape == (5, 3)  # (B, num_classes)


def test_generated_source_rejects_too_short_inputs() -> None:
    module = types.ModuleType("m")
    exec(generated_model_source(width=4, stages=3, kernel_size=3), module.__dict__)
    with pytest.raises(ValueError, match="input_length must be >= 2\\*\\*stages"):
        module.SEResNet1D(in_channels=1, input_length=2, num_classes=3)


def _proposal() -> Proposal:
    return Proposal(name="resnet1d", tier=2, overrides=["model=resnet1d"], rationale="try it")


class _Fixed:
    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        return [_proposal()]


def _scripted(*answers: str) -> TerminalApproval:
    replies = iter(answers)
    return TerminalApproval(ask=lambda prompt: next(replies), show=lambda text: None)


@pytest.mark.parametrize(
    ("answers", "verdict", "overrides"),
    [
        (["a"], "approved", ["model=resnet1d"]),
        (["what?", "m", "model.width=32"], "modified", ["model=resnet1d", "model.width=32"]),
        (["r", "too big"], "rejected", None),
    ],
)
def test_terminal_approval_records_each_decision(
    tmp_path: Path, answers: list[str], verdict: str, overrides: list[str] | None
) -> None:
    proposer = ApprovingProposer(_Fixed(), _scripted(*answers), tmp_path / "history", "c")
    kept = proposer.propose(_context(2, ()), n=2)
    if overrides is None:
        assert kept == []
    else:
        assert [p.overrides for p in kept] == [overrides]
        assert kept[0].approval == verdict
    (event,) = FeedbackStore(tmp_path / "history").events(kind="approval")
    assert event.data["decision"] == verdict
    assert event.arm == "resnet1d"


def test_auto_approval_keeps_everything_and_pickles() -> None:
    proposer = ApprovingProposer(_Fixed(), AutoApproval())
    (kept,) = pickle.loads(pickle.dumps(proposer)).propose(_context(2, ()), n=1)
    assert kept.approval == "auto"


def test_terminal_approval_needs_a_terminal() -> None:
    # pytest captures stdin, so it is not a TTY here
    with pytest.raises(ApprovalError, match="interactive terminal"):
        hook_for("terminal")
    with pytest.raises(ApprovalError, match="'auto' or 'terminal'"):
        hook_for("sometimes")
