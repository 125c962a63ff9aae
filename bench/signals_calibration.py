"""Calibration of the feedback signals: false alarms and detection at the biosignal noise levels.

Run: ``python bench/signals_calibration.py [--campaigns N] [--seed S] [--out FILE.json]``
(five to six minutes on 2 CPUs with the default N = 1000, which gives each rate a 95 %
interval of at most +-3.1 points, +-1.4 at 5 %). ``--calibrate`` instead recomputes the
drift thresholds ``feedback.signals.DRIFT_THRESHOLDS`` (use ``--campaigns 40000``);
``--improvement-k`` and ``--trend-k`` simulate other stagnation constants
(``--campaigns 300`` takes about 100 s).

Every simulated campaign has 64 completed trials; the signals are read after every trial, as
the searcher does, with :func:`feedback.drift` / :func:`feedback.stagnation` on a
:class:`feedback.History`. Values are the true quality of the trial plus Gaussian noise of
standard deviation ``sigma``, the seed noise measured on the biosignal tasks: ECG validation
macro F1 0.021 (20-epoch runs, goal ``mitbih:aami3_baseline``: window 8, min_delta 0.005,
patience 2) and 0.035 (three-epoch runs, ``mitbih:aami3_quick``: window 6, min_delta 0.01,
patience 1); PPG validation MAE 0.8 bpm (``galaxyppg:hr_optimize``: window 6, min_delta
0.1, patience 2) and 2.4 bpm (``galaxyppg:hr_quick``: window 6, min_delta 0.25, patience 1;
MAE is minimised). Each setting runs twice: with the noise estimated from the campaign
(what the shipped goals do) and with the goal giving it (``SignalThresholds.noise``).

Measured, per setting (targets in brackets):

* (a) drift false alarms: share of stationary campaigns (iid values) whose drift reading is
  ever positive; one arm, and three arms (the base arm, a second arm 2 sigma weaker from
  trial 20, a third 1 sigma weaker from trial 40, trials assigned at random among the open
  arms, each arm stationary) [<= 5 %].
* (b) false stagnation: share of campaigns still improving at a steady rate (the true
  quality rises by 2 sigma per window, so the expected best gains 2 noise std per window)
  that are called stagnant at any point [<= 5 %]; the same within the goal's own budget
  (30 trials for ``aami3_quick``, 32 for ``hr_quick``); the share at 4 sigma per window;
  and the share recommended ``change_model`` (stagnant with ``patience * window`` runs
  since the last credited improvement) at any point.
* (c) stall: the same improvement stops at trial 32; share detected as stagnant within two
  windows (``<= 2 * window`` trials after the stall) and the mean delay in trials
  [>= 90 %]. Regression: one stationary arm whose values drop by 3 sigma at trial 32; share
  detected as drift within two windows and the mean delay [>= 90 %].
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from feedback import History, SignalThresholds, drift, stagnation
from feedback import signals as sig

TRIALS = 64
CHANGE_AT = 32
#: Gains of the improving campaigns' true quality, in sigma per window: the example rate
#: of the issue (2), and a faster one (4).
IMPROVEMENT_PER_WINDOW = (2.0, 4.0)
REGRESSION_DROP = 3.0  # sigma
ALPHAS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class Setting:
    """One row: a goal's thresholds at one measured noise level."""

    name: str
    goal: str
    mode: str
    level: float  # the metric's value at quality 0
    sigma: float
    window: int
    min_delta: float
    patience: int
    budget: int  # the goal's trials
    noise_given: bool
    improvement_k: float = SignalThresholds().improvement_k
    trend_k: float = SignalThresholds().trend_k

    def thresholds(self) -> SignalThresholds:
        """The goal's thresholds (with ``noise`` when the goal gives it)."""
        return SignalThresholds(
            window=self.window,
            min_delta=self.min_delta,
            patience=self.patience,
            noise=self.sigma if self.noise_given else None,
            improvement_k=self.improvement_k,
            trend_k=self.trend_k,
        )


