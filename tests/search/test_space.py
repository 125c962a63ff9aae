"""Search spaces: every Tune domain and spec dict maps to the right Optuna distribution."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from ray import tune

from search.space import (
    SearchSpaceError,
    convert_search_space,
    describe_space,
    flatten_config,
    hydra_path,
    is_finite_number,
    merge_spaces,
    to_distribution,
    unflatten_params,
)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        (tune.uniform(0.0, 2.0), FloatDistribution(0.0, 2.0)),
        (tune.loguniform(1e-4, 1e-1), FloatDistribution(1e-4, 1e-1, log=True)),
        (tune.quniform(0.0, 1.0, 0.25), FloatDistribution(0.0, 1.0, step=0.25)),
        (tune.qloguniform(1e-3, 1.0, 1e-3), FloatDistribution(1e-3, 1.0, log=True)),
        # Tune's randint excludes the upper bound; Optuna's IntDistribution includes it.
        (tune.randint(1, 5), IntDistribution(1, 4)),
        (tune.qrandint(16, 128, 16), IntDistribution(16, 128, step=16)),
        (tune.lograndint(8, 257), IntDistribution(8, 256, log=True)),
        (tune.choice(["adam", "sgd"]), CategoricalDistribution(["adam", "sgd"])),
        (tune.choice([32, 64, None]), CategoricalDistribution([32, 64, None])),
    ],
)
def test_tune_domain_converts(domain: Any, expected: BaseDistribution) -> None:
    assert to_distribution(domain, path="x") == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "uniform", "low": 0, "high": 2}, FloatDistribution(0.0, 2.0)),
        ({"type": "loguniform", "low": 1e-4, "high": 0.1}, FloatDistribution(1e-4, 0.1, log=True)),
        ({"type": "quniform", "low": 0, "high": 1, "q": 0.5}, FloatDistribution(0, 1, step=0.5)),
        ({"type": "randint", "low": 1, "high": 5}, IntDistribution(1, 4)),
        ({"type": "qrandint", "low": 16, "high": 64, "q": 16}, IntDistribution(16, 64, step=16)),
        ({"type": "lograndint", "low": 8, "high": 65}, IntDistribution(8, 64, log=True)),
        ({"type": "choice", "values": ["a", "b"]}, CategoricalDistribution(["a", "b"])),
    ],
)
def test_spec_dict_converts_like_the_tune_domain(
    spec: dict[str, Any], expected: BaseDistribution
) -> None:
    assert to_distribution(spec, path="x") == expected


def test_optuna_distribution_passes_through_and_constants_are_dropped() -> None:
    dist = FloatDistribution(0.1, 0.2)
    space = {"a": dist, "epochs": 3, "name": "x", "list": [1, 2], "trainer.lr": tune.uniform(0, 1)}
    assert convert_search_space(space) == {"a": dist, "trainer.lr": FloatDistribution(0, 1)}
    assert convert_search_space(None) == {}


def test_nested_space_is_flattened_and_unflattened_back() -> None:
    space = {"trainer": {"lr": tune.uniform(0, 1), "epochs": 3}, "model.width": tune.randint(1, 3)}
    converted = convert_search_space(space)
    assert set(converted) == {"trainer/lr", "model.width"}
    params = {"trainer/lr": 0.5, "model.width": 2}
    assert unflatten_params(params) == {"trainer": {"lr": 0.5}, "model.width": 2}
    assert flatten_config(unflatten_params(params)) == params
    assert hydra_path("trainer/lr") == "trainer.lr"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (tune.grid_search([1, 2]), "grid_search"),
        (tune.randn(0, 1), "Normal"),
        (tune.sample_from(lambda _: 1), "sample_from"),
        (tune.choice([[1, 2], [3]]), "choice values"),
        ({"type": "quniform", "low": 0, "high": 1}, "needs the key 'q'"),
        ({"type": "uniform", "low": 2, "high": 1}, "invalid 'uniform'"),
        ({"type": "choice", "values": []}, "at least one value"),
    ],
)
def test_unsupported_domains_raise_with_the_path(value: Any, message: str) -> None:
    with pytest.raises(SearchSpaceError, match=message) as info:
        convert_search_space({"trainer.lr": value})
    assert "trainer.lr" in str(info.value)


def test_slash_in_keys_is_refused() -> None:
    with pytest.raises(SearchSpaceError, match="reserved"):
        convert_search_space({"a/b": tune.uniform(0, 1)})


def test_merge_spaces_drops_by_hydra_path_and_adds_entries() -> None:
    base = convert_search_space(
        {"trainer": {"lr": tune.uniform(0, 1)}, "model.width": tune.randint(1, 9)}
    )
    merged = merge_spaces(
        base, {"model.depth": {"type": "randint", "low": 1, "high": 4}}, ["trainer.lr"]
    )
    assert merged == {"model.width": IntDistribution(1, 8), "model.depth": IntDistribution(1, 3)}
    assert base["trainer/lr"] == FloatDistribution(0, 1)  # the base is not modified


def test_describe_space_is_keyed_by_hydra_path() -> None:
    text = describe_space(
        convert_search_space(
            {"trainer": {"lr": tune.loguniform(1e-4, 1e-2)}, "opt": tune.choice(["a"])}
        )
    )
    assert text == {"trainer.lr": "float[0.0001, 0.01] log", "opt": "choice['a']"}


@pytest.mark.parametrize(
    ("value", "finite"),
    [
        (1, True),
        (0.5, True),
        (float("nan"), False),
        (float("inf"), False),
        (None, False),
        ("1.0", False),
        (True, False),
    ],
)
def test_is_finite_number(value: object, finite: bool) -> None:
    assert is_finite_number(value) is finite


def test_snap_to_steps_puts_stepped_floats_on_their_grid() -> None:
    from optuna.distributions import FloatDistribution, IntDistribution

    from search.space import snap_to_steps

    space = {
        "d": FloatDistribution(0.0, 0.3, step=0.1),
        "w": FloatDistribution(0.05, 0.5, step=0.05),
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "n": IntDistribution(1, 5),
    }
    got = snap_to_steps(
        {"d": 6.938893903907228e-18, "w": 0.15000000000000002, "lr": 0.0123456, "n": 3, "x": 1.5},
        space,
    )
    assert got == {"d": 0.0, "w": 0.15, "lr": 0.0123456, "n": 3, "x": 1.5}
    assert snap_to_steps({"d": 0.30000000000000004}, space) == {"d": 0.3}
