"""Benchmark: what the safety layer costs per proposal, against the work it sits beside.

    python -m bench.safety_checks             # 5 repeats
    python -m bench.safety_checks --repeats 9
    python -m bench --only platform           # with the suite's other platform figures

Measured, each as a median over `--repeats`:

* the static model-code check of the offline tier-3 template, and of the benign model zoo
  (`tests/agent/model_zoo/`, 19 architectures);
* the sandboxed smoke test of the template, against its baseline in the same run: a bare
  child process that imports torch and runs the same forward/backward, unguarded (the part
  of the smoke test no safety layer could avoid);
* the campaign's proposal check (overrides parsed, config composed twice, targets resolved)
  of a tier-2 proposal, against one bare Hydra composition of the same config;
* `check_targets` over a composed trial config.

A benchmark, not a test: numbers vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agent import Proposal
from agent.models.examples import generated_model_source
from agent.safety.code_policy import validate_model_source
from agent.safety.proposals import ProposalCheck
from agent.safety.smoke import smoke_test
from biosignals.config_safety import check_targets
from biosignals.train import compose_config

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = generated_model_source(width=16, stages=3, kernel_size=7)
BARE_CHILD = """
import torch, types
m = types.ModuleType("m"); exec(compile(SOURCE, "<m>", "exec"), m.__dict__)
net = m.SEResNet1D(in_channels=3, input_length=216, num_classes=3)
out = net(torch.randn(2, 3, 216)); out.square().mean().backward()
with torch.no_grad():
    net.eval(); net(torch.randn(2, 3, 216))
"""


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _bare_child() -> None:
    code = f"SOURCE = {TEMPLATE!r}\n{BARE_CHILD}"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def measure(n: int = 5) -> dict[str, float]:
    """Every figure of the module docstring, each the median of `n` repeats."""
    zoo = [
        p.read_text(encoding="utf-8") for p in sorted((REPO / "tests/agent/model_zoo").glob("*.py"))
    ]
    results: dict[str, float] = {}
    results["static_template_ms"] = 1000 * _median_s(lambda: validate_model_source(TEMPLATE), n)
    results["static_zoo_ms_per_model"] = (
        1000 * _median_s(lambda: [validate_model_source(s) for s in zoo], n) / max(len(zoo), 1)
    )
    results["smoke_template_s"] = _median_s(lambda: smoke_test(TEMPLATE, in_channels=3), n)
    results["bare_child_s"] = _median_s(_bare_child, n)
    results["smoke_vs_bare"] = results["smoke_template_s"] / results["bare_child_s"]

    with tempfile.TemporaryDirectory() as tmp:
        configs = Path(tmp) / "configs"
        shutil.copytree(REPO / "configs", configs)
        check = ProposalCheck(
            config_dir=str(configs), experiment="mitbih_aami3_quick", generated_dir=tmp
        )
        proposal = Proposal(name="r", tier=2, overrides=["model=resnet1d", "model.width=32"])
        overrides = ["experiment=mitbih_aami3_quick", "model=resnet1d", "model.width=32"]
        results["proposal_check_ms"] = 1000 * _median_s(lambda: check(proposal), n)
        results["bare_compose_ms"] = 1000 * _median_s(lambda: compose_config(overrides, configs), n)
        results["check_vs_compose"] = results["proposal_check_ms"] / results["bare_compose_ms"]
        cfg = compose_config(overrides, configs)
        results["check_targets_ms"] = 1000 * _median_s(lambda: check_targets(cfg), n)
    return results


def main() -> None:
    """Measure with the command line's repeats and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = measure(args.repeats)
    print(json.dumps({k: round(v, 3) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