GOALS = (
    ("ECG F1 sd 0.021", "mitbih:aami3_baseline", "max", 0.80, 0.021, 8, 0.005, 2, 64),
    ("ECG F1 sd 0.035", "mitbih:aami3_quick", "max", 0.80, 0.035, 6, 0.01, 1, 30),
    ("PPG MAE sd 0.8", "galaxyppg:hr_optimize", "min", 6.0, 0.8, 6, 0.1, 2, 48),
    ("PPG MAE sd 2.4", "galaxyppg:hr_quick", "min", 8.0, 2.4, 6, 0.25, 1, 32),
)


def settings(improvement_k: float | None = None, trend_k: float | None = None) -> list[Setting]:
    """Every goal with its noise estimated, then given."""
    defaults = SignalThresholds()
    k = defaults.improvement_k if improvement_k is None else improvement_k
    tk = defaults.trend_k if trend_k is None else trend_k
    return [
        Setting(*goal, noise_given=given, improvement_k=k, trend_k=tk)
        for given in (False, True)
        for goal in GOALS
    ]


# --- simulated campaigns ------------------------------------------------------------------


def history(quality: np.ndarray, arms: Sequence[str] | np.ndarray, setting: Setting) -> History:
    """A History of completed runs: metric = level + sigma * quality (sign by mode)."""
    n = len(quality)
    sign = 1.0 if setting.mode == "max" else -1.0
    return History(
        mode=setting.mode,
        values=setting.level + sign * setting.sigma * quality,
        statuses=np.full(n, "completed", dtype=object),
        params=[f'{{"trial":{i}}}' for i in range(n)],  # every trial a distinct config
        durations=np.full(n, 60.0),
        tokens=np.zeros(n, dtype=np.int64),
        arms=np.asarray(arms, dtype=object),
    )


def prefix(h: History, n: int) -> History:
    """The first ``n`` runs of ``h`` (what the searcher has seen after trial ``n``)."""
    assert h.arms is not None
    return History(
        h.mode, h.values[:n], h.statuses[:n], h.params[:n], h.durations[:n], h.tokens[:n],
        h.arms[:n],
    )  # fmt: skip


