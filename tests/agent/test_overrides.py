"""The override policy (agent.safety.overrides) and value typing (agent.safety.values).

Every attack is one parametrised case with a readable id and a legitimate counterpart that
must pass; refusals are one-line `UnsafeOverrideError`s naming the offending key or value.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.safety.errors import UnsafeOverrideError
from agent.safety.overrides import (
    DEFAULT_GROUPS,
    CheckedOverride,
    check_overrides,
    check_param,
    check_space_key,
    group_options_in,
)
from agent.safety.values import check_value
from biosignals.train import compose_config

PROJECT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def config_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's configs/ (never the real folder)."""
    root = tmp_path_factory.mktemp("overrides") / "configs"
    shutil.copytree(PROJECT_CONFIGS, root)
    return root


@pytest.fixture(scope="module")
def base(config_copy: Path) -> Any:
    return compose_config(["experiment=mitbih_aami3_quick"], config_copy)


@pytest.fixture(scope="module")
def options(config_copy: Path) -> dict[str, list[str]]:
    return group_options_in(config_copy)


def _listing(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    )


def _assert_one_line(error: pytest.ExceptionInfo[Exception], fragment: str) -> None:
    message = str(error.value)
    assert "\n" not in message and "\r" not in message, message
    assert fragment in message, message


