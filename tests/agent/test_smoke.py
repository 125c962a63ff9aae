"""The sandboxed smoke test (`agent.safety.smoke`): benign models pass, runtime attacks do not.

No static check runs here: attack sources go straight to `smoke_test`, and most run with kernel
isolation off, so the runtime guard, the restricted builtins and the rlimits must hold alone.
Every smoke test starts a Python with torch (about 1 s here, 2-4 s on slower machines).
"""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
from model_zoo_helpers import ZOO_MODEL_CLASSES, build_zoo_model, zoo_sources

from agent.models.examples import generated_model_source
from agent.safety.errors import UnsafeModelError
from agent.safety.smoke import SmokeLimits, SmokeResult, smoke_test

GUARD_ONLY = SmokeLimits(kernel_isolation=False, wall_seconds=60)


def template_model(**kwargs: int) -> torch.nn.Module:
    """The offline template, built in this process (trusted code) to count its parameters."""
    module = types.ModuleType("offline_template_for_test")
    exec(generated_model_source(16, 3, 7), module.__dict__)
    model: torch.nn.Module = module.SEResNet1D(**kwargs)
    return model


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_source(init: str = "pass", forward: str = "pass", header: str = "") -> str:
    """A small contract model with `init` run in __init__ and `forward` before the return."""
    return textwrap.dedent(
        """
        import torch
        from torch import nn
        {header}

        class Candidate(nn.Module):
            def __init__(self, *, in_channels: int, input_length: int, num_classes: int) -> None:
                super().__init__()
                self.head = nn.Linear(in_channels, num_classes)
        {init}

            def forward(self, x: torch.Tensor) -> torch.Tensor:
        {forward}
                return self.head(x.mean(dim=-1))  # (B, num_classes)
        """
    ).format(
        header=header,
        init=textwrap.indent(textwrap.dedent(init), " " * 8),
        forward=textwrap.indent(textwrap.dedent(forward), " " * 8),
    )


def joined(result: SmokeResult) -> str:
    return "\n".join(result.reasons)


# -- benign models ---------------------------------------------------------------------------


def test_offline_template_is_accepted() -> None:
    result = smoke_test(generated_model_source(16, 3, 7))
    assert result.accepted, result.reasons
    assert result.reasons == ()
    assert result.class_name == "SEResNet1D"
    assert result.output_shape == (2, 3)
    assert result.uses_features is True  # the template declares num_features: 9 by default
    expected = n_params(
        template_model(in_channels=1, input_length=216, num_classes=3, num_features=9)
    )
    assert result.num_params == expected
    assert result.isolation
    assert "generated_models.smoke_candidate" not in sys.modules  # never loaded here


def test_class_name_kwargs_and_dimensions_are_passed() -> None:
    source = generated_model_source(16, 3, 7) + textwrap.dedent(
        """

        class Helper(nn.Module):  # defined last, but takes no contract arguments
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x
        """
    )
    result = smoke_test(
        source,
        class_name="SEResNet1D",
        kwargs={"width": 8, "dropout": 0.0},
        in_channels=2,
        input_length=128,
        num_classes=5,
        limits=GUARD_ONLY,
    )
    assert result.accepted, result.reasons
    assert result.output_shape == (2, 5)
    model = template_model(in_channels=2, input_length=128, num_classes=5, num_features=9, width=8)
    assert result.num_params == n_params(model)
    assert smoke_test(source, limits=GUARD_ONLY).class_name == "SEResNet1D"  # Helper skipped


# A model that opts in to the side features and refuses to run without the right ones.
FEATURES_MODEL = """
import torch
from torch import nn


class WithFeatures(nn.Module):
    def __init__(
        self, *, in_channels: int, input_length: int, num_classes: int, num_features: int = 0
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.head = nn.Linear(in_channels + num_features, num_classes)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        if features is None:
            raise ValueError("no features given")
        if tuple(features.shape) != (x.shape[0], self.num_features):
            raise ValueError(f"features of shape {tuple(features.shape)}")
        if features.dtype != torch.float32:
            raise ValueError(f"features of dtype {features.dtype}")
        h = torch.cat([x.mean(dim=-1), features], dim=1)  # (B, C + F)
        return self.head(h)  # (B, num_classes)
"""