def three_arms(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(arm names, quality offsets): a 2-sigma-weaker arm from 20, a 1-sigma-weaker from 40."""
    arms = np.full(TRIALS, "base", dtype=object)
    arms[20:] = rng.choice(["base", "arm2"], TRIALS - 20)
    arms[40:] = rng.choice(["base", "arm2", "arm3"], TRIALS - 40)
    offset = np.select([arms == "arm2", arms == "arm3"], [-2.0, -1.0], 0.0)
    return arms, offset


def improving(window: int, gain: float, stall_at: int | None = None) -> np.ndarray:
    """True quality (sigma units) rising by ``gain`` sigma per window (flat from ``stall_at``)."""
    t = np.arange(TRIALS, dtype=float)
    if stall_at is not None:
        t = np.minimum(t, stall_at)
    return gain / window * t


def looks(
    h: History, th: SignalThresholds, signal: Callable[[History, SignalThresholds], bool]
) -> list[int]:
    """Trial counts ``n`` (1..64) after which ``signal`` held."""
    return [n for n in range(1, len(h.values) + 1) if signal(prefix(h, n), th)]


def is_drifting(h: History, th: SignalThresholds) -> bool:
    return drift(h, th).drifting


def is_stagnant(h: History, th: SignalThresholds) -> bool:
    return stagnation(h, th).stagnant


def wants_model_change(h: History, th: SignalThresholds) -> bool:
    st = stagnation(h, th)
    return st.stagnant and st.runs_without_improvement >= th.patience * th.window


def first_after(hits: list[int], change_at: int) -> float:
    """Trials after the change (run index ``change_at``) until the first hit, inf if none."""
    after = [n - change_at for n in hits if n > change_at]
    return float(after[0]) if after else math.inf


def simulate(setting: Setting, campaigns: int, seed: int) -> dict[str, Any]:
    """All measurements of one setting (one table row)."""
    rng = np.random.default_rng(seed)
    th = setting.thresholds()
    w = setting.window
    single = ["base"] * TRIALS
    keys = ("fa1", "fa3", "stag", "stag_budget", "stag_fast", "model", "stall", "regr")
    counts = dict.fromkeys(keys, 0)
    slow, fast = IMPROVEMENT_PER_WINDOW
    stall_delays, regr_delays = [], []
    for _ in range(campaigns):
        eps = rng.normal(0.0, 1.0, (6, TRIALS))
        # (a) stationary, one arm and three arms
        counts["fa1"] += bool(looks(history(eps[0], single, setting), th, is_drifting))
        arms, offset = three_arms(rng)
        counts["fa3"] += bool(looks(history(offset + eps[1], arms, setting), th, is_drifting))
        # (b) improving at a steady rate
        h = history(improving(w, slow) + eps[2], single, setting)
        hits = looks(h, th, is_stagnant)
        counts["stag"] += bool(hits)
        counts["stag_budget"] += any(n <= setting.budget for n in hits)
        counts["model"] += bool(hits) and bool(looks(h, th, wants_model_change))
        h = history(improving(w, fast) + eps[5], single, setting)
        counts["stag_fast"] += bool(looks(h, th, is_stagnant))
        # (c) stall at CHANGE_AT; regression within one arm at CHANGE_AT
        h = history(improving(w, slow, CHANGE_AT) + eps[3], single, setting)
        stall = looks(h, th, is_stagnant)
        delay = first_after(stall, CHANGE_AT)
        counts["stall"] += delay <= 2 * w
        stall_delays.append(delay)
        q = eps[4].copy()
        q[CHANGE_AT:] -= REGRESSION_DROP
        delay = first_after(looks(history(q, single, setting), th, is_drifting), CHANGE_AT)
        counts["regr"] += delay <= 2 * w
        regr_delays.append(delay)
    rates = {k: v / campaigns for k, v in counts.items()}
    upper = {
        k: float(stats.binomtest(v, campaigns).proportion_ci(0.95, "wilson").high)
        for k, v in counts.items()
    }
    return {
        "setting": asdict(setting),
        "bar": sig.improvement_bar(setting.sigma, th),
        "drift_threshold": sig.drift_threshold(th.alpha),
        "campaigns": campaigns,
        "rates": rates,
        "ci95_high": upper,
        "stall_mean_delay": _finite_mean(stall_delays),
        "regression_mean_delay": _finite_mean(regr_delays),
    }


def _finite_mean(delays: list[float]) -> float | None:
    finite = [d for d in delays if math.isfinite(d)]
    return float(np.mean(finite)) if finite else None


# --- drift threshold calibration ----------------------------------------------------------


def max_statistics(campaigns: int, seed: int, multi_arm: bool) -> np.ndarray:
    """Largest drift statistic over the 64 looks of each stationary campaign."""
    rng = np.random.default_rng(seed)
    setting = Setting("calibration", "-", "max", 0.0, 1.0, 8, 0.0, 2, 64, noise_given=False)
    th = setting.thresholds()
    out = np.zeros(campaigns)
    for c in range(campaigns):
        if multi_arm:
            arms, offset = three_arms(rng)
        else:
            arms, offset = np.full(TRIALS, "base", dtype=object), np.zeros(TRIALS)
        h = history(offset + rng.normal(0.0, 1.0, TRIALS), arms, setting)
        values = [drift(prefix(h, n), th).statistic for n in range(1, TRIALS + 1)]
        out[c] = max((v for v in values if v is not None), default=0.0)
    return out


def calibrate(campaigns: int, seed: int, workers: int) -> dict[str, Any]:
    """The (1 - alpha)-quantiles of the campaign's largest drift statistic, one and 3 arms."""
    jobs = max(1, workers) * 4
    sizes = [campaigns // jobs + (i < campaigns % jobs) for i in range(jobs)]
    result: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for multi in (False, True):
            parts = pool.map(
                max_statistics,
                sizes,
                [seed + 1000 * i + multi for i in range(jobs)],
                [multi] * jobs,
            )
            m = np.concatenate(list(parts))
            result["three arms" if multi else "one arm"] = {
                str(a): round(float(np.quantile(m, 1 - a)), 3) for a in ALPHAS
            }
    return result


# --- output -------------------------------------------------------------------------------


def _pct(rate: float, high: float | None = None) -> str:
    text = f"{100 * rate:.1f} %"
    return text if high is None else f"{text} (<= {100 * high:.1f})"


def _delay(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of :func:`simulate` results."""
    head = (
        "| setting | goal (window, min_delta, patience) | noise | bar | (a) drift FA 1 arm "
        "[<=5 %] | (a) drift FA 3 arms [<=5 %] | (b) stagnant, 2 sd/window [<=5 %] "
        "| (b) stagnant within the goal's budget, 2 sd/window "
        "| (b) stagnant, 4 sd/window [<=5 %] | (b) change_model, 2 sd/window "
        "| (c) stall found <=2w [>=90 %] (delay) "
        "| (c) regression found <=2w [>=90 %] (delay) |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        s, rate, high = r["setting"], r["rates"], r["ci95_high"]
        lines.append(
            f"| {s['name']} | {s['goal']} ({s['window']}, {s['min_delta']:g}, "
            f"{s['patience']}) | {'given' if s['noise_given'] else 'estimated'} | "
            f"{r['bar']:.3g} | {_pct(rate['fa1'], high['fa1'])} | "
            f"{_pct(rate['fa3'], high['fa3'])} | {_pct(rate['stag'], high['stag'])} | "
            f"{_pct(rate['stag_budget'])} ({s['budget']} trials) | "
            f"{_pct(rate['stag_fast'], high['stag_fast'])} | "
            f"{_pct(rate['model'])} | {_pct(rate['stall'])} ({_delay(r['stall_mean_delay'])}) "
            f"| {_pct(rate['regr'])} ({_delay(r['regression_mean_delay'])}) |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, simulate (or calibrate), print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=1000, help="campaigns per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument(
        "--improvement-k", type=float, help="improvement_k to simulate (default: the default)"
    )
    parser.add_argument("--trend-k", type=float, help="trend_k to simulate (default: the default)")
    parser.add_argument(
        "--calibrate", action="store_true", help="recompute DRIFT_THRESHOLDS instead"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.calibrate:
        result: Any = calibrate(args.campaigns, args.seed, args.workers)
        print(json.dumps(result, indent=2))
    else:
        rows = settings(args.improvement_k, args.trend_k)
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            result = list(
                pool.map(
                    simulate,
                    rows,
                    [args.campaigns] * len(rows),
                    [args.seed * 100 + i for i in range(len(rows))],
                )
            )
        print(
            f"{args.campaigns} campaigns of {TRIALS} trials per scenario; improving: "
            f"{' and '.join(f'{g:g}' for g in IMPROVEMENT_PER_WINDOW)} sigma per window; stall "
            f"(after a gain of {IMPROVEMENT_PER_WINDOW[0]:g} sigma per window) and "
            f"{REGRESSION_DROP:g}-sigma regression at trial {CHANGE_AT}; alpha "
            f"{SignalThresholds().alpha:g}, improvement_k {rows[0].improvement_k:g}, trend_k "
            f"{rows[0].trend_k:g}; "
            "(<= x): upper end of the 95 % interval\n"
        )
        print(table(result))
    print(f"\n{time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