# (attack, legitimate counterpart, fragment of the message, refused without a base too)
OVERRIDE_ATTACKS = [
    # instantiation keys at any depth
    ("trainer.optimizer._target_=os.system", "trainer.weight_decay=0.05", "_target_", True),
    ("+trainer.optimizer._args_=[rm,-rf]", "trainer.lr=0.002", "adding keys", True),
    ("trainer.optimizer._args_=[1]", "trainer.lr=0.002", "_args_", True),
    ("model._target_=builtins.eval", "model=resnet1d", "_target_", True),
    ("trainer.optimizer._partial_=false", "trainer.grad_clip=0.5", "_partial_", True),
    ("model._recursive_=true", "model.depth=4", "_recursive_", True),
    ("model._private=1", "model.kernel_size=5", "_private", True),
    # reshaping the config
    ("~trainer.lr", "trainer.lr=0.001", "deleting keys", True),
    ("++model.width=8", "model.width=8", "adding keys", True),
    ("+model.new_key=1", "model.width=12", "adding keys", True),
    ("model@foo=cnn1d", "model=cnn1d", "packages (@)", True),
    # keys outside the groups: where files go, what runs
    ("hydra.run.dir=/tmp", "trainer.epochs=2", "hydra.run.dir", True),
    ("hydra.job.chdir=true", "trainer.class_weighted_loss=false", "hydra.job.chdir", True),
    ("hydra/launcher=joblib", "trainer=quick", "hydra/launcher", True),
    ("paths.cache_dir=/", "dataset.duration_s=120.0", "paths.cache_dir", True),
    ("run_dir=/etc", "trainer.epochs=3", "run_dir", True),
    ("seed=1", "dataset.n_leads=2", "seed", True),
    ("dataset.val_records=[100,101]", "dataset.n_leads=2", "dataset.val_records", True),
    ("dataset.records=[100,101]", "dataset.n_leads=2", "dataset.records", True),
    ("dataset.val_fraction=0.1", "dataset.n_leads=2", "test patients", True),
    ("experiment=galaxyppg_hr_quick", "dataset=mitbih_synth_quick", "experiment", True),
    ("defaults=[]", "trainer=default", "defaults", True),
    ("trainer.metric=val/loss", "trainer.scheduler=onecycle", "trainer.metric", True),
    ("trainer.mode=min", "trainer.scheduler=none", "trainer.mode", True),
    ("trainer.num_workers=8", "trainer.batch_size=256", "trainer.num_workers", True),
    ("trainer.device=cuda", "trainer.eval_batch_size=512", "trainer.device", True),
    ("trainer.save_model=false", "trainer.class_weighted_loss=true", "trainer.save_model", True),
    # interpolations read the environment or run resolvers
    ("trainer.lr=${oc.env:HOME}", "trainer.lr=0.003", "interpolations", True),
    ("trainer.scheduler='${oc.decode:[1]}'", "trainer.scheduler=cosine", "interpolations", True),
    ("trainer.scheduler='x${hydra:runtime.cwd}'", "trainer.scheduler='x y'", "interpol", True),
    ("dataset.bandpass_hz=[0.5,'${oc.env:X}']", "dataset.bandpass_hz=[0.5,40.0]", "interp", True),
    # sweeps
    ("model.width=1,2,3", "model.width=2", "sweeps", True),
    ("model.width=choice(8,16)", "model.width=16", "sweeps", True),
    ("model.width=range(1,4)", "model.width=4", "sweeps", True),
    ("trainer.lr=interval(0,1)", "trainer.lr=0.5", "sweeps", True),
    ("model=glob(*)", "model=encoder_classifier", "sweeps", True),
    # dict values
    ("trainer.optimizer={_target_: os.system}", "trainer.weight_decay=0.0", "dict values", True),
    ("model.width={a: 1}", "model.width=24", "dict values", True),
    # strings
    ("trainer.scheduler=_target_", "trainer.scheduler=onecycle", "_target_", True),
    ("trainer.scheduler=/etc/passwd", "trainer.scheduler=cosine", "/etc/passwd", True),
    ("trainer.scheduler=a/../../b", "trainer.scheduler=a/b", "a/../../b", True),
    ("trainer.scheduler='a\\\\b'", "trainer.scheduler='a b'", "trainer.scheduler", True),
    ("trainer.scheduler=" + "x" * 129, "trainer.scheduler=" + "x" * 128, "129 characters", True),
    # numbers out of their bounds
    ("trainer.lr=nan", "trainer.lr=0.01", "trainer.lr=nan", True),
    ("trainer.lr=inf", "trainer.lr=10", "trainer.lr=inf", True),
    ("trainer.lr=-1", "trainer.lr=1", "trainer.lr=-1", True),
    ("trainer.epochs=0", "trainer.epochs=1", "trainer.epochs=0", True),
    ("trainer.batch_size=1e9", "trainer.batch_size=65536", "trainer.batch_size", True),
    ("model.dropout=1.0", "model.dropout=0.99", "model.dropout=1.0", True),
    ("trainer.early_stopping_patience=-1", "trainer.early_stopping_patience=null", "-1", True),
    ("model.width=abc", "model.width=16", "model.width='abc'", False),
    ("model.width=8.5", "model.width=int(9)", "model.width=8.5", False),
    ("model.width=true", "model.width=1", "model.width=True", False),
    ("model.width=100000", "model.width=1000", "model.width=100000", False),
    ("trainer.scheduler=3", "trainer.scheduler='3'", "trainer.scheduler=3", False),
    ("trainer.class_weighted_loss=1", "trainer.class_weighted_loss=true", "true or false", False),
    # keys the base config does not have, or holds as interpolations/mappings
    ("trainer.lrr=0.1", "trainer.lr=0.1", "did you mean trainer.lr", False),
    ("trainer.optimizer.lr=0.1", "trainer.lr=0.1", "set trainer.lr instead", False),
    ("trainer.optimizer=sgd", "trainer.weight_decay=0.1", "set its fields one by one", False),
    ("dataset.bandpass_hz.0=1", "dataset.bandpass_hz=[1.0,45.0]", "set a whole list", True),
    # group selections
    ("model=../../etc/passwd", "model=cnn1d", "../../etc/passwd", True),
    ("model=Resnet1d", "model=resnet1d", "Resnet1d", True),
    ("model=nope", "model=resnet1d", "choose one of cnn1d", False),
    ("model=resnett1d", "model=resnet1d", "did you mean resnet1d", False),
    ("trainer=1", "trainer=quick", "trainer=1", True),
    # syntax
    ("trainer.lr=[1", "trainer.lr=0.1", "not a valid Hydra override", True),
    ("trainer.lr", "trainer.lr=0.1", "not a valid Hydra override", True),
]


