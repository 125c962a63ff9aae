"""The tier-2 writers (agent.safety.configs) and the safe YAML reader they use.

Every attack is one parametrised case with a readable id; each refusal is a one-line
`UnsafeConfigError`/`UnsafeOverrideError` naming the offending key or value, and nothing in the
config folder changes. Each attack's legitimate counterpart must write a config that composes.
All tests work on a copy of configs/ in tmp_path.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import agent.safety.configs as configs_module
from agent.safety.configs import compose_experiment_config, create_config_variant
from agent.safety.errors import SafetyError, UnsafeConfigError
from agent.safety.files import GENERATED_MARKER, PACKAGE_HEADER, is_generated_text
from agent.safety.yaml_io import dump_yaml, safe_load_yaml
from biosignals.train import compose_config

PROJECT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CNN1D_TARGET = "biosignals.models.cnn1d.CNN1D"
SGD_TRAINER = """\
# a human-authored trainer with a nested optimizer that holds a literal value
defaults:
  - default
  - _self_

optimizer:
  _target_: torch.optim.SGD
  _partial_: true
  lr: ${trainer.lr}
  momentum: 0.9
  weight_decay: ${trainer.weight_decay}
"""


@pytest.fixture
def cfgdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of configs/ (plus trainer/sgd.yaml), also set as $AGENTUNE_CONFIG_DIR."""
    root = tmp_path / "configs"
    shutil.copytree(PROJECT_CONFIGS, root)
    (root / "trainer" / "sgd.yaml").write_text(SGD_TRAINER, encoding="utf-8")
    monkeypatch.setenv("AGENTUNE_CONFIG_DIR", str(root))
    return root


