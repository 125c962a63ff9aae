"""The workload's training task as a search objective: cnn1d on the quick ECG set.

What `bench.workload_quality` searches: the built-in ``cnn1d`` (a fixed model) trained on the
quick ECG set (experiment ``mitbih_aami3_quick``, goal ``mitbih:aami3_quick``) over the goal's
space, the value being validation macro-F1 (the test macro-F1 of the same training is kept
for the report and never shown to a searcher).

The value is a deterministic function of the config: every training uses trainer seed
`TRAIN_SEED` and one torch thread (CPU training is then reproducible), and `Evaluator`
trains each distinct config once (floats rounded to 10 significant digits, `canonical`), so
every searcher that suggests a config gets the same value for it. Trainings run in spawned
worker processes (one torch thread each) or, for smoke runs, in the calling thread;
`WorkloadObjective` is the `bench.drive.Objective` that `bench.drive.run_loop` drives.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from biosignals.data.dataset import SignalDataset

logger = logging.getLogger(__name__)

GOAL = "mitbih:aami3_quick"
MODEL = "cnn1d"
TEST_KEY = "test/macro_f1"
#: The trainer seed of every training: the value of a config does not depend on the searcher.
TRAIN_SEED = 0

#: A config as a cache key: sorted (override path, canonical value) pairs.
Key = tuple[tuple[str, int | float | str], ...]


class GridStoppedError(RuntimeError):
    """The grid was stopped (another job failed); raised by `WorkloadObjective.evaluate`."""


@dataclass(frozen=True)
class Training:
    """The outcome of training one config.

    Attributes:
        val: validation macro-F1 of the best epoch (NaN when the training failed).
        test: test macro-F1 of the best epoch's weights (NaN when it failed).
        seconds: wall time of the training.
        status: the trainer's status, or ``failed: <error>``.
        num_params: trainable parameters.
    """

    val: float
    test: float
    seconds: float
    status: str
    num_params: int

    @property
    def value(self) -> float:
        """The validation value a searcher is told (a failed training counts as 0)."""
        return self.val if math.isfinite(self.val) else 0.0


def base_overrides(epochs: int) -> list[str]:
    """Overrides of every training: the goal's experiment and fixed overrides (its epochs
    replaced by `epochs`), the fixed model and the trainer seed."""
    from search.goals import load_goal

    goal = load_goal(GOAL)
    fixed = [o for o in goal.overrides if not o.startswith("trainer.epochs=")]
    return [
        f"experiment={goal.experiment}", *fixed, f"trainer.epochs={epochs}", f"model={MODEL}",
        f"seed={TRAIN_SEED}", "trainer.save_model=false",
    ]  # fmt: skip


def subsample(dataset: SignalDataset, every: int) -> SignalDataset:
    """Every `every`-th window of each split (smoke mode's tiny set); `every` 1: unchanged."""
    if every <= 1:
        return dataset
    from biosignals.data.dataset import Split

    def cut(s: Split) -> Split:
        return Split(s.x[::every], s.y[::every], s.groups[::every], s.features[::every])

    return replace(
        dataset, train=cut(dataset.train), val=cut(dataset.val), test=cut(dataset.test),
        dataset_hash=None, name=f"{dataset.name}/every{every}",
    )  # fmt: skip


class ConfigTrainer:
    """Trains configs of the space in this process on a dataset loaded once.

    Args:
        base: `base_overrides` of the mode.
        subset: keep every n-th window of each split (1: the whole set; `subsample`).
    """

    def __init__(self, base: Sequence[str], subset: int) -> None:
        from omegaconf import OmegaConf

        from biosignals.data.cache import load_dataset
        from biosignals.train import compose_config

        self.base = list(base)
        cfg = compose_config(self.base)
        cache_dir = OmegaConf.select(cfg, "paths.cache_dir", default=None)
        self.dataset = subsample(load_dataset(cfg.dataset, cache_dir), subset)

    def __call__(self, overrides: Sequence[str]) -> Training:
        """Train the base config with `overrides` (the config's ``key=value``); a failure is
        returned as a `Training` with NaN values, not raised."""
        from biosignals.train import compose_config
        from biosignals.trainer import train

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="agentune-workload-") as run_dir:
            try:
                cfg = compose_config([*self.base, *overrides, f"run_dir={run_dir}"])
                summary = train(cfg, dataset=self.dataset)
            except Exception as e:  # a diverging config is a data point, not a crash
                status = f"failed: {type(e).__name__}: {e}"
                return Training(math.nan, math.nan, time.perf_counter() - t0, status, 0)
        val = summary.best_value if summary.best_value is not None else math.nan
        test = summary.test.get(TEST_KEY, math.nan)
        return Training(
            float(val), float(test), time.perf_counter() - t0, summary.status, summary.num_params
        )


_WORKER: dict[str, ConfigTrainer] = {}