@pytest.mark.parametrize(
    ("attack", "legit", "fragment", "structural"),
    [pytest.param(*case, id=case[0][:60]) for case in OVERRIDE_ATTACKS],
)
def test_override_attack_is_refused(
    attack: str,
    legit: str,
    fragment: str,
    structural: bool,
    base: Any,
    options: dict[str, list[str]],
    config_copy: Path,
) -> None:
    before = _listing(config_copy)
    with pytest.raises(UnsafeOverrideError) as error:
        check_overrides([attack], base=base, group_options=options)
    _assert_one_line(error, fragment)
    if structural:
        with pytest.raises(UnsafeOverrideError):
            check_overrides([attack])
    assert _listing(config_copy) == before
    (checked,) = check_overrides([legit], base=base, group_options=options)
    assert isinstance(checked, CheckedOverride)
    # the canonical text is an override Hydra accepts on top of the base
    compose_config(["experiment=mitbih_aami3_quick", checked.text], config_copy)


LIST_ATTACKS = [
    pytest.param("trainer.lr=0.001", ["trainer.lr=0.001"], "list of strings", id="single-string"),
    pytest.param(b"trainer.lr=1", ["trainer.lr=1"], "list of strings", id="bytes"),
    pytest.param(None, [], "list of strings", id="none"),
    pytest.param({"trainer.lr": 1}, ["trainer.lr=1"], "list of strings", id="dict"),
    pytest.param([3], ["model.width=3"], "must be a string", id="non-str-item"),
    pytest.param(
        ["trainer.lr=0.1", "trainer.lr=0.2"],
        ["trainer.lr=0.1", "trainer.epochs=2"],
        "set twice",
        id="duplicate-key",
    ),
    pytest.param(
        ["model=cnn1d", "model=resnet1d"], ["model=resnet1d"], "set twice", id="duplicate-group"
    ),
    pytest.param(
        ["trainer.scheduler='" + "a" * 600 + "'"],
        ["trainer.scheduler='" + "a" * 100 + "'"],
        "at most 512 characters",
        id="overlong-override",
    ),
    pytest.param(
        [f"trainer.lr={i / 1000 + 0.001}" for i in range(65)],
        [f"model.width={i + 1}" for i in range(1)],
        "at most 64 overrides",
        id="too-many-overrides",
    ),
]


@pytest.mark.parametrize(("attack", "legit", "fragment"), LIST_ATTACKS)
def test_override_list_attack_is_refused(attack: Any, legit: list[str], fragment: str) -> None:
    with pytest.raises(UnsafeOverrideError) as error:
        check_overrides(attack)
    _assert_one_line(error, fragment)
    assert len(check_overrides(legit)) == len(legit)


def test_checked_overrides_are_canonical(base: Any, options: dict[str, list[str]]) -> None:
    checked = check_overrides(
        [
            "model=resnet1d",
            "trainer.lr=1e-3",
            "trainer.warmup_epochs=2",
            "trainer.scheduler='one cycle'",
            "trainer.early_stopping_patience=null",
            "model.width=int(16)",
            "dataset.bandpass_hz=[0.5,40]",
        ],
        base=base,
        group_options=options,
    )
    assert [c.text for c in checked] == [
        "model=resnet1d",
        "trainer.lr=0.001",
        "trainer.warmup_epochs=2.0",  # a float in the base stays a float
        "trainer.scheduler='one cycle'",
        "trainer.early_stopping_patience=null",
        "model.width=16",
        "dataset.bandpass_hz=[0.5,40.0]",
    ]
    assert checked[0] == CheckedOverride("model", "resnet1d", True, "model=resnet1d")
    assert [c.is_group for c in checked] == [True] + [False] * 6


def test_without_base_only_structure_is_checked() -> None:
    # no config known: unknown keys and types pass, the structure and known bounds do not
    checked = check_overrides(["model.anything=3", "trainer.lr=0.01", "model=whatever"])
    assert [c.text for c in checked] == ["model.anything=3", "trainer.lr=0.01", "model=whatever"]
    with pytest.raises(UnsafeOverrideError, match=r"trainer\.lr=0"):
        check_overrides(["trainer.lr=0"])


