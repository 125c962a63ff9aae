"""Benchmark: does the validation metric a campaign optimises predict the held-out test metric?

    python bench/val_test_agreement.py --quick                         # 30 configs, quick set
    python bench/val_test_agreement.py --quick --val-fraction 0.4 --val-min-beats 40
    python bench/val_test_agreement.py --quick --cv-folds 3           # patient-grouped CV
    python bench/val_test_agreement.py --quick --override dataset.rr_features=false
    python bench/val_test_agreement.py --full --n-configs 30 --out full.json
    python bench/val_test_agreement.py --quick --ppg --no-ecg          # heart rate, MAE

Draws `--n-configs` configurations (seeded) from the quick goal's search space
(`campaigns/mitbih.yaml`, goal aami3_quick), spread round-robin over the goal's three built-in
models; a model gets only the space keys its config has (`encoder_classifier` has no `width`,
so its size key is `model.d_model` instead). Each configuration is trained once, in process,
through the real trainer (`biosignals.train.compose_config` + `biosignals.trainer.train`), on
a dataset loaded once through the dataset cache. Printed figures, with their targets:

* Spearman correlation between validation macro-F1 (what the searcher sees: the best epoch's
  value) and test macro-F1 (the inter-patient DS2 records, from summary.json's "test"):
  target >= 0.7;
* the test macro-F1 of the best-by-validation configuration against the best test macro-F1 of
  them all: target within 0.02;
* the validation seed noise: the standard deviation of the validation metric over
  `--noise-seeds` seeds (>= 5) of two fixed configs, the untuned baseline (the experiment's
  cnn1d) and the best-by-validation configuration, beside the improvement the draw found over
  the baseline, so an improvement can be told from noise;
* with `--ppg`, the same for heart-rate regression on `galaxyppg_hr_quick` (goal
  galaxyppg:hr_quick) with MAE in bpm (lower is better).

The validation design is chosen with `--val-fraction`, `--val-records`, `--val-seed`,
`--val-min-beats`, `--cv-folds` (k patient-grouped folds of DS1, each config trained k times,
its value the mean over folds, its test value the mean test score of the k models) and any
`--override KEY=VALUE`, so that designs are compared by one tool with the same draws. A
benchmark, not a test: numbers depend on the machine only through time; the metrics are
seeded (CPU training is deterministic for a given thread count).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import OmegaConf
from scipy import stats

from biosignals.data.cache import dataset_cache_key, load_dataset
from biosignals.data.mitbih import select_cv_folds
from biosignals.train import compose_config
from biosignals.trainer import train

if TYPE_CHECKING:
    from biosignals.data.dataset import SignalDataset
    from search.goals import CampaignGoal, SearchDomain

ECG_GOAL = "mitbih:aami3_quick"
PPG_GOAL = "galaxyppg:hr_quick"
FULL_EXPERIMENT = "mitbih_aami3"
FULL_EPOCHS = 8  # the README's full-set rows: 8 epochs, early-stopped after 4 without gain
TARGET_SPEARMAN = 0.7
TARGET_GAP = 0.02

# Size keys of models whose config lacks the goal's `model.width`: (key, choices).
MODEL_SIZE_KEYS: dict[str, tuple[str, list[int]]] = {
    "encoder_classifier": ("model.d_model", [16, 32, 48, 64]),  # nhead 4 divides each
}


@dataclass(frozen=True)
class Task:
    """What one agreement check trains and reads.

    Attributes:
        name: "ecg" or "ppg".
        goal: campaign goal spec whose space and models are drawn from.
        experiment: Hydra experiment the trainings compose.
        val_key: summary value read as validation (the best epoch's `trainer.metric`).
        test_key: key of summary.json's "test" dict.
        mode: "max" (higher is better) or "min".
    """

    name: str
    goal: str
    experiment: str
    val_key: str
    test_key: str
    mode: str


@dataclass(frozen=True)
class Candidate:
    """One configuration: a model and its override values.

    Attributes:
        name: "c00", "c01", ... or "baseline".
        model: configs/model name.
        params: override path -> value (beyond the model choice).
    """

    name: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> list[str]:
        """Hydra overrides selecting the model and setting the params."""
        return [f"model={self.model}", *(f"{k}={_format(v)}" for k, v in self.params.items())]


@dataclass
class RunResult:
    """Outcome of one training (or the mean over the folds of a cross-validated one).

    Attributes:
        candidate: the candidate's name.
        model: its model.
        seed: the training seed.
        val: validation value of the best epoch (NaN when the run failed).
        test: test value of the best epoch's weights (NaN when the run failed).
        duration_s: wall time of the training(s).
        num_params: trainable parameters.
        status: trainer status ("completed", ...), or "failed: <error>".
        folds: per-fold (val, test) when cross-validated.
    """

    candidate: str
    model: str
    seed: int
    val: float
    test: float
    duration_s: float
    num_params: int
    status: str
    folds: list[tuple[float, float]] = field(default_factory=list)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_format(v) for v in value) + "]"
    return str(value)


# ----------------------------------------------------------------------------- the draw


def _sample(domain: SearchDomain, rng: np.random.Generator) -> Any:
    """One seeded value of a campaign domain (integer kinds include both ends, as in YAML)."""
    kind, low, high, q = domain.kind, domain.low, domain.high, domain.q
    if kind == "choice":
        values = list(domain.values or [])
        return values[int(rng.integers(len(values)))]
    if low is None or high is None:
        raise ValueError(f"a {kind} domain needs low and high, got {domain!r}")
    if kind in ("randint", "qrandint", "lograndint", "qlograndint"):
        step = int(q or 1)
        if kind.endswith("lograndint"):
            value = round(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            value = int(rng.integers(int(low), int(high) + 1))
        return int(min(high, max(low, round(value / step) * step)))
    if kind in ("loguniform", "qloguniform"):
        x = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        x = float(rng.uniform(low, high))
    if q:
        x = round(round(x / q) * q, 10)
    return float(x)


def model_keys(model: str) -> set[str]:
    """Override paths (`model.<key>`) that `configs/model/<model>.yaml` defines."""
    cfg = compose_config([f"model={model}", "~dataset"])
    return {f"model.{k}" for k in cfg.model if k != "_target_"}


def draw_candidates(goal: CampaignGoal, n: int, seed: int) -> list[Candidate]:
    """`n` seeded configurations from the goal's space, round-robin over its models.

    A model keeps the space's keys its config has; a `model.*` key it lacks is replaced by its
    entry in `MODEL_SIZE_KEYS`, if any. Keys outside `model.*` apply to every model.
    """
    models = list(goal.models) or ["cnn1d"]
    keys = {m: model_keys(m) for m in models}
    rng = np.random.default_rng(seed)
    out: list[Candidate] = []
    for i in range(n):
        model = models[i % len(models)]
        params: dict[str, Any] = {}
        for key, domain in goal.space.items():
            if not key.startswith("model.") or key in keys[model]:
                params[key] = _sample(domain, rng)
            elif model in MODEL_SIZE_KEYS and key == "model.width":
                size_key, choices = MODEL_SIZE_KEYS[model]
                params[size_key] = choices[int(rng.integers(len(choices)))]
        out.append(Candidate(f"c{i:02d}", model, params))
    return out


# ----------------------------------------------------------------------------- training


class Trainer:
    """Trains candidates in process on datasets loaded once per dataset config.

    Args:
        base: overrides of every training (experiment, epochs, validation design, ...).
        work_dir: parent of the throwaway run directories.
        task: what to read from each summary.
    """

    def __init__(self, base: Sequence[str], work_dir: Path, task: Task) -> None:
        self.base = list(base)
        self.work_dir = work_dir
        self.task = task
        self._datasets: dict[str, SignalDataset] = {}
        self._runs = 0

    def dataset(self, extra: Sequence[str] = ()) -> SignalDataset:
        """The dataset of the base overrides plus `extra`, loaded through the cache once."""
        cfg = compose_config([*self.base, *extra])
        key = dataset_cache_key(cfg.dataset)
        if key not in self._datasets:
            cache_dir = OmegaConf.select(cfg, "paths.cache_dir", default=None)
            self._datasets[key] = load_dataset(cfg.dataset, cache_dir)
        return self._datasets[key]

    def run_once(self, candidate: Candidate, seed: int, extra: Sequence[str] = ()) -> RunResult:
        """Train `candidate` with `seed`; a failure is recorded, not raised."""
        self._runs += 1
        run_dir = self.work_dir / f"run{self._runs:04d}"
        overrides = [
            *self.base,
            *candidate.overrides(),
            *extra,
            f"seed={seed}",
            f"run_dir={run_dir}",
            "trainer.save_model=false",
        ]
        t0 = time.perf_counter()
        try:
            cfg = compose_config(overrides)
            summary = train(cfg, dataset=self.dataset(extra))
        except Exception as e:  # a diverging or broken config is a data point, not a crash
            return RunResult(
                candidate.name, candidate.model, seed, math.nan, math.nan,
                time.perf_counter() - t0, 0, f"failed: {type(e).__name__}: {e}",
            )  # fmt: skip
        val = summary.best_value if summary.best_value is not None else math.nan
        test = summary.test.get(self.task.test_key, math.nan)
        return RunResult(
            candidate.name, candidate.model, seed, float(val), float(test),
            time.perf_counter() - t0, summary.num_params, summary.status,
        )  # fmt: skip

    def run(
        self, candidate: Candidate, seed: int, folds: Sequence[Sequence[str]] | None = None
    ) -> RunResult:
        """Train once, or once per fold (validation = the fold's records) and average."""
        if not folds:
            result = self.run_once(candidate, seed)
        else:
            parts = [
                self.run_once(candidate, seed, [f"dataset.val_records=[{','.join(fold)}]"])
                for fold in folds
            ]
            result = RunResult(
                candidate.name, candidate.model, seed,
                float(np.mean([p.val for p in parts])), float(np.mean([p.test for p in parts])),
                sum(p.duration_s for p in parts), parts[0].num_params,
                next((p.status for p in parts if p.status != "completed"), "completed"),
                [(p.val, p.test) for p in parts],
            )  # fmt: skip
        print(
            f"  {result.candidate:8s} {result.model:18s} seed {seed}  val {result.val:.4f}  "
            f"test {result.test:.4f}  {result.duration_s:5.1f}s  {result.status}",
            file=sys.stderr,
            flush=True,
        )
        return result


def cv_folds(trainer: Trainer, k: int, seed: int, min_beats: int) -> list[list[str]]:
    """k patient-grouped folds over the records of the base dataset's train and val splits."""
    dataset = trainer.dataset()
    counts: dict[str, Any] = {}
    for split in (dataset.train, dataset.val):
        for record in np.unique(split.groups):
            y = split.y[split.groups == record]
            counts[str(record)] = np.bincount(y, minlength=dataset.num_outputs)
    return select_cv_folds(counts, k, seed=seed, min_beats=min_beats)


# ----------------------------------------------------------------------------- figures


def agreement(results: Sequence[RunResult], mode: str) -> dict[str, Any]:
    """Spearman(val, test) and the best-by-validation run's test value against the best test."""
    ok = [r for r in results if math.isfinite(r.val) and math.isfinite(r.test)]
    if len(ok) < 3:
        return {"n": len(ok), "spearman": None}
    val = np.array([r.val for r in ok])
    test = np.array([r.test for r in ok])
    sign = 1.0 if mode == "max" else -1.0
    rho = stats.spearmanr(val, test)
    by_val = int(np.argmax(sign * val))
    best = int(np.argmax(sign * test))
    test_rank = 1 + int(np.sum(sign * test > sign * test[by_val]))
    return {
        "n": len(ok),
        "spearman": round(float(rho.statistic), 3),
        "spearman_p": float(rho.pvalue),
        "kendall": round(float(stats.kendalltau(val, test).statistic), 3),
        "best_by_val": {"candidate": ok[by_val].candidate, "model": ok[by_val].model,
                        "val": round(float(val[by_val]), 4), "test": round(float(test[by_val]), 4),
                        "test_rank": test_rank},
        "best_test": {"candidate": ok[best].candidate, "model": ok[best].model,
                      "val": round(float(val[best]), 4), "test": round(float(test[best]), 4)},
        "gap": round(float(sign * (test[best] - test[by_val])), 4),
        "val_range": [round(float(val.min()), 4), round(float(val.max()), 4)],
        "test_range": [round(float(test.min()), 4), round(float(test.max()), 4)],
    }  # fmt: skip


def _mean_run(runs: Sequence[RunResult]) -> RunResult:
    """One result holding the mean val and test of `runs` (same candidate, several seeds)."""
    r = runs[0]
    val = float(np.mean([x.val for x in runs]))
    test = float(np.mean([x.test for x in runs]))
    duration = sum(x.duration_s for x in runs)
    return RunResult(r.candidate, r.model, -1, val, test, duration, r.num_params, r.status)


def retest(
    first: Sequence[RunResult], again: Sequence[Sequence[RunResult]], mode: str
) -> dict[str, Any]:
    """How reproducible each metric's ranking is when every config is retrained with new seeds.

    Spearman(test at seed 0, test at seed 1) is the ceiling of what any validation design can
    reach with single-seed runs: validation cannot predict the part of the test score that a
    second seed of the same config does not reproduce. Also the agreement of the seed-averaged
    values (what a campaign that repeats seeds would see).
    """
    seed1 = again[0]

    def rho(a: Sequence[float], b: Sequence[float]) -> float | None:
        pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x + y)]
        if len(pairs) < 3:
            return None
        return round(float(stats.spearmanr(*zip(*pairs, strict=True)).statistic), 3)

    mean = [_mean_run([r, *(a[i] for a in again)]) for i, r in enumerate(first)]
    return {
        "seeds": 1 + len(again),
        "spearman_test_seed0_vs_seed1": rho([r.test for r in first], [r.test for r in seed1]),
        "spearman_val_seed0_vs_seed1": rho([r.val for r in first], [r.val for r in seed1]),
        "spearman_val_seed0_vs_test_seed1": rho([r.val for r in first], [r.test for r in seed1]),
        "agreement_of_seed_means": agreement(mean, mode),
    }


