"""Benchmark: the trainer's samples/s against a bare torch loop, and the dataset cache load time.

    python -m bench.train_throughput                        # dataset config mitbih_synth_quick
    python -m bench.train_throughput --dataset mitbih_synth_aami3 --model resnet1d --epochs 2
    python -m bench.train_throughput --synthetic 20000      # random windows, no dataset config

Both loops train the same model (same seed, init and data) with AdamW for the same epochs and
batch size. The bare loop is the minimum: randperm batches, forward, cross-entropy/MSE,
backward, step. The trainer adds a learning-rate schedule, gradient clipping and loss
accounting per step, a validation pass and metrics per epoch, and a test pass and artifacts at
the end. Three ratios (target >= 0.9): the trainer's training phases against the bare loop;
its whole epochs against a bare loop that also runs the validation forward pass; and the whole
run after setup (final test pass included) against the bare loop. A benchmark, not a test:
numbers vary with the machine and its load, so each loop runs `--repeats` times and the best
is kept.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from biosignals.data.dataset import SignalDataset, Split
from biosignals.train import compose_config
from biosignals.trainer import train


def synthetic_dataset(n: int, length: int = 256, seed: int = 0) -> SignalDataset:
    """Random 3-class windows (N, 1, length): throughput only, nothing to learn."""
    rng = np.random.default_rng(seed)

    def split(m: int) -> Split:
        x = rng.normal(size=(m, 1, length)).astype(np.float32)
        return Split(x, rng.integers(0, 3, m).astype(np.int64), np.full(m, "p"))

    return SignalDataset(
        name=f"synthetic/{n}",
        task="classification",
        train=split(n),
        val=split(max(2, n // 5)),
        test=split(max(2, n // 5)),
        class_names=["a", "b", "c"],
    )


def load_cached(cfg: DictConfig) -> tuple[SignalDataset, float, float]:
    """Load cfg.dataset twice through the cache: (dataset, first load s, cached load s)."""
    from biosignals.data.cache import load_dataset

    cache_dir = OmegaConf.select(cfg, "paths.cache_dir")
    t0 = time.perf_counter()
    load_dataset(cfg.dataset, cache_dir)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    dataset = load_dataset(cfg.dataset, cache_dir)
    cached = time.perf_counter() - t0
    return dataset, first, round(cached, 4)


def bare_loop(
    cfg: DictConfig, dataset: SignalDataset, epochs: int, *, with_val: bool
) -> tuple[float, float]:
    """Minimal training loop on in-memory tensors; returns (seconds, train samples/s)."""
    torch.manual_seed(int(cfg.seed))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = instantiate(
        cfg.model,
        in_channels=dataset.in_channels,
        input_length=dataset.input_length,
        num_classes=dataset.num_outputs,
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.trainer.lr)
    x = torch.from_numpy(dataset.train.x).to(device)  # (N, C, T)
    classify = dataset.task == "classification"
    y_np = dataset.train.y
    y = torch.from_numpy(y_np.astype(np.int64 if classify else np.float32)).to(device)
    if not classify:
        y = (y - y.mean()) / y.std()
    xv = torch.from_numpy(dataset.val.x).to(device)
    bs, n = int(cfg.trainer.batch_size), len(y)
    gen = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx]) if classify else F.mse_loss(out[:, 0], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if with_val:
            model.eval()
            with torch.inference_mode():
                ebs = int(cfg.trainer.eval_batch_size)
                torch.cat([model(xv[i : i + ebs]) for i in range(0, len(xv), ebs)]).argmax(1).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return seconds, epochs * n / seconds


def trainer_run(cfg: DictConfig, dataset: SignalDataset, epochs: int) -> dict[str, float]:
    """`train` on the same data; train samples/s over three spans of the run.

    Returns:
        "loop": the training phases only (metrics.jsonl "train_time"), comparable with the
        bare loop; "epochs": whole epochs (training + validation + metrics, "epoch_time"),
        comparable with the bare loop that also validates; "end_to_end": from the first
        epoch to the return of `train` (adds the final test pass and the artifacts).
    """
    with tempfile.TemporaryDirectory() as tmp:
        with open_dict(cfg):
            cfg.run_dir = tmp
        t0 = time.perf_counter()
        summary = train(cfg, dataset=dataset)
        total = time.perf_counter() - t0
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    if summary.status != "completed" or len(rows) != epochs:
        raise RuntimeError(f"trainer run ended {summary.status} after {len(rows)} epochs")
    samples = epochs * len(dataset.train)
    setup = rows[0]["time"] - rows[0]["epoch_time"]  # before epoch 1: tensors, model, optimizer
    return {
        "loop": samples / sum(r["train_time"] for r in rows),
        "epochs": samples / sum(r["epoch_time"] for r in rows),
        "end_to_end": samples / (total - setup),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a JSON report and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mitbih_synth_quick", help="configs/dataset name")
    parser.add_argument("--synthetic", type=int, default=0, help="use N random windows instead")
    parser.add_argument("--model", default="cnn1d", help="configs/model name")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    overrides = [
        f"model={args.model}",
        f"trainer.epochs={args.epochs}",
        f"trainer.batch_size={args.batch_size}",
        "trainer.early_stopping_patience=null",
        "trainer.save_model=false",
        *args.override,
    ]
    overrides.insert(0, "~dataset" if args.synthetic else f"dataset={args.dataset}")
    cfg = compose_config(overrides)

    report: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "model": args.model}
    if args.synthetic:
        dataset = synthetic_dataset(args.synthetic)
    else:
        dataset, first, cached = load_cached(cfg)
        report |= {"dataset_first_load_s": round(first, 3), "dataset_cached_load_s": cached}
    report |= {"dataset": dataset.name, "train_windows": len(dataset.train), "epochs": args.epochs}

    bare, bare_val, trained = [], [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits all three
        bare.append(bare_loop(cfg, dataset, args.epochs, with_val=False)[1])
        bare_val.append(bare_loop(cfg, dataset, args.epochs, with_val=True)[1])
        trained.append(trainer_run(cfg, dataset, args.epochs))
    best = {k: max(t[k] for t in trained) for k in trained[0]}
    report |= {
        "bare_samples_per_s": round(max(bare), 1),
        "bare_with_val_samples_per_s": round(max(bare_val), 1),
        "trainer_loop_samples_per_s": round(best["loop"], 1),
        "trainer_epochs_samples_per_s": round(best["epochs"], 1),
        "trainer_end_to_end_samples_per_s": round(best["end_to_end"], 1),
        "ratio_loop_vs_bare": round(best["loop"] / max(bare), 3),
        "ratio_epochs_vs_bare_with_val": round(best["epochs"] / max(bare_val), 3),
        "ratio_end_to_end_vs_bare": round(best["end_to_end"] / max(bare), 3),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