# A model without num_features whose forward takes no second argument at all.
NO_FEATURES_MODEL = """
import torch
from torch import nn


class Plain(nn.Module):
    def __init__(self, *, in_channels: int, input_length: int, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=-1))  # (B, num_classes)
"""


@pytest.mark.parametrize("num_features", [9, 4, 0])
def test_model_declaring_num_features_gets_features_of_shape_2_f(num_features: int) -> None:
    result = smoke_test(FEATURES_MODEL, num_features=num_features, limits=GUARD_ONLY)
    assert result.accepted, result.reasons
    assert result.uses_features is True and result.class_name == "WithFeatures"
    assert result.num_params == (1 + num_features) * 3 + 3  # built with num_features=F


def test_default_smoke_dims_give_the_ecg_rr_features() -> None:
    from agent.safety.policy import DEFAULT_SMOKE_DIMS

    assert DEFAULT_SMOKE_DIMS["num_features"] == 9
    result = smoke_test(FEATURES_MODEL, limits=GUARD_ONLY)
    assert result.accepted, result.reasons
    assert result.num_params == (1 + 9) * 3 + 3


def test_model_without_num_features_is_called_with_x_only() -> None:
    result = smoke_test(NO_FEATURES_MODEL, num_features=9, limits=GUARD_ONLY)
    assert result.accepted, result.reasons
    assert result.uses_features is False and result.num_params == 1 * 3 + 3


def test_forward_refusing_the_features_it_opted_in_to_is_rejected_with_a_hint() -> None:
    source = NO_FEATURES_MODEL.replace(
        "num_classes: int) -> None:", "num_classes: int, num_features: int = 0) -> None:"
    )
    result = smoke_test(source, limits=GUARD_ONLY)
    assert not result.accepted and result.uses_features is True
    assert "forward (train mode) raised TypeError" in joined(result)
    assert "forward(x, features)" in joined(result)


ZOO_PICKS = ["dataclass_config", "einops_attention", "fir_filterbank", "patch_transformer"]


@pytest.mark.slow
@pytest.mark.parametrize("stem", ZOO_PICKS, ids=ZOO_PICKS)
def test_zoo_models_are_accepted(stem: str) -> None:
    sources = zoo_sources()
    if stem not in sources:
        pytest.skip(f"the model zoo has no {stem}.py")
    result = smoke_test(sources[stem])
    assert result.accepted, result.reasons
    assert result.class_name == ZOO_MODEL_CLASSES[stem]
    assert result.output_shape == (2, 3)
    assert result.num_params == n_params(build_zoo_model(stem))


# -- attacks the runtime must stop ------------------------------------------------------------

