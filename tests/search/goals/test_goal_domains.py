"""Search domains: built in code or read from YAML, converted to Tune, Optuna and spec dicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from goal_helpers import VALID_GOAL, load_one, make_configs_dir

from search.goals import SearchDomain


@pytest.fixture
def configs_dir(tmp_path: Path) -> Path:
    """A fake Hydra config dir: experiments exp_a/exp_b, models model_a/model_b."""
    return make_configs_dir(tmp_path)


def test_domain_built_in_code_is_validated_too() -> None:
    domain = SearchDomain(kind="randint", low=4, high=16)
    assert SearchDomain.model_validate(domain.model_dump()) == domain
    with pytest.raises(ValueError, match="low must be < high"):
        SearchDomain(kind="uniform", low=1.0, high=0.5)
    with pytest.raises(ValueError, match="uniform takes high, kind, low"):
        SearchDomain(kind="uniform", low=0.0, high=0.5, q=0.1)


def test_tune_space_types_and_bounds(tmp_path: Path, configs_dir: Path) -> None:
    from ray.tune.search import sample

    space = load_one(tmp_path, configs_dir, VALID_GOAL).tune_space()
    assert list(space) == list(VALID_GOAL["space"])
    lr = space["trainer.lr"]
    assert isinstance(lr, sample.Float) and isinstance(lr.get_sampler(), sample.LogUniform)
    assert (lr.lower, lr.upper) == (1e-4, 1e-2)
    batch = space["trainer.batch_size"]
    assert isinstance(batch, sample.Categorical) and batch.categories == [64, 128]
    width = space["model.width"]  # YAML bounds are inclusive; tune.randint's upper is not
    assert isinstance(width, sample.Integer) and (width.lower, width.upper) == (4, 17)
    depth = space["model.depth"]
    assert isinstance(depth, sample.Integer) and isinstance(depth.get_sampler(), sample.Quantized)
    assert (depth.lower, depth.upper) == (2, 8)
    dropout = space["model.dropout"]
    assert isinstance(dropout, sample.Float) and isinstance(dropout.get_sampler(), sample.Quantized)
    channels = space["model.channels"]
    assert isinstance(channels, sample.Integer) and (channels.lower, channels.upper) == (8, 65)
    assert isinstance(space["trainer.weight_decay"], sample.Float)
    rng = np.random.default_rng(0)
    widths = {int(w) for w in width.sample(size=400, random_state=rng)}
    assert widths == set(range(4, 17))


def test_optuna_space_bounds_are_inclusive(tmp_path: Path, configs_dir: Path) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = load_one(tmp_path, configs_dir, VALID_GOAL).optuna_space()
    assert space["model.width"] == IntDistribution(4, 16)
    assert space["model.depth"] == IntDistribution(2, 8, step=2)
    assert space["model.channels"] == IntDistribution(8, 64, log=True)
    assert space["trainer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert space["trainer.batch_size"] == CategoricalDistribution([64, 128])


def test_spec_dicts_follow_search_space_conventions(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, VALID_GOAL)
    assert goal.space["model.width"].to_spec() == {"type": "randint", "low": 4, "high": 17}
    assert goal.space["model.depth"].to_spec() == {"type": "qrandint", "low": 2, "high": 8, "q": 2}
    assert goal.space["trainer.batch_size"].to_spec() == {"type": "choice", "values": [64, 128]}


def test_contains_and_sample_point(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, VALID_GOAL)
    assert goal.space["model.width"].contains(16) and not goal.space["model.width"].contains(17)
    assert not goal.space["model.width"].contains(4.5)
    assert goal.space["trainer.batch_size"].contains(64)
    assert goal.space["trainer.batch_size"].contains(np.int64(128))
    assert not goal.space["trainer.batch_size"].contains("64")
    assert not goal.space["trainer.batch_size"].contains(True)
    assert all(goal.space[k].contains(v) for k, v in goal.sample_config().items())
