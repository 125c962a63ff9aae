"""The searchers the suite compares, built the way a user would build them for Tune.

Each factory takes a seed and returns a fresh, unconfigured search algorithm: the space,
metric and mode come later, from the Tuner (``param_space``) or from the benchmark loop
calling `configure` exactly as Tune does (`Searcher.set_search_properties`).

* ``agent``: `search.AgentSearcher(seed=s)`: no proposer, no store, its default sampler
  (the drop-in searcher of the README);
* ``agent_gp``: `AgentSearcher(seed=s, sampler="gp")`, the campaign goals' sampler;
* ``tpe``: Tune's `OptunaSearch` with `optuna.samplers.TPESampler(seed=s)`;
* ``gp``: `OptunaSearch` with `optuna.samplers.GPSampler(seed=s)`;
* ``random``: Tune's `BasicVariantGenerator(random_state=s)` (random search).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

SEARCHERS: tuple[str, ...] = ("agent", "agent_gp", "tpe", "gp", "random")
LABELS = {
    "agent": "AgentSearcher",
    "agent_gp": "AgentSearcher (gp)",
    "tpe": "OptunaSearch TPE",
    "gp": "OptunaSearch GP",
    "random": "random (BasicVariantGenerator)",
    "default": "default config",
}


def _agent(seed: int) -> Any:
    from search import AgentSearcher

    return AgentSearcher(seed=seed)


def _agent_gp(seed: int) -> Any:
    from search import AgentSearcher

    return AgentSearcher(seed=seed, sampler="gp")


def _optuna(sampler: str) -> Callable[[int], Any]:
    def build(seed: int) -> Any:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        made = (
            optuna.samplers.TPESampler(seed=seed)
            if sampler == "tpe"
            else optuna.samplers.GPSampler(seed=seed)
        )
        return OptunaSearch(sampler=made)

    return build


def _random(seed: int) -> Any:
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed)


FACTORIES: dict[str, Callable[[int], Any]] = {
    "agent": _agent,
    "agent_gp": _agent_gp,
    "tpe": _optuna("tpe"),
    "gp": _optuna("gp"),
    "random": _random,
}


def build(name: str, seed: int) -> Any:
    """A fresh search algorithm `name` seeded with `seed`.

    Raises:
        ValueError: `name` is not one of `SEARCHERS`.
    """
    if name not in FACTORIES:
        raise ValueError(f"unknown searcher {name!r}; known: {list(FACTORIES)}.")
    return FACTORIES[name](seed)