# id -> (init, forward, header, text the reasons must contain); {target} is a path under
# tmp_path that the attack tries to create, {secret} a file it tries to read.
ATTACKS: dict[str, tuple[str, str, str, str]] = {
    "torch.save-in-init": (
        "torch.save(self.state_dict(), {target!r})",
        "pass",
        "",
        "open refused: ('{target}', 'w'",
    ),
    "np.save": ("numpy.save({target!r}, numpy.zeros(2))", "pass", "import numpy", "open refused"),
    "torch.os.system": ("torch.os.system('touch {target}')", "pass", "", "os.system refused"),
    "numpy.ctypeslib.ctypes": (
        "numpy.ctypeslib.ctypes.CDLL(None)",
        "pass",
        "import numpy",
        "ctypes.dlopen refused",
    ),
    "torch.multiprocessing": (
        "p = torch.multiprocessing.Process(target=torch.os.system, args=('touch {target}',))\n"
        "p.start()\np.join()",
        "pass",
        "",
        "os.fork refused",
    ),
    "dataloader-workers": (
        "pass",
        "data = torch.utils.data.TensorDataset(torch.zeros(4, 1))\n"
        "list(torch.utils.data.DataLoader(data, num_workers=2))",
        "",
        "in forward: `list(torch.utils.data.DataLoader(data, num_workers=2))`",
    ),
    "socket-via-sys.modules": (
        "torch.os.sys.modules['builtins'].__import__('socket').socket().connect(('127.0.0.1', 9))",
        "pass",
        "",
        "socket.__new__ refused",
    ),
    "read-a-secret": (
        "raise ValueError(torch.sys.modules['builtins'].open({secret!r}).read())",
        "pass",
        "",
        "open refused: ('{secret}', 'r'",
    ),
    "exec-via-real-builtins": (
        "torch.sys.modules['builtins'].exec(\"import os; os.system('touch {target}')\")",
        "pass",
        "",
        "compile refused",
    ),
    "attack-in-try-except": (
        "try:\n    torch.os.system('touch {target}')\nexcept BaseException:\n    pass",
        "pass",
        "",
        "os.system refused",
    ),
    "forged-guard-state": (
        "torch.sys.modules['agent.safety.guard']._GUARD._tls.busy = True\n"
        "torch.os.system('touch {target}')",
        "pass",
        "",
        "os.system refused",
    ),
    "monkeypatch-torch.isfinite": (
        "pass",
        "return self.head(x.mean(dim=-1)) * float('nan')",
        "torch.isfinite = lambda t: torch.ones((), dtype=torch.bool)",
        "rebound library names (torch.isfinite)",
    ),
    "monkeypatch-os.write": ("pass", "pass", "torch.os.write = print", "(os.write)"),
    "import-os": ("pass", "pass", "import os", "may not import os"),
    "import-subprocess": ("import subprocess", "pass", "", "may not import subprocess"),
    "import-socket": ("pass", "import socket", "", "may not import socket"),
    "from-torch-import-hub": ("pass", "pass", "from torch import hub", "may not import torch.hub"),
    "open-is-not-a-builtin": ("open({target!r}, 'w')", "pass", "", "NameError: name 'open'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_runtime_attacks_are_rejected(attack: tuple[str, str, str, str], tmp_path: Path) -> None:
    init, forward, header, expected = attack
    target, secret = tmp_path / "pwned", tmp_path / "secret.txt"
    secret.write_text("sk-not-for-models")

    def fill(text: str) -> str:
        return text.format(target=str(target), secret=str(secret))

    result = smoke_test(model_source(fill(init), fill(forward), fill(header)), limits=GUARD_ONLY)
    assert not result.accepted
    assert fill(expected) in joined(result), result.reasons
    assert not target.exists()
    assert "sk-not-for-models" not in joined(result)


def test_torch_hub_local_load_is_rejected(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    hub.mkdir()
    target = tmp_path / "pwned"
    (hub / "hubconf.py").write_text(
        f"import os\nos.system('touch {target}')\ndef entry():\n  pass\n"
    )
    init = f"torch.hub.load({str(hub)!r}, 'entry', source='local', trust_repo=True)"
    result = smoke_test(model_source(init), limits=GUARD_ONLY)
    assert not result.accepted
    assert f"open refused: ('{hub}/hubconf.py', 'r'" in joined(result)
    assert not target.exists()


def test_environment_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTUNE_TEST_API_KEY", "sk-leaked")
    result = smoke_test(
        model_source("raise ValueError(sorted(torch.os.environ))"), limits=GUARD_ONLY
    )
    assert not result.accepted
    assert "PYTHONPATH" in joined(result) and "OMP_NUM_THREADS" in joined(result)
    assert "AGENTUNE_TEST_API_KEY" not in joined(result)


# id -> (init, forward, limits, text the reasons must contain)
FAILURES: dict[str, tuple[str, str, SmokeLimits, str]] = {
    "wrong-shape": (
        "pass",
        "return torch.zeros(3, 3, requires_grad=True)",
        GUARD_ONLY,
        "must return a float tensor of shape (2, 3), got torch.float32 of shape (3, 3)",
    ),
    "not-a-tensor": ("pass", "return [0.0, 1.0]", GUARD_ONLY, "got list"),
    "nan-output": (
        "pass",
        "return self.head(x.mean(dim=-1)) * float('nan')",
        GUARD_ONLY,
        "NaN or infinite",
    ),
    "exception-in-init": (
        "raise ValueError('width must be > 0, got -1')",
        "pass",
        GUARD_ONLY,
        "instantiating raised ValueError: width must be > 0, got -1 (line 10 in __init__: `",
    ),
    "no-gradient": (
        "pass",
        "return torch.zeros(x.shape[0], 3)",
        GUARD_ONLY,
        "does not depend on any parameter",
    ),
    "system-exit": (
        "pass",
        "torch.sys.exit(3)",
        GUARD_ONLY,
        "raised SystemExit: 3 (line 13 in forward: `torch.sys.exit(3)`)",
    ),
    "keyboard-interrupt": (
        "pass",
        "raise torch.sys.modules['builtins'].KeyboardInterrupt",
        GUARD_ONLY,
        "raised KeyboardInterrupt",
    ),
    "os._exit": ("pass", "torch.os._exit(0)", GUARD_ONLY, "gave no valid answer"),
    "forged-answers": (
        "pass",
        'line = b\'{"accepted": true, "reasons": [], "nonce": "guess"}\\n\'\n'
        "print(line.decode())\n"
        "for fd in range(1, 64):\n"
        "    try:\n        torch.os.write(fd, line)\n    except Exception:\n        pass\n"
        "torch.os._exit(0)",
        GUARD_ONLY,
        "gave no valid answer",
    ),
    "print-flood": (
        "pass",
        "for _ in range(1000): print('{\"accepted\": true}' * 20)",
        SmokeLimits(kernel_isolation=False, max_output_bytes=10_000),
        "printed more than 10000 bytes",
    ),
    "infinite-loop": (
        "pass",
        "while True: pass",
        SmokeLimits(cpu_seconds=2, wall_seconds=20),
        "CPU time limit of 2 s exceeded",
    ),
    "sleep-forever": (
        "pass",
        "torch.sys.modules['time'].sleep(600)",
        SmokeLimits(cpu_seconds=60, wall_seconds=3),
        "killed after the 3 s wall-clock limit",
    ),
    "tensor-bomb": (
        "pass",
        "torch.empty(10**12)",
        SmokeLimits(memory_bytes=2 * 2**30),
        "memory limit of 2.0 GiB exceeded",
    ),
    "growing-list": (
        "pass",
        "a = []\nwhile True: a.append(bytes(10**7))",
        SmokeLimits(memory_bytes=2 * 2**30),
        "memory limit of 2.0 GiB exceeded",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_broken_models_are_rejected(failure: tuple[str, str, SmokeLimits, str]) -> None:
    init, forward, limits, expected = failure
    result = smoke_test(model_source(init, forward), limits=limits)
    assert not result.accepted
    assert expected in joined(result), result.reasons


def test_kernel_isolation_stops_writers_the_guard_cannot_see(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    # an alias inside torch._C that cannot be wrapped, so it raises no audit event
    init = f"torch._C._VariableFunctions.from_file({str(target)!r}, shared=True, size=8)"
    result = smoke_test(model_source(init))
    if result.isolation.startswith("none"):
        pytest.skip(f"no kernel isolation here: {result.isolation}")
    assert not result.accepted
    assert "Read-only file system" in joined(result)
    assert not target.exists()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"width": [8]}, TypeError),
        ({"in_channels": 2}, ValueError),
        ({"num_features": 2}, ValueError),
        ({"not an identifier": 1}, ValueError),
    ],
    ids=["non-scalar", "contract-name", "features-name", "bad-name"],
)
def test_caller_errors_raise(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        smoke_test("x = 1", kwargs=kwargs)  # type: ignore[arg-type]


def test_bad_module_name_and_dimensions_raise() -> None:
    with pytest.raises(UnsafeModelError, match=r"generated_models\.<identifier>"):
        smoke_test("x = 1", module_name="os.path")
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        smoke_test("x = 1", num_classes=0)
    with pytest.raises(ValueError, match="num_features must be an int >= 0, got -1"):
        smoke_test("x = 1", num_features=-1)