def test_groups_argument_limits_the_keys(base: Any) -> None:
    assert check_overrides(["model.width=4"], groups=("model",), base=base)
    with pytest.raises(UnsafeOverrideError, match="only keys under model"):
        check_overrides(["trainer.lr=0.1"], groups=("model",), base=base)
    assert DEFAULT_GROUPS == ("model", "trainer", "dataset")


PARAM_CASES = [
    # (key, attack value, legit value, normalised legit, fragment)
    pytest.param("trainer.lr", math.nan, 3e-3, 3e-3, "nan", id="param-nan"),
    pytest.param("trainer.lr", "${oc.env:HOME}", 1e-2, 1e-2, "interpolations", id="param-interp"),
    pytest.param("trainer.batch_size", 64.5, 64, 64, "64.5", id="param-float-batch"),
    pytest.param("trainer.warmup_epochs", True, 2, 2.0, "True", id="param-bool"),
    pytest.param("model.width", {"_target_": "x"}, 12, 12, "dict values", id="param-dict"),
    pytest.param("model", "../x", "resnet1d", "resnet1d", "../x", id="param-group"),
    pytest.param("trainer.scheduler", "_target_", "onecycle", "onecycle", "_target_", id="param-t"),
    pytest.param("model.width", 10**30, 12, 12, "model.width", id="param-huge-int"),
]


@pytest.mark.parametrize(("key", "attack", "legit", "normalised", "fragment"), PARAM_CASES)
def test_check_param(
    key: str, attack: Any, legit: Any, normalised: Any, fragment: str, base: Any
) -> None:
    with pytest.raises(UnsafeOverrideError) as error:
        check_param(key, attack, base=base)
    _assert_one_line(error, fragment)
    value = check_param(key, legit, base=base)
    assert value == normalised and type(value) is type(normalised)


SPACE_KEY_CASES = [
    pytest.param("trainer.optimizer._target_", "trainer.lr", "_target_", id="space-target"),
    pytest.param("hydra.run.dir", "trainer.epochs", "hydra.run.dir", id="space-hydra"),
    pytest.param("trainer.metric", "trainer.scheduler", "trainer.metric", id="space-fixed"),
    pytest.param("trainer.optimizer.lr", "trainer.lr", "set trainer.lr", id="space-interp"),
    pytest.param("trainer.optimizer", "trainer.weight_decay", "its fields", id="space-mapping"),
    pytest.param("model.widht", "model.width", "did you mean model.width", id="space-typo"),
    pytest.param("model/width", "model.width", "model/width", id="space-slash"),
    pytest.param(3, "model", "override paths", id="space-non-str"),
]


@pytest.mark.parametrize(("attack", "legit", "fragment"), SPACE_KEY_CASES)
def test_check_space_key(attack: Any, legit: str, fragment: str, base: Any) -> None:
    with pytest.raises(UnsafeOverrideError) as error:
        check_space_key(attack, base=base)
    _assert_one_line(error, fragment)
    assert check_space_key(legit, base=base) == legit


def test_group_options_in(config_copy: Path) -> None:
    options = group_options_in(config_copy)
    # every config of the folder (a campaign run in the checkout adds generated ones)
    assert options["model"] == sorted(p.stem for p in (config_copy / "model").glob("*.yaml"))
    assert {"cnn1d", "encoder_classifier", "resnet1d"} <= set(options["model"])
    assert options["trainer"] == ["default", "quick"]
    assert "mitbih_synth_quick" in options["dataset"]