def _init_worker(base: Sequence[str], subset: int) -> None:
    import torch

    torch.set_num_threads(1)  # two processes share two cores; one thread is reproducible
    logging.getLogger("biosignals").setLevel(logging.WARNING)
    _WORKER["trainer"] = ConfigTrainer(base, subset)


def _train_in_worker(overrides: Sequence[str]) -> Training:
    return _WORKER["trainer"](overrides)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch's intra-op threads set to `n` inside, restored after (the suite's process goes
    on to other parts)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def canonical(config: Mapping[str, Any]) -> Key:
    """The cache key of a config: sorted items, integers as int, floats rounded to 10
    significant digits (the same point suggested by two searchers is one key)."""
    out: list[tuple[str, int | float | str]] = []
    for key in sorted(config):
        v = config[key]
        if isinstance(v, bool | str):
            out.append((key, str(v)))
        elif isinstance(v, int | np.integer):
            out.append((key, int(v)))
        else:
            out.append((key, float(f"{float(v):.10g}")))
    return tuple(out)


class Evaluator:
    """Every distinct config trained once, in worker processes or in this process.

    Thread-safe: job threads ask for values at once; a config another thread already asked
    for waits on the same training. The value of a config is what its first training gave.

    Args:
        base: `base_overrides` of the mode.
        subset: keep every n-th window of each split (1: the whole set; `subsample`).
        workers: processes (0: train in the calling thread; use one job thread then).
    """

    def __init__(self, base: Sequence[str], subset: int, workers: int) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Key, Future[Training]] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._local: ConfigTrainer | None = None
        self.requests = 0
        if workers > 0:
            spawn = multiprocessing.get_context("spawn")  # no fork after Ray and torch load
            self._pool = ProcessPoolExecutor(
                workers, mp_context=spawn, initializer=_init_worker, initargs=(list(base), subset)
            )
        else:
            self._local = ConfigTrainer(base, subset)

    @staticmethod
    def overrides(key: Key) -> list[str]:
        """Hydra overrides of a canonical config (floats with every digit kept)."""
        return [f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in key]

    def _submit(self, key: Key) -> Future[Training]:
        if self._pool is not None:
            return self._pool.submit(_train_in_worker, self.overrides(key))
        assert self._local is not None
        done: Future[Training] = Future()
        with torch_threads(1):
            done.set_result(self._local(self.overrides(key)))
        return done

    def submit(self, config: Mapping[str, Any]) -> Future[Training]:
        """The training of `config`: the cached one, or a new one started (in process: done
        before this returns)."""
        key = canonical(config)
        with self._lock:
            self.requests += 1
            future = self._cache.get(key)
            if future is None and self._pool is not None:
                future = self._cache[key] = self._submit(key)
        if future is None:  # in process: train outside the lock (one job thread anyway)
            future = self._submit(key)
            with self._lock:
                future = self._cache.setdefault(key, future)
        return future

    def get(self, config: Mapping[str, Any]) -> Training:
        """The training of `config` (blocks until it is done)."""
        return self.submit(config).result()

    def retrain(self, config: Mapping[str, Any]) -> Future[Training]:
        """Train `config` again, bypassing the cache (the determinism check)."""
        return self._submit(canonical(config))

    def values(self) -> dict[Key, Training]:
        """Every distinct training done so far, by canonical config."""
        with self._lock:
            return {k: f.result() for k, f in self._cache.items() if f.done()}

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class WorkloadObjective:
    """The training task as a `bench.drive.Objective`: minimise minus validation macro-F1.

    Attributes:
        evaluator: where configs are trained.
        space: the goal's Tune space.
        name: short name of the task.
        on_trial: called after each evaluation (progress counting; any thread).
        stop: once set, `evaluate` raises `GridStoppedError` (a failed job ends the others early).
    """

    evaluator: Evaluator
    space: Callable[[], dict[str, Any]]
    name: str = f"{MODEL} on mitbih_aami3_quick"
    on_trial: Callable[[], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def tune_space(self) -> dict[str, Any]:
        """A fresh copy of the goal's space (each searcher gets its own domains)."""
        return self.space()

    def evaluate(self, config: dict[str, Any], seed: int) -> tuple[float, float]:
        """(-val, -val) of `config`; `seed` is ignored: the trainer seed is fixed.

        Raises:
            GridStoppedError: `stop` is set.
        """
        if self.stop.is_set():
            raise GridStoppedError("the workload grid was stopped: another job failed")
        value = -self.evaluator.get(config).value
        if self.on_trial is not None:
            self.on_trial()
        return value, value


def default_config() -> dict[str, Any]:
    """The experiment's own values of the space's keys (what a user would train first)."""
    from omegaconf import OmegaConf

    from biosignals.train import compose_config
    from search.goals import load_goal

    cfg = compose_config(base_overrides(1))
    return {key: OmegaConf.select(cfg, key) for key in load_goal(GOAL).space}
