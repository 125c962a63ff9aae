"""The escalation ladder and the arm-selection rule, without Ray or an LLM."""

from __future__ import annotations

import pytest
from optuna.distributions import FloatDistribution

from search.arms import BASE_ARM, ArmRegistry
from search.escalation import EscalationPolicy

MODELS = ("cnn1d", "resnet1d", "encoder_classifier")


@pytest.mark.parametrize(
    ("action", "max_tier", "tried", "kind", "tier"),
    [
        ("continue", 3, (), "tune", None),
        ("change_lr", 3, (), "tune", None),
        ("stop", 3, (), "stop", None),
        ("stop", 0, (), "stop", None),
        ("change_model", 2, ("cnn1d",), "propose", 2),
        ("change_model", 3, ("cnn1d",), "propose", 2),
        ("change_model", 3, MODELS, "propose", 3),
        ("change_model", 2, MODELS, "propose", 2),  # tier 3 not allowed: more tier-2 variants
        ("change_model", 1, (), "tune", None),  # escalation off
        ("change_model", 0, (), "tune", None),
    ],
)
def test_ladder(
    action: str, max_tier: int, tried: tuple[str, ...], kind: str, tier: int | None
) -> None:
    policy = EscalationPolicy(max_tier=max_tier, models=MODELS)
    decision = policy.decide(action, ["r"], tried_models=tried)
    assert (decision.kind, decision.tier) == (kind, tier)
    assert decision.reasons[0] == "r"


def test_no_models_listed_keeps_asking_for_tier_2() -> None:
    policy = EscalationPolicy(max_tier=3, models=())
    assert policy.decide("change_model", tried_models=("cnn1d",)).tier == 2


@pytest.mark.parametrize(
    ("in_flight", "settled", "made", "kind"),
    [
        (True, True, 0, "wait"),
        (False, False, 1, "wait"),
        (False, True, 2, "tune"),  # budget of 2 requests spent
        (False, True, 1, "propose"),
    ],
)
def test_requests_are_gated(in_flight: bool, settled: bool, made: int, kind: str) -> None:
    policy = EscalationPolicy(max_tier=2, models=MODELS, max_requests=2)
    decision = policy.decide(
        "change_model", request_in_flight=in_flight, arms_settled=settled, requests_made=made
    )
    assert decision.kind == kind


def test_policy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="max_tier"):
        EscalationPolicy(max_tier=4)
    with pytest.raises(ValueError, match="Unknown recommendation action 'explode'"):
        EscalationPolicy().decide("explode")


def _registry(**kwargs: float) -> ArmRegistry:
    reg = ArmRegistry(mode="max", seed=0, **kwargs)  # type: ignore[arg-type]
    space = {"lr": FloatDistribution(0.0, 1.0)}
    reg.add(BASE_ARM, tier=0, overrides=[], space=space)
    return reg


def test_new_arms_get_their_trials_first() -> None:
    reg = _registry(min_trials_per_arm=2)
    base = reg[BASE_ARM]
    for _ in range(3):
        reg.record(base, 0.5, {}, failed=False)
    new = reg.add("resnet", tier=2, overrides=["model=resnet1d"], space={})
    assert reg.select() is new
    new.n_pending = 1
    assert reg.select() is new  # still one short of min_trials_per_arm
    new.n_pending = 2
    assert reg.select() in (base, new)


def test_exploit_picks_the_best_arm_and_explore_the_least_tried() -> None:
    reg = _registry(min_trials_per_arm=1, exploit_prob=1.0)
    base = reg[BASE_ARM]
    other = reg.add("other", tier=2, overrides=["model=x"], space={})
    reg.record(base, 0.2, {}, failed=False)
    reg.record(other, 0.9, {"lr": 0.1}, failed=False)
    assert reg.select() is other
    assert reg.best() is other and other.best_params == {"lr": 0.1}
    reg.exploit_prob = 0.0
    other.n_results = 5
    assert reg.select() is base


def test_exploit_respects_min_mode() -> None:
    reg = ArmRegistry(mode="min", seed=0, min_trials_per_arm=0, exploit_prob=1.0)
    a = reg.add(BASE_ARM, tier=0, overrides=[], space={})
    b = reg.add("b", tier=2, overrides=["model=b"], space={})
    reg.record(a, 0.2, {}, failed=False)
    reg.record(b, 0.9, {}, failed=False)
    assert reg.select() is a


def test_failing_arm_is_retired_but_the_base_arm_never_is() -> None:
    reg = _registry(min_trials_per_arm=5, max_arm_failures=2)
    bad = reg.add("bad", tier=3, overrides=["model=gen"], space={})
    base = reg[BASE_ARM]
    for _ in range(2):
        reg.record(bad, None, {}, failed=True)
        reg.record(base, None, {}, failed=True)
    assert bad.retired and not base.retired
    assert reg.select() is base
    reg.record(base, None, {}, failed=False)  # pruned: not a failure
    assert base.consecutive_failures == 2