VALUE_CASES = [
    # (key, value, base, accepted)
    ("trainer.lr", 10, 3e-3, True),
    ("trainer.lr", 10.5, 3e-3, False),
    ("trainer.lr", 0.0, 3e-3, False),
    ("trainer.weight_decay", 0, 1e-2, True),
    ("model.attn_dropout", 0.0, 0.1, True),
    ("model.head_dropout", 1.0, 0.1, False),
    ("optimizer.momentum", 1.0, 0.9, True),
    ("optimizer.momentum", 1.01, 0.9, False),
    ("trainer.min_lr_ratio", 1, 0.01, True),
    ("trainer.warmup_epochs", 1001, 1.0, False),
    ("trainer.epochs", 1000, 20, True),
    ("trainer.epochs", 1001, 20, False),
    ("trainer.eval_batch_size", 65537, 1024, False),
    ("trainer.early_stopping_patience", None, 5, True),
    ("trainer.early_stopping_patience", 3, None, True),
    ("trainer.grad_clip", None, 1.0, True),
    ("trainer.grad_clip", 1e7, 1.0, False),
    ("trainer.lr", None, 3e-3, False),  # not nullable: null only where the base is null
    ("model.width", 1000, 8, True),  # ints: at most max(100 * |base|, 1000)
    ("model.width", 1001, 8, False),
    ("model.width", 0, 8, False),  # a positive int stays >= 1
    ("model.big", 50000, 500, True),
    ("model.big", 50001, 500, False),
    ("model.stride", 0, 0, True),  # a zero int stays >= 0
    ("model.stride", -1, 0, False),
    ("dataset.val_seed", 1, 0, False),  # the split is the experiment's
    ("dataset.test_participants", 4, 4, False),
    ("model.offset", -5, -3, True),
    ("dataset.fs", 25.0 / 1e4, 25.0, True),  # positive floats: within [base/1e4, base*1e4]
    ("dataset.fs", 0.002, 25.0, False),
    ("dataset.fs", 250000, 25.0, True),
    ("dataset.fs", 250001.0, 25.0, False),
    ("dataset.fs", math.inf, 25.0, False),
    ("dataset.motion", 5.0, 0.0, True),
    ("dataset.motion", -0.1, 0.0, False),
    ("dataset.include_acc", False, True, True),
    ("dataset.include_acc", 0, True, False),
    ("dataset.classes", "aami5", "aami3", True),
    ("dataset.classes", "a\nb", "aami3", False),
    ("dataset.classes", "ü", "aami3", False),
    ("dataset.sampling_rate", 180, None, True),
    ("dataset.sampling_rate", "auto", None, True),
    ("dataset.sampling_rate", 1e10, None, False),
    ("dataset.notch_hz", [50, 60], None, True),
    ("dataset.notch_hz", [[50]], None, False),
    ("dataset.val_records", ["118", "208"], None, False),
    ("dataset.bandpass_hz", [0.5, 40], [0.5, 45.0], True),
    ("dataset.bandpass_hz", [0.5] * 65, [0.5, 45.0], False),
    ("dataset.bandpass_hz", 0.5, [0.5, 45.0], False),
    ("dataset.bandpass_hz", [0.5, "x"], [0.5, 45.0], False),
    ("trainer.optimizer", {"lr": 1}, {"lr": "${trainer.lr}"}, False),
    ("paths.cache_dir", "x", None, False),
    ("hydra.run.dir", "x", "runs", False),
    ("trainer.device", "cpu", "auto", False),
    ("model.width", 10**5000, 8, False),  # too long even to print
    ("trainer.lr", 10**400, 3e-3, False),  # too large for a float
]


def _value_id(case: tuple[Any, ...]) -> str:
    value = case[1]
    shown = f"<{value.bit_length()} bits>" if isinstance(value, int) else repr(value)
    return f"{case[0]}={shown}"[:60]


@pytest.mark.parametrize(
    ("key", "value", "base", "accepted"),
    [pytest.param(*case, id=_value_id(case)) for case in VALUE_CASES],
)
def test_check_value_rules(key: str, value: Any, base: Any, accepted: bool) -> None:
    if accepted:
        result = check_value(key, value, base)
        assert result == value or (isinstance(value, tuple) and result == list(value))
        if isinstance(base, float) and value is not None:
            assert isinstance(result, float)
    else:
        with pytest.raises(UnsafeOverrideError) as error:
            check_value(key, value, base)
        _assert_one_line(error, key)
