"""Standard test functions for search-quality benchmarks: minimisation problems on a box.

One definition serves every part that needs them (`bench.search_quality`,
`bench.tpe_settings`). Each function takes a point ``x`` of shape ``(d,)`` and returns a
float; `TestFunction.minimum` is the known global minimum, so the simple regret of a point is
``f(x) - minimum``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TestFunction:
    """A minimisation problem on a box, with its known minimum.

    Attributes:
        name: short name, e.g. "branin2", "ackley10".
        bounds: (low, high) per dimension.
        f: the noiseless function.
        minimum: its global minimum on the box.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    name: str
    bounds: tuple[tuple[float, float], ...]
    f: Callable[[np.ndarray], float]
    minimum: float

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return len(self.bounds)

    @property
    def keys(self) -> list[str]:
        """Parameter names of the search space: x0, x1, ..."""
        return [f"x{i}" for i in range(self.dim)]

    def midpoint(self) -> np.ndarray:
        """The centre of the box: the config a user with no information would start from."""
        lo, hi = np.array(self.bounds).T
        return np.asarray((lo + hi) / 2.0)

    def noise_scale(self, fraction: float = 0.01) -> float:
        """`fraction` of the function's spread (std) over a fixed sample of 256 box points.

        Observation noise of this standard deviation is added to what searchers see.
        """
        rng = np.random.default_rng(12345)
        lo, hi = np.array(self.bounds).T
        values = [self.f(lo + (hi - lo) * rng.random(len(lo))) for _ in range(256)]
        return fraction * float(np.std(values))


def branin(x: np.ndarray) -> float:
    """Branin-Hoo (2-D); three global minima of 0.397887 on [-5, 10] x [0, 15]."""
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return float(a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s)


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x: np.ndarray) -> float:
    """Hartmann 6-D on [0, 1]^6; global minimum -3.32237."""
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def rosenbrock(x: np.ndarray) -> float:
    """Rosenbrock in any dimension; minimum 0 at (1, ..., 1)."""
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def ackley(x: np.ndarray) -> float:
    """Ackley in any dimension; minimum 0 at the origin."""
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / d))
        - math.exp(np.sum(np.cos(2 * math.pi * x)) / d)
        + 20
        + math.e
    )


def make(name: str) -> TestFunction:
    """The test function called `name`.

    Names: ``branin2``, ``hartmann6``, ``rosenbrock<d>`` (box [-2, 2]^d) and ``ackley<d>``
    (box [-5, 10]^d: asymmetric, so the box centre, the default config, is not the optimum)
    for any d >= 2, and ``ackley<d>sym`` (box [-5, 5]^d, the arm-sampler study's box).

    Raises:
        ValueError: an unknown name (the message lists the known forms).
    """
    if name == "branin2":
        return TestFunction(name, ((-5.0, 10.0), (0.0, 15.0)), branin, 0.397887)
    if name == "hartmann6":
        return TestFunction(name, ((0.0, 1.0),) * 6, hartmann6, -3.32237)
    for prefix, f, box in (
        ("rosenbrock", rosenbrock, (-2.0, 2.0)),
        ("ackley", ackley, (-5.0, 10.0)),
    ):
        rest = name.removeprefix(prefix)
        if rest == name:
            continue
        symmetric = prefix == "ackley" and rest.endswith("sym")
        digits = rest.removesuffix("sym") if symmetric else rest
        if digits.isdigit() and int(digits) >= 2:
            bounds = (-5.0, 5.0) if symmetric else box
            return TestFunction(name, (bounds,) * int(digits), f, 0.0)
    raise ValueError(
        f"unknown test function {name!r}; known: branin2, hartmann6, rosenbrock<d>, ackley<d>, "
        "ackley<d>sym (d >= 2), e.g. 'ackley10'."
    )


@dataclass(frozen=True)
class Problem:
    """A test function as a searcher sees it: parameters by name, optionally noisy values.

    The noise is a deterministic function of (seed, point): a benchmark loop and a Tune run
    with the same seed that evaluate the same point observe the same value, so the two
    drivers can be compared exactly, and every searcher sees the same noise at a point.

    Attributes:
        fn: the function.
        noise: standard deviation of the Gaussian observation noise (0: noiseless).
    """

    fn: TestFunction
    noise: float = 0.0

    @property
    def name(self) -> str:
        """The function's name, with ``+noise`` when noisy."""
        return self.fn.name + ("+noise" if self.noise > 0 else "")

    def point(self, config: dict[str, float]) -> np.ndarray:
        """The point of a config keyed ``x0``, ``x1``, ..."""
        return np.array([float(config[k]) for k in self.fn.keys])

    def evaluate(self, config: dict[str, float], seed: int) -> tuple[float, float]:
        """(true value, observed value) of `config` under the noise of `seed`."""
        x = self.point(config)
        true = self.fn.f(x)
        if self.noise <= 0:
            return true, true
        digest = hashlib.blake2b(x.tobytes(), digest_size=8).digest()
        rng = np.random.default_rng([seed, int.from_bytes(digest, "little")])
        return true, true + self.noise * float(rng.standard_normal())