def test_drift_retires_a_degrading_arm_but_never_the_best_or_the_base() -> None:
    reg = _registry(min_trials_per_arm=0)
    weak = reg.add("weak", tier=2, overrides=["model=resnet1d"], space={})
    base = reg[BASE_ARM]
    assert reg.retire_for_drift("weak") is None  # no value yet: no best to fall back on
    reg.record(base, 0.8, {}, failed=False)
    reg.record(weak, 0.6, {}, failed=False)
    assert reg.retire_for_drift(BASE_ARM) is None  # the base arm (here also the best) stays
    reason = reg.retire_for_drift("weak")
    assert reason is not None and "'weak' retired" in reason and "'base'" in reason
    assert weak.retired and all(reg.select() is base for _ in range(5))
    assert reg.retire_for_drift("weak") is None  # once
    assert reg.retire_for_drift("unknown") is None
    best = reg.add("best", tier=2, overrides=["model=cnn1d"], space={})
    reg.record(best, 0.9, {}, failed=False)
    assert reg.retire_for_drift("best") is None and not best.retired  # the incumbent stays


def test_selection_is_reproducible_with_a_seed() -> None:
    def picks(seed: int) -> list[str]:
        reg = ArmRegistry(mode="max", seed=seed, min_trials_per_arm=0, exploit_prob=0.5)
        arms = [reg.add(n, tier=2, overrides=[f"model={n}"], space={}) for n in "abcd"]
        for i, arm in enumerate(arms):
            reg.record(arm, float(i), {}, failed=False)
        out = []
        for _ in range(12):
            arm = reg.select()
            arm.n_results += 1
            out.append(arm.name)
        return out

    assert picks(1) == picks(1)
    assert len(set(picks(1))) > 1


def test_one_lucky_value_does_not_lock_the_campaign_in() -> None:
    # Arm "lucky" has the single best value, arm "steady" the better top-3 mean: the old rule
    # (exploit the best single value) gave every trial to "lucky".
    reg = _registry(min_trials_per_arm=0, exploit_prob=1.0)
    lucky = reg[BASE_ARM]
    steady = reg.add("steady", tier=2, overrides=["model=resnet1d"], space={})
    for v in (0.90, 0.50, 0.52):
        reg.record(lucky, v, {}, failed=False)
    for v in (0.70, 0.72, 0.71):
        reg.record(steady, v, {}, failed=False)
    assert reg.best() is lucky
    picks = [reg.select().name for _ in range(400)]
    assert picks.count("steady") > 0.6 * len(picks)  # P(steady better) ~ 0.7 here
    assert picks.count(BASE_ARM) > 0  # a close rival keeps a share: it may be better


def test_thompson_draws_follow_the_noise_and_the_mode() -> None:
    reg = ArmRegistry(mode="min", seed=3, min_trials_per_arm=0, exploit_prob=1.0, noise=0.0)
    a = reg.add(BASE_ARM, tier=0, overrides=[], space={})
    b = reg.add("b", tier=2, overrides=["model=b"], space={})
    for v in (0.30, 0.31, 0.32):
        reg.record(a, v, {}, failed=False)
    for v in (0.10, 0.60, 0.61):  # best single value, worse top-3 mean
        reg.record(b, v, {}, failed=False)
    assert all(reg.select() is a for _ in range(50))  # no noise: the better top-3 mean
    reg.noise = 1.0  # noise far above the gap: both arms get trials
    picks = {reg.select().name for _ in range(100)}
    assert picks == {BASE_ARM, "b"}
    with pytest.raises(ValueError, match="noise"):
        ArmRegistry(mode="max", noise=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        ArmRegistry(mode="max", top_k=0)


def test_a_new_arm_starts_from_the_best_arms_shared_parameters() -> None:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    space = {
        "trainer.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "trainer.batch_size": CategoricalDistribution([32, 64, 128]),
    }
    reg = ArmRegistry(mode="max", seed=0, min_trials_per_arm=3)
    base = reg.add(BASE_ARM, tier=0, overrides=[], space=space)
    reg.record(base, 0.8, {"trainer.lr": 0.0123, "trainer.batch_size": 64}, failed=False)
    new_space = {
        "trainer.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "trainer.batch_size": CategoricalDistribution([16, 32]),  # 64 is not a choice here
        "model.depth": IntDistribution(1, 4),
    }
    new = reg.add("deep", tier=2, overrides=["model=resnet1d"], space=new_space)
    assert new.warm_params == {"trainer.lr": 0.0123}
    assert reg.select() is new
    first = new.study.ask(new_space)
    assert first.params["trainer.lr"] == 0.0123  # the old rule drew it at random
    assert first.params["trainer.batch_size"] in (16, 32) and 1 <= first.params["model.depth"] <= 4
    assert new.queued_origins == ["optuna"]

    # A proposal's own queued trial keeps its values; the shared ones it left open are filled.
    other = reg.add("other", tier=2, overrides=["model=cnn1d"], space=new_space)
    reg.enqueue(other, {"model.depth": 2}, "agent")
    trial = other.study.ask(new_space)
    assert trial.params["model.depth"] == 2 and trial.params["trainer.lr"] == 0.0123
    assert other.queued_origins == ["agent"]
