"""`AgentSearcher`'s set-up: the space, metric, mode and concurrency it learns, the base arm.

A mixin, so `search.searcher` keeps trials and checkpoints: the constructor or Tune's
handshake (`set_search_properties`, `set_max_concurrency`) supply the space, metric and
mode; once all three are known `_setup` builds the `ArmRegistry` with the base arm (and its
`points_to_evaluate`) and the `RepeatPlanner`, exactly once. The state it reads and writes is
`AgentSearcher`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.tune.result import DEFAULT_METRIC

from search.arms import BASE_ARM, ArmRegistry
from search.proposals import arm_space
from search.repeats import RepeatPlanner
from search.space import convert_search_space, flatten_config

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["UNDEFINED_METRIC_MODE", "UNDEFINED_SPACE", "SearcherSetup"]

UNDEFINED_SPACE = (
    "{cls} has no search space: pass `space=` to the constructor or a `param_space` with "
    "search domains to the Tuner."
)
UNDEFINED_METRIC_MODE = (
    "{cls} needs a metric and a mode, got metric={metric!r}, mode={mode!r}: pass them to the "
    "constructor. `tune.TuneConfig(metric=..., mode=...)` only reaches the searcher when the "
    "Tuner's `param_space` is not empty."
)


class SearcherSetup:
    """The set-up half of `AgentSearcher` (see the module docstring)."""

    if TYPE_CHECKING:  # set by AgentSearcher.__init__ (and Tune's Searcher)
        _metric: str | None
        _mode: str | None
        _base_space: dict[str, BaseDistribution] | None
        _base_overrides: tuple[str, ...]
        _points_to_evaluate: list[dict[str, Any]]
        _arm_settings: dict[str, Any]
        _repeats_wanted: int
        _registry: ArmRegistry | None
        _repeats: RepeatPlanner | None
        _max_concurrent: int | None

    def _metric_and_mode_known(self) -> bool:
        """True once metric and mode are known; a mode alone sets the metric to Tune's default."""
        if self._mode and not self._metric:
            self._metric = DEFAULT_METRIC  # like OptunaSearch: a mode alone means "_metric"
        return bool(self._metric and self._mode)

    def _setup(self) -> ArmRegistry:
        """The registry, built with the base arm on the first call (space and mode known)."""
        if self._registry is not None:
            return self._registry
        assert self._base_space is not None and self._mode is not None  # callers checked
        registry = ArmRegistry(mode=self._mode, **self._arm_settings)
        base = registry.add(
            BASE_ARM,
            tier=0,
            overrides=self._base_overrides,
            space=arm_space(self._base_space, self._base_overrides),
        )
        for point in self._points_to_evaluate:
            registry.enqueue(base, flatten_config(point), "human")
        self._registry = registry
        self._repeats = RepeatPlanner(self._repeats_wanted, self._mode)
        return registry

    def _ready(self) -> ArmRegistry:
        """The registry, set up now if need be.

        Raises:
            RuntimeError: no space, metric or mode is known yet.
        """
        if self._base_space is None:
            raise RuntimeError(UNDEFINED_SPACE.format(cls=type(self).__name__))
        if not self._metric_and_mode_known():
            raise RuntimeError(
                UNDEFINED_METRIC_MODE.format(
                    cls=type(self).__name__, metric=self._metric, mode=self._mode
                )
            )
        return self._setup()

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Take metric, mode and (when none was given) the space from the Tuner.

        Returns:
            False when the constructor already set a space and `config` holds search domains
            too (Tune then raises its "already instantiated with a search space" error);
            True otherwise.
        """
        if metric and not self._metric:
            self._metric = metric
        if mode and not self._mode:
            if mode not in ("min", "max"):
                raise ValueError(f"`mode` must be 'min' or 'max', got {mode!r}.")
            self._mode = mode
        converted = convert_search_space(config)
        if self._base_space is not None and self._registry is not None:
            return not converted
        if self._base_space is None or (converted and not self._base_space):
            self._base_space = converted
        elif converted:
            return False
        if self._metric_and_mode_known():
            self._setup()
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Enforce Tune's `max_concurrent_trials` here instead of in `ConcurrencyLimiter`.

        The limiter drops completions of trial ids it did not hand out, which after
        `Tuner.restore(..., restart_errored=True)` are exactly the rerun trials; limiting here
        lets them reach `on_trial_complete`.

        Returns:
            True (the limiter then passes every call through).
        """
        if max_concurrent < 1:
            raise ValueError(f"`max_concurrent` must be >= 1, got {max_concurrent}.")
        self._max_concurrent = max_concurrent
        return True