def noise(
    trainer: Trainer,
    candidate: Candidate,
    seeds: int,
    first: RunResult | None,
    folds: Sequence[Sequence[str]] | None,
) -> dict[str, Any]:
    """Validation and test spread of `candidate` over `seeds` training seeds (0, 1, ...)."""
    runs = [first] if first is not None and first.seed == 0 else []
    runs += [trainer.run(candidate, s, folds) for s in range(len(runs), seeds)]
    vals = [r.val for r in runs if math.isfinite(r.val)]
    tests = [r.test for r in runs if math.isfinite(r.test)]

    def spread(xs: list[float]) -> dict[str, float | None]:
        return {
            "mean": round(statistics.fmean(xs), 4) if xs else None,
            "std": round(statistics.stdev(xs), 4) if len(xs) > 1 else None,
            "min": round(min(xs), 4) if xs else None,
            "max": round(max(xs), 4) if xs else None,
        }

    return {
        "candidate": candidate.name,
        "model": candidate.model,
        "params": candidate.params,
        "seeds": len(runs),
        "val": spread(vals),
        "test": spread(tests),
        "runs": [asdict(r) for r in runs],
    }


def check_task(
    task: Task,
    base: list[str],
    args: argparse.Namespace,
    work_dir: Path,
) -> dict[str, Any]:
    """Draw, train and score one task under one validation design."""
    from search.goals import load_goal

    goal = load_goal(task.goal)
    trainer = Trainer(base, work_dir / task.name, task)
    dataset = trainer.dataset()
    folds = (
        cv_folds(trainer, args.cv_folds, args.val_seed, args.val_min_beats)
        if args.cv_folds and task.name == "ecg"
        else None
    )
    candidates = draw_candidates(goal, args.n_configs, args.seed)
    baseline = Candidate("baseline", "cnn1d")
    print(f"{task.name}: {len(candidates)} configs, base overrides {base}", file=sys.stderr)
    t0 = time.perf_counter()
    results = [trainer.run(c, 0, folds) for c in candidates]
    draw_s = time.perf_counter() - t0
    report: dict[str, Any] = {
        "goal": task.goal,
        "overrides": base,
        "dataset": {
            "name": dataset.name,
            "windows": {s: len(dataset.split(s)) for s in ("train", "val", "test")},
            "records": dataset.meta.get("records"),
            "class_counts": dataset.meta.get("class_counts"),
            "cv_folds": folds,
        },
        "agreement": agreement(results, task.mode),
        "seconds_per_config": round(draw_s / max(len(candidates), 1), 2),
        "seconds_per_training": round(draw_s / max(len(candidates) * len(folds or [0]), 1), 2),
    }
    if args.noise_seeds > 0:
        sign = 1.0 if task.mode == "max" else -1.0
        finite = [r for r in results if math.isfinite(r.val)]
        best = max(finite, key=lambda r: sign * r.val) if finite else None
        report["noise"] = {"baseline": noise(trainer, baseline, args.noise_seeds, None, folds)}
        if best is not None:
            cand = next(c for c in candidates if c.name == best.candidate)
            report["noise"]["best"] = noise(trainer, cand, args.noise_seeds, best, folds)
            base_mean = report["noise"]["baseline"]["val"]["mean"]
            best_mean = report["noise"]["best"]["val"]["mean"]
            if base_mean is not None and best_mean is not None:
                report["noise"]["improvement_val"] = round(sign * (best_mean - base_mean), 4)
            tb, tt = report["noise"]["baseline"]["test"]["mean"], report["noise"]["best"]["test"]
            if tb is not None and tt["mean"] is not None:
                report["noise"]["improvement_test"] = round(sign * (tt["mean"] - tb), 4)
    pairs = zip(results, candidates, strict=True)
    if args.retest_seeds > 0:
        again = [
            [trainer.run(c, s, folds) for c in candidates] for s in range(1, 1 + args.retest_seeds)
        ]
        report["retest"] = retest(results, again, task.mode)
        report["retest"]["runs"] = [asdict(r) for runs in again for r in runs]
    report["runs"] = [asdict(r) | {"params": c.params} for r, c in pairs]
    return report