def _listing(root: Path) -> list[tuple[str, int, int]]:
    """Every path with its size and mtime (files and links; folders by name only)."""
    return sorted(
        (str(p.relative_to(root)), 0, 0)
        if p.is_dir() and not p.is_symlink()
        else (str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    )


def _assert_refused(error: pytest.ExceptionInfo[SafetyError], fragment: str) -> None:
    message = str(error.value)
    assert "\n" not in message and "\r" not in message, message
    assert fragment in message, message


# --- create_config_variant: attacks --------------------------------------------------------

DEEP = "width: 8\nx: " + "{a: " * 20 + "1" + "}" * 20 + "\n"
BOMB = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nwidth: 8\n'

# (group, base, name, mods, fragment, legit (group, base, name, mods))
WIDE = ("model", "cnn1d", "cnn1d_wide", {"width": 32})
VARIANT_ATTACKS = [
    # _target_ and the other instantiation keys, by every route
    ("target-set", "model", "cnn1d", "x1", {"_target_": "os.system"}, "_target_", WIDE),
    ("target-null", "model", "cnn1d", "x1", {"_target_": None}, "_target_", WIDE),
    ("target-yaml", "model", "cnn1d", "x1", "_target_: os.system", "_target_", WIDE),
    (
        "nested-target",
        "trainer",
        "default",
        "x1",
        {"optimizer": {"_target_": "os.system"}},
        "trainer.optimizer._target_",
        ("trainer", "sgd", "sgd_fast", {"optimizer": {"momentum": 0.95}}),
    ),
    (
        "nested-partial",
        "trainer",
        "sgd",
        "x1",
        {"optimizer": {"_partial_": False}},
        "_partial_",
        ("trainer", "sgd", "sgd_fast", {"optimizer": {"momentum": 0.95}}),
    ),
    ("args", "model", "cnn1d", "x1", {"_args_": ["rm"]}, "_args_", WIDE),
    ("recursive", "model", "cnn1d", "x1", {"_recursive_": False}, "_recursive_", WIDE),
    ("dotted-key", "model", "cnn1d", "x1", {"a.b": 1}, "dotted keys", WIDE),
    (
        "dotted-target",
        "trainer",
        "sgd",
        "x1",
        {"optimizer._target_": "os.system"},
        "optimizer._target_",
        ("trainer", "sgd", "sgd_fast", {"optimizer": {"momentum": 0.95}}),
    ),
    ("merge-key", "model", "cnn1d", "x1", {"<<": {"width": 3}}, "merge keys", WIDE),
    ("interp-key", "model", "cnn1d", "x1", {"${oc.env:HOME}": 1}, "interpolations", WIDE),
    ("non-str-key", "model", "cnn1d", "x1", {1: 2}, "key 1", WIDE),
    # YAML text an LLM may pass
    (
        "yaml-python-apply",
        "model",
        "cnn1d",
        "x1",
        "width: !!python/object/apply:os.system ['touch /tmp/pwned']",
        "!!python/object/apply:os.system",
        ("model", "cnn1d", "cnn1d_y", "width: 24"),
    ),
    (
        "yaml-python-name",
        "model",
        "cnn1d",
        "x1",
        "width: !!python/name:os.system",
        "!!python/name:os.system",
        ("model", "cnn1d", "cnn1d_y", "width: 24"),
    ),
    ("yaml-custom-tag", "model", "cnn1d", "x1", "width: !env HOME", "!env", WIDE),
    ("yaml-alias-bomb", "model", "cnn1d", "x1", BOMB, "anchors", WIDE),
    ("yaml-merge", "model", "cnn1d", "x1", "<<: {width: 3}\n", "merge keys", WIDE),
    ("yaml-duplicate", "model", "cnn1d", "x1", "width: 16\nwidth: 32\n", "duplicate key", WIDE),
    ("yaml-deep", "model", "cnn1d", "x1", DEEP, "nesting deeper", WIDE),
    ("yaml-two-docs", "model", "cnn1d", "x1", "width: 16\n---\ndepth: 2\n", "one YAML", WIDE),
    ("yaml-huge", "model", "cnn1d", "x1", "width: 8\n" + "#" * 70000, "over the limit", WIDE),
    ("yaml-syntax", "model", "cnn1d", "x1", "width: [16\n", "invalid YAML", WIDE),
    ("yaml-list", "model", "cnn1d", "x1", "[1, 2]", "non-empty mapping", WIDE),
    ("json-target", "model", "cnn1d", "x1", '{"_target_": "os.system"}', "_target_", WIDE),
    # interpolations: environment, resolvers, Hydra's runtime, and replacing one
    (
        "env-interp",
        "trainer",
        "default",
        "x1",
        {"scheduler": "${oc.env:HOME}"},
        "trainer.scheduler",
        ("trainer", "default", "default_oc", {"scheduler": "onecycle"}),
    ),
    (
        "decode-interp",
        "trainer",
        "default",
        "x1",
        {"scheduler": "${oc.decode:'[1]'}"},
        "interpolations",
        ("trainer", "default", "default_oc", {"scheduler": "onecycle"}),
    ),
    (
        "hydra-runtime-interp",
        "dataset",
        "mitbih_synth_quick",
        "x1",
        {"classes": "${hydra:runtime.cwd}"},
        "dataset.classes",
        ("dataset", "mitbih_synth_quick", "synth_aami5", {"classes": "aami5"}),
    ),
    (
        "replace-interp",
        "trainer",
        "default",
        "x1",
        {"optimizer": {"lr": 0.1}},
        "set trainer.lr instead",
        ("trainer", "default", "default_lr", {"lr": 0.01}),
    ),
    (
        "replace-env-interp",
        "dataset",
        "mitbih_aami3",
        "x1",
        {"data_dir": "data"},
        "cannot be set",
        ("dataset", "mitbih_aami3", "real_aami3_2", {"n_leads": 2}),
    ),
    # names
    ("name-traversal", "model", "cnn1d", "../evil", {"width": 16}, "'../evil'", WIDE),
    ("name-upper", "model", "cnn1d", "Evil", {"width": 16}, "'Evil'", WIDE),
    ("name-slash", "model", "cnn1d", "a/b", {"width": 16}, "'a/b'", WIDE),
    ("name-encoded", "model", "cnn1d", "%2e%2e", {"width": 16}, "'%2e%2e'", WIDE),
    ("name-too-long", "model", "cnn1d", "x" * 65, {"width": 16}, "xxxx", WIDE),
    ("name-lookalike", "model", "cnn1d", "cnn1d_w\u0456de", {"width": 16}, "cnn1d_w", WIDE),
    ("name-newline", "model", "cnn1d", "cnn1d_wide\n", {"width": 16}, "'cnn1d_wide\\n'", WIDE),
    ("name-empty", "model", "cnn1d", "", {"width": 16}, "''", WIDE),
    ("name-is-base", "model", "cnn1d", "cnn1d", {"width": 16}, "equals base", WIDE),
    ("name-human", "model", "cnn1d", "resnet1d", {"width": 16}, "human-authored", WIDE),
    # groups and bases
    ("group-experiment", "experiment", "mitbih_aami3", "x1", {"seed": 1}, "'experiment'", WIDE),
    ("group-hydra", "hydra", "cnn1d", "x1", {"width": 16}, "'hydra'", WIDE),
    ("group-traversal", "../x", "cnn1d", "x1", {"width": 16}, "'../x'", WIDE),
    ("base-missing", "model", "nope", "x1", {"width": 16}, "choose one of cnn1d", WIDE),
    ("base-traversal", "model", "../config", "x1", {"width": 16}, "'../config'", WIDE),
    # keys and values
    ("add-key", "model", "cnn1d", "x1", {"widht": 16}, "did you mean width", WIDE),
    (
        "mapping-to-scalar",
        "trainer",
        "default",
        "x1",
        {"optimizer": "adamw"},
        "replacing a mapping",
        ("trainer", "default", "default_lr", {"lr": 0.01}),
    ),
    (
        "mapping-to-null",
        "trainer",
        "default",
        "x1",
        {"optimizer": None},
        "replacing a mapping with null",
        ("trainer", "default", "default_lr", {"lr": 0.01}),
    ),
    ("scalar-to-mapping", "model", "cnn1d", "x1", {"width": {"v": 16}}, "with a mapping", WIDE),
    ("wrong-type", "model", "cnn1d", "x1", {"width": "wide"}, "model.width='wide'", WIDE),
    ("float-for-int", "model", "cnn1d", "x1", {"width": 16.5}, "model.width=16.5", WIDE),
    ("nan", "model", "cnn1d", "x1", {"dropout": float("nan")}, "model.dropout=nan", WIDE),
    ("inf", "model", "cnn1d", "x1", {"kernel_size": float("inf")}, "kernel_size=inf", WIDE),
    ("negative", "model", "cnn1d", "x1", {"width": -8}, "model.width=-8", WIDE),
    (
        "momentum-range",
        "trainer",
        "sgd",
        "x1",
        {"optimizer": {"momentum": 1.5}},
        "trainer.optimizer.momentum=1.5",
        ("trainer", "sgd", "sgd_fast", {"optimizer": {"momentum": 0.95}}),
    ),
    (
        "fixed-num-workers",
        "trainer",
        "default",
        "x1",
        {"num_workers": 4},
        "trainer.num_workers",
        ("trainer", "default", "default_bs", {"batch_size": 64}),
    ),
    (
        "fixed-metric",
        "trainer",
        "default",
        "x1",
        {"metric": "val/loss"},
        "trainer.metric",
        ("trainer", "default", "default_bs", {"batch_size": 64}),
    ),
    (
        "defaults-list",
        "trainer",
        "quick",
        "x1",
        {"defaults": []},
        "defaults",
        ("trainer", "quick", "quick_lr", {"lr": 0.001}),
    ),
    (
        "target-string",
        "trainer",
        "default",
        "x1",
        {"scheduler": "_target_"},
        "_target_",
        ("trainer", "default", "default_oc", {"scheduler": "onecycle"}),
    ),
    (
        "abs-path",
        "trainer",
        "default",
        "x1",
        {"scheduler": "/etc/passwd"},
        "/etc/passwd",
        ("trainer", "default", "default_oc", {"scheduler": "onecycle"}),
    ),
    (
        "list-too-long",
        "dataset",
        "mitbih_synth_quick",
        "x1",
        {"bandpass_hz": [1.0] * 65},
        "at most 64",
        ("dataset", "mitbih_synth_quick", "synth_band", {"bandpass_hz": [1.0, 40.0]}),
    ),
    ("empty-mods", "model", "cnn1d", "x1", {}, "non-empty mapping", WIDE),
    ("none-mods", "model", "cnn1d", "x1", None, "non-empty mapping", WIDE),
]


@pytest.mark.parametrize(
    ("group", "base", "name", "mods", "fragment", "legit"),
    [pytest.param(*case[1:], id=case[0]) for case in VARIANT_ATTACKS],
)
def test_variant_attack_is_refused(
    cfgdir: Path, group: Any, base: Any, name: Any, mods: Any, fragment: str, legit: tuple
) -> None:
    before = _listing(cfgdir)
    with pytest.raises(SafetyError) as error:
        create_config_variant(group, base, name, mods, config_dir=cfgdir)
    _assert_refused(error, fragment)
    assert _listing(cfgdir) == before
    legit_group, legit_base, legit_name, legit_mods = legit
    path = create_config_variant(legit_group, legit_base, legit_name, legit_mods)  # env var
    assert path == cfgdir / legit_group / f"{legit_name}.yaml"
    assert is_generated_text(path.read_text(encoding="utf-8"))
    cfg = compose_config([f"{legit_group}={legit_name}"], cfgdir)
    base_cfg = compose_config([f"{legit_group}={legit_base}"], cfgdir)
    assert cfg[legit_group].get("_target_") == base_cfg[legit_group].get("_target_")


def test_symlink_at_target_is_refused(cfgdir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("x: 1\n", encoding="utf-8")
    (cfgdir / "model" / "cnn1d_wide.yaml").symlink_to(outside)
    before = _listing(cfgdir)
    with pytest.raises(UnsafeConfigError) as error:
        create_config_variant("model", "cnn1d", "cnn1d_wide", {"width": 32}, config_dir=cfgdir)
    _assert_refused(error, "symbolic link")
    assert _listing(cfgdir) == before and outside.read_text(encoding="utf-8") == "x: 1\n"
    assert create_config_variant("model", "cnn1d", "cnn1d_w32", {"width": 32}, config_dir=cfgdir)


def test_other_generated_content_is_never_overwritten(cfgdir: Path) -> None:
    create_config_variant("model", "cnn1d", "cnn1d_wide", {"width": 32}, config_dir=cfgdir)
    before = _listing(cfgdir)
    with pytest.raises(UnsafeConfigError) as error:
        create_config_variant("model", "cnn1d", "cnn1d_wide", {"width": 16}, config_dir=cfgdir)
    _assert_refused(error, "never overwritten")
    assert _listing(cfgdir) == before


# --- create_config_variant: legitimate variants --------------------------------------------


def test_variant_composes_and_keeps_target(cfgdir: Path) -> None:
    path = create_config_variant(
        "model", "cnn1d", "cnn1d_wide", {"width": 32, "depth": 4}, config_dir=cfgdir
    )
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    assert first == f"{GENERATED_MARKER} (tier 2): variant of model/cnn1d; do not edit by hand"
    assert safe_load_yaml(rest) == {
        "_target_": CNN1D_TARGET,
        "width": 32,
        "depth": 4,
        "kernel_size": 7,
        "dropout": 0.1,
    }
    cfg = compose_config(["model=cnn1d_wide"], cfgdir)
    assert cfg.model._target_ == CNN1D_TARGET
    assert (cfg.model.width, cfg.model.depth, cfg.model.kernel_size) == (32, 4, 7)


def test_same_variant_twice_is_a_no_op(cfgdir: Path) -> None:
    first = create_config_variant("model", "cnn1d", "cnn1d_wide", {"width": 32}, config_dir=cfgdir)
    before = _listing(cfgdir)
    again = create_config_variant("model", "cnn1d", "cnn1d_wide", "width: 32", config_dir=cfgdir)
    assert again == first and _listing(cfgdir) == before


def test_nested_optimizer_change_keeps_target(cfgdir: Path) -> None:
    create_config_variant(
        "trainer", "sgd", "sgd_fast", {"optimizer": {"momentum": 0.95}, "lr": 0.05}
    )
    cfg = compose_config(["trainer=sgd_fast"], cfgdir)
    assert cfg.trainer.optimizer._target_ == "torch.optim.SGD"
    assert cfg.trainer.optimizer.momentum == 0.95 and cfg.trainer.optimizer.lr == 0.05
    assert cfg.trainer.epochs == 20  # inherited through the base's own defaults list


def test_yaml_and_json_mods(cfgdir: Path) -> None:
    create_config_variant("model", "resnet1d", "resnet1d_small", "# smaller\nwidth: 8\nstages: 2\n")
    create_config_variant("model", "encoder_classifier", "enc_small", '{"d_model": 32, "nhead": 2}')
    cfg = compose_config(["model=resnet1d_small"], cfgdir)
    assert (cfg.model.width, cfg.model.stages) == (8, 2)
    cfg = compose_config(["model=enc_small"], cfgdir)
    assert (cfg.model.d_model, cfg.model.nhead) == (32, 2)


def test_variant_of_a_config_with_defaults_sets_inherited_keys(cfgdir: Path) -> None:
    path = create_config_variant("trainer", "quick", "quick_lr", {"lr": 1e-3, "epochs": 2})
    assert safe_load_yaml(path.read_text(encoding="utf-8"))["defaults"] == ["default", "_self_"]
    cfg = compose_config(["trainer=quick_lr"], cfgdir)
    assert (cfg.trainer.lr, cfg.trainer.epochs, cfg.trainer.optimizer.lr) == (1e-3, 2, 1e-3)
    assert cfg.trainer.early_stopping_patience is None


# --- compose_experiment_config -------------------------------------------------------------

EXP_LEGIT = ({"model": "cnn1d", "trainer": "quick"}, ["trainer.lr=0.001"])
EXPERIMENT_ATTACKS = [
    ("exp-human-name", "mitbih_aami3", {"model": "cnn1d"}, [], "human-authored"),
    ("exp-name-traversal", "../x", {"model": "cnn1d"}, [], "'../x'"),
    ("exp-name-upper", "Exp", {"model": "cnn1d"}, [], "'Exp'"),
    ("exp-group-hydra", "exp_a", {"hydra": "x"}, [], "'hydra'"),
    ("exp-group-experiment", "exp_a", {"experiment": "mitbih_aami3"}, [], "'experiment'"),
    ("exp-option-missing", "exp_a", {"model": "resnett1d"}, [], "did you mean resnet1d"),
    ("exp-option-traversal", "exp_a", ["model=../../etc/passwd"], [], "../../etc/passwd"),
    ("exp-option-slash", "exp_a", ["model/sub/cnn1d"], [], "'sub/cnn1d'"),
    ("exp-components-str", "exp_a", "model=cnn1d", [], "mapping or a list"),
    ("exp-components-item", "exp_a", ["model"], [], "'group=config'"),
    ("exp-group-twice", "exp_a", ["model=cnn1d", "model/resnet1d"], [], "selected twice"),
    ("exp-target", "exp_a", {"model": "cnn1d"}, ["model._target_=os.system"], "_target_"),
    ("exp-opt-target", "exp_a", {}, ["trainer.optimizer._target_=os.system"], "_target_"),
    ("exp-hydra-dir", "exp_a", {"model": "cnn1d"}, ["hydra.run.dir=/tmp"], "hydra.run.dir"),
    ("exp-env", "exp_a", {"model": "cnn1d"}, ["trainer.lr=${oc.env:HOME}"], "interpolations"),
    ("exp-metric", "exp_a", {"model": "cnn1d"}, ["trainer.metric=val/loss"], "trainer.metric"),
    ("exp-group-override", "exp_a", {"model": "cnn1d"}, ["model=resnet1d"], "components"),
    ("exp-unknown-key", "exp_a", {"model": "cnn1d"}, ["model.stages=4"], "model.stages"),
    ("exp-add", "exp_a", {"model": "cnn1d"}, ["+model.extra=1"], "adding keys"),
    ("exp-map-nan", "exp_a", {"model": "cnn1d"}, {"trainer.lr": float("nan")}, "trainer.lr=nan"),
    ("exp-map-target", "exp_a", {}, {"model._target_": "os.system"}, "_target_"),
    ("exp-map-dict", "exp_a", {}, {"trainer.optimizer": {"_target_": "x"}}, "dict values"),
    ("exp-overrides-str", "exp_a", {"model": "cnn1d"}, "trainer.lr=0.1", "list of strings"),
    ("exp-empty", "exp_a", {}, [], "neither"),
]


@pytest.mark.parametrize(
    ("name", "components", "overrides", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in EXPERIMENT_ATTACKS],
)
def test_experiment_attack_is_refused(
    cfgdir: Path, name: Any, components: Any, overrides: Any, fragment: str
) -> None:
    before = _listing(cfgdir)
    with pytest.raises(SafetyError) as error:
        compose_experiment_config(name, components, overrides, config_dir=cfgdir)
    _assert_refused(error, fragment)
    assert _listing(cfgdir) == before
    path = compose_experiment_config("exp_ok", *EXP_LEGIT, config_dir=cfgdir)
    assert path == cfgdir / "experiment" / "exp_ok.yaml"
    assert compose_config(["experiment=exp_ok"], cfgdir).trainer.lr == 0.001


def test_experiment_composes(cfgdir: Path) -> None:
    create_config_variant("model", "cnn1d", "cnn1d_wide", {"width": 32, "depth": 4})
    path = compose_experiment_config(
        "exp_wide",
        {"model": "cnn1d_wide", "trainer": "quick", "dataset": "mitbih_synth_quick"},
        ["trainer.lr=0.001"],
    )
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == PACKAGE_HEADER and lines[1].startswith(GENERATED_MARKER)
    assert is_generated_text(text)
    assert safe_load_yaml(text) == {
        "defaults": [
            {"override /model": "cnn1d_wide"},
            {"override /trainer": "quick"},
            {"override /dataset": "mitbih_synth_quick"},
        ],
        "trainer": {"lr": 0.001},
    }
    cfg = compose_config(["experiment=exp_wide"], cfgdir)
    assert (cfg.model._target_, cfg.model.width, cfg.trainer.lr) == (CNN1D_TARGET, 32, 0.001)
    assert cfg.trainer.epochs == 3 and cfg.dataset.duration_s == 300.0
    before = _listing(cfgdir)  # the same experiment again: a no-op
    again = compose_experiment_config(
        "exp_wide",
        ["dataset=mitbih_synth_quick", "model/cnn1d_wide", "trainer=quick"],
        {"trainer.lr": 0.001},
    )
    assert again == path and _listing(cfgdir) == before


def test_experiment_with_mapping_overrides_only(cfgdir: Path) -> None:
    compose_experiment_config("exp_lr", {}, {"trainer.lr": 0.01, "model.width": 12})
    cfg = compose_config(["experiment=exp_lr"], cfgdir)
    assert (cfg.trainer.lr, cfg.model.width, cfg.model._target_) == (0.01, 12, CNN1D_TARGET)


def test_experiment_removed_when_final_compose_fails(
    cfgdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_compose = configs_module._compose

    def compose_failing_in_place(overrides: list[str], root: Path, what: str) -> Any:
        if root == cfgdir and overrides == ["experiment=exp_x"]:
            raise UnsafeConfigError("experiment=exp_x does not compose: simulated")
        return real_compose(overrides, root, what)

    monkeypatch.setattr(configs_module, "_compose", compose_failing_in_place)
    before = _listing(cfgdir)
    with pytest.raises(UnsafeConfigError, match="simulated"):
        compose_experiment_config("exp_x", *EXP_LEGIT, config_dir=cfgdir)
    assert _listing(cfgdir) == before


def test_hydra_ignores_a_package_header_below_another_comment(cfgdir: Path) -> None:
    # Why the experiment marker sits on line 2: Hydra stops reading `# @` headers at the
    # first other line, so with the marker first the experiment is no longer global.
    body = "defaults:\n  - override /trainer: quick\ntrainer:\n  lr: 0.001\n"
    (cfgdir / "experiment" / "first.yaml").write_text(f"{PACKAGE_HEADER}\n# c\n{body}")
    (cfgdir / "experiment" / "second.yaml").write_text(f"# c\n{PACKAGE_HEADER}\n{body}")
    assert compose_config(["experiment=first"], cfgdir).trainer.lr == 0.001
    with pytest.raises(Exception, match="Could not override"):
        compose_config(["experiment=second"], cfgdir)


# --- yaml_io -------------------------------------------------------------------------------


def test_project_configs_load_with_safe_yaml() -> None:
    for path in sorted(PROJECT_CONFIGS.rglob("*.yaml")):
        assert isinstance(safe_load_yaml(path.read_text(encoding="utf-8"), source=path.name), dict)


def test_dump_yaml_round_trips_and_quotes_ambiguous_strings() -> None:
    data = {"z": 1, "a": "1e-3", "b": 1e-5, "c": "yes", "d": [0.5, 45.0], "e": "ü", "f": None}
    text = dump_yaml(data)
    assert list(safe_load_yaml(text)) == ["z", "a", "b", "c", "d", "e", "f"]
    assert safe_load_yaml(text) == data
    assert "ü" in text and "{" not in text  # unicode kept, block style
