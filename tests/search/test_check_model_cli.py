"""`agentune check-model FILE [--class NAME]` and `agentune train` with a generated model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.models.examples import generated_model_source
from search.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

GOOD = generated_model_source(width=4, stages=2, kernel_size=3)

TWO_MODELS = """\
import torch
from torch import nn


class First(nn.Module):
    def __init__(self, *, in_channels: int, input_length: int, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=-1))  # (B, K)


class Second(First):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.amax(dim=-1))  # (B, K)
"""

WRONG_SHAPE = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, *, in_channels: int, input_length: int, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes + 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=-1))  # (B, K + 2): breaks the contract
"""


def _file(tmp_path: Path, text: str, name: str = "net.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_accepted_model_exits_0_with_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, GOOD)
    assert main(["check-model", str(path), "--in-channels", "3"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"accepted: {path}: class SEResNet1D")
    # the template declares num_features: smoke-tested with the default 9 RR features
    assert "output (2, 3) for input (2, 3, 216) + features (2, 9)" in out


def test_num_features_flag_sizes_the_features_of_models_that_declare_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, GOOD)
    assert main(["check-model", str(path), "--num-features", "4"]) == EXIT_OK
    assert capsys.readouterr().out.rstrip().endswith("for input (2, 1, 216) + features (2, 4)")
    assert main(["check-model", str(path), "--num-features", "0"]) == EXIT_OK
    assert "+ features (2, 0)" in capsys.readouterr().out
    # a model without num_features gets forward(x) only, and the line names no features
    plain = _file(tmp_path, TWO_MODELS, "plain.py")
    assert main(["check-model", str(plain), "--num-features", "9"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.rstrip().endswith("for input (2, 1, 216)") and "+ features" not in out


def test_class_flag_picks_the_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, TWO_MODELS)
    assert main(["check-model", str(path)]) == EXIT_OK
    assert "class Second" in capsys.readouterr().out  # the last contract class by default
    assert main(["check-model", str(path), "--class", "First"]) == EXIT_OK
    assert "class First" in capsys.readouterr().out
    assert main(["check-model", str(path), "--class", "Third"]) == EXIT_FAILED
    assert "Third" in capsys.readouterr().err


def test_statically_rejected_model_lists_every_reason_and_never_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "imported"
    code = f"import os\nimport pathlib\npathlib.Path({str(marker)!r}).touch()\n" + GOOD
    path = _file(tmp_path, code, "evil_net.py")
    before = set(sys.modules)
    assert main(["check-model", str(path)]) == EXIT_FAILED
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"rejected: {path} (static check")
    reasons = [line for line in lines[1:] if line.startswith("  - ")]
    assert len(reasons) >= 3  # os, pathlib, the module-level call
    assert any("os" in r for r in reasons) and any("pathlib" in r for r in reasons)
    assert captured.out == ""
    assert not marker.exists()
    assert not {m for m in set(sys.modules) - before if "evil_net" in m}


def test_model_failing_the_smoke_test_is_rejected_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, WRONG_SHAPE)
    assert main(["check-model", str(path)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "smoke test" in err.splitlines()[0] and "(2, 5)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check-model", "{tmp}/missing.py"], "cannot read"),
        (["check-model", "{tmp}"], "folder"),
        (["check-model", "{file}", "--class", "not a name"], "--class"),
        (["check-model", "{file}", "--in-channels", "0"], "--in-channels"),
        (
            ["check-model", "{file}", "--num-features", "-1"],
            "--num-features must be an integer >= 0",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    path = _file(tmp_path, GOOD)
    args = [a.replace("{tmp}", str(tmp_path)).replace("{file}", str(path)) for a in argv]
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_installed_command_behaves_the_same(tmp_path: Path) -> None:
    good, bad = _file(tmp_path, GOOD, "good.py"), _file(tmp_path, "import socket\n", "bad.py")
    run = [sys.executable, "-m", "search", "check-model"]
    accepted = subprocess.run([*run, str(good)], capture_output=True, text=True, check=False)
    assert accepted.returncode == 0 and accepted.stdout.startswith("accepted:")
    rejected = subprocess.run([*run, str(bad)], capture_output=True, text=True, check=False)
    assert rejected.returncode == 1 and "socket" in rejected.stderr
    missing = subprocess.run([*run], capture_output=True, text=True, check=False)
    assert missing.returncode == 2


@pytest.mark.slow
def test_train_runs_a_registered_generated_model_under_the_guard(
    tmp_path: Path, writable_configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.safety import register_generated_model

    configs, _ = writable_configs
    register_generated_model("se_cli", GOOD, {"width": 4}, dims={"in_channels": 3})
    run_dir = tmp_path / "run"
    argv = ["experiment=mitbih_aami3_quick", "model=se_cli", "trainer.epochs=1"]
    assert main(["train", *argv, f"run_dir={run_dir}"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "status: completed" in out and "model: se_cli" in out
    assert (run_dir / "model.pt").is_file() and (run_dir / "summary.json").is_file()
    # a generated module that is not registered is refused before anything trains
    (configs / "model" / "ghost.yaml").write_text(
        "_target_: generated_models.ghost.Net\n", encoding="utf-8"
    )
    assert main(["train", "experiment=mitbih_aami3_quick", "model=ghost"]) == EXIT_USAGE
    assert "not a registered generated model" in capsys.readouterr().err