def design_overrides(args: argparse.Namespace) -> list[str]:
    """The ECG validation-design overrides given on the command line."""
    out: list[str] = []
    if args.val_fraction is not None:
        out.append(f"dataset.val_fraction={args.val_fraction}")
    if args.val_records:
        out.append(f"dataset.val_records=[{args.val_records}]")
    if args.val_seed:
        out.append(f"dataset.val_seed={args.val_seed}")
    if args.val_min_beats is not None:
        out.append(f"++dataset.val_min_beats={args.val_min_beats}")
    return out + list(args.override)


def _headline(name: str, report: dict[str, Any], unit: str) -> str:
    a = report["agreement"]
    if a.get("spearman") is None:
        return f"{name}: too few finished runs ({a['n']})"
    lines = [
        f"{name}: Spearman(val, test) = {a['spearman']:+.3f} over {a['n']} configs "
        f"(target >= {TARGET_SPEARMAN}); best by val {a['best_by_val']['candidate']} "
        f"({a['best_by_val']['model']}) test {a['best_by_val']['test']:.4f} "
        f"(rank {a['best_by_val']['test_rank']}) vs best test {a['best_test']['test']:.4f}: "
        f"gap {a['gap']:.4f} {unit}{f' (target <= {TARGET_GAP})' if unit == 'F1' else ''}; "
        f"{report['seconds_per_training']:.1f} s per training"
    ]
    n = report.get("noise")
    if n:
        parts = [
            f"{k} val std {n[k]['val']['std']} (test std {n[k]['test']['std']}, {n[k]['seeds']} "
            f"seeds)"
            for k in ("baseline", "best")
            if k in n
        ]
        lines.append(f"  noise: {'; '.join(parts)}; improvement val {n.get('improvement_val')}, "
                     f"test {n.get('improvement_test')}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the figures and return the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the quick set (default)")
    size.add_argument("--full", action="store_true", help="the full synthetic set")
    parser.add_argument("--n-configs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="seed of the configuration draw")
    parser.add_argument("--noise-seeds", type=int, default=5, help="0 skips the seed noise")
    parser.add_argument(
        "--retest-seeds", type=int, default=0, help="retrain every config with N more seeds"
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: 3 quick, 8 full")
    parser.add_argument("--val-fraction", type=float, default=None)
    parser.add_argument("--val-records", default="", help="comma-separated DS1 records")
    parser.add_argument("--val-seed", type=int, default=0)
    parser.add_argument("--val-min-beats", type=int, default=None)
    parser.add_argument("--cv-folds", type=int, default=0, help="k patient-grouped folds")
    parser.add_argument("--override", action="append", default=[], help="to every ECG run")
    parser.add_argument("--ppg", action="store_true", help="also check galaxyppg_hr_quick")
    parser.add_argument("--ppg-override", action="append", default=[], help="to every PPG run")
    parser.add_argument("--no-ecg", action="store_true", help="skip the ECG check")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = parser.parse_args(argv)
    if args.n_configs < 3 or (args.noise_seeds and args.noise_seeds < 2):
        parser.error("--n-configs must be >= 3 and --noise-seeds 0 or >= 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("biosignals").setLevel(logging.WARNING)
    started = time.perf_counter()

    report: dict[str, Any] = {
        "mode": "full" if args.full else "quick",
        "argv": sys.argv[1:] if argv is None else list(argv),
        "torch_threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory(prefix="val_test_agreement-") as tmp:
        if not args.no_ecg:
            epochs = args.epochs or (FULL_EPOCHS if args.full else 3)
            experiment = FULL_EXPERIMENT if args.full else "mitbih_aami3_quick"
            base = [f"experiment={experiment}", f"trainer.epochs={epochs}"]
            if args.full:
                base.append("trainer.early_stopping_patience=4")
            ecg = Task("ecg", ECG_GOAL, experiment, "val/macro_f1", "test/macro_f1", "max")
            report["ecg"] = check_task(ecg, base + design_overrides(args), args, Path(tmp))
        if args.ppg:
            ppg = Task("ppg", PPG_GOAL, "galaxyppg_hr_quick", "val/mae", "test/mae", "min")
            base = ["experiment=galaxyppg_hr_quick", f"trainer.epochs={args.epochs or 3}"]
            report["ppg"] = check_task(ppg, base + list(args.ppg_override), args, Path(tmp))
    report["total_s"] = round(time.perf_counter() - started, 1)

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    brief = json.loads(json.dumps(report, default=float))  # a copy without the per-run rows
    for section in ("ecg", "ppg"):
        brief.get(section, {}).pop("runs", None)
        brief.get(section, {}).get("retest", {}).pop("runs", None)
        for who in ("baseline", "best"):
            brief.get(section, {}).get("noise", {}).get(who, {}).pop("runs", None)
    print(json.dumps(brief, indent=2, default=float))
    if "ecg" in report:
        print(_headline("ECG macro-F1", report["ecg"], "F1"))
    if "ppg" in report:
        print(_headline("PPG MAE (bpm)", report["ppg"], "bpm"))
    print(f"total {report['total_s']:.0f} s")
    return report


if __name__ == "__main__":
    main()
