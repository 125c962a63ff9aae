"""The tier-2 writers: new configs an agent may add to the Hydra config folder.

* `create_config_variant(group, base, name, mods)` writes `<group>/<name>.yaml`, a copy of
  `<group>/<base>.yaml` with some existing values changed (`model/cnn1d_wide.yaml`).
* `compose_experiment_config(name, components, overrides)` writes `experiment/<name>.yaml`,
  selecting one config per group and setting existing values.

Both refuse anything that adds keys, touches `_target_` (or any `_..._` key), replaces an
interpolation, a mapping or a fixed key (`agent.safety.values`), or does not compose. Before a
file is written its exact text is composed by Hydra in a scratch copy of the config folder,
checked against what was meant and against the `_target_` allowlist
(`biosignals.config_safety.check_targets`); a refusal writes nothing. Files are written by
`agent.safety.files` rules: never over a human-authored config, identical content again is a
no-op.

Layout of a written file: a variant starts with the `GENERATED_MARKER` line. An experiment
starts with `# @package _global_` and has the marker on its second line: Hydra reads package
headers only from the leading `# @...` lines of a file (it stops at the first other line, so a
marker line above the header would silently put the whole experiment under `experiment.`).
"""

from __future__ import annotations

import copy
import difflib
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.safety.errors import SafetyError, UnsafeConfigError, UnsafeOverrideError
from agent.safety.files import (
    GENERATED_MARKER,
    PACKAGE_HEADER,
    check_name,
    refuse_human_file,
    target_path,
    write_generated_file,
)
from agent.safety.files import config_dir as default_config_dir
from agent.safety.overrides import INSTANTIATE_KEYS, check_overrides, format_value
from agent.safety.values import check_value
from agent.safety.yaml_io import dump_yaml, safe_load_yaml

__all__ = ["TIER2_GROUPS", "compose_experiment_config", "create_config_variant"]

TIER2_GROUPS = ("model", "trainer", "dataset")
_MOD_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def create_config_variant(
    group: str,
    base: str,
    name: str,
    mods: Mapping[str, Any] | str,
    *,
    config_dir: str | Path | None = None,
) -> Path:
    """Write `<group>/<name>.yaml`: the config `<group>/<base>` with `mods` applied.

    Args:
        group: "model", "trainer" or "dataset".
        base: an existing config of the group (`cnn1d`).
        name: the new config's name (`cnn1d_wide`); `^[a-z][a-z0-9_]{0,63}$`, not `base`.
        mods: nested mapping of existing keys to new values (`{"width": 32}`,
            `{"optimizer": {...}}`), or the same as YAML/JSON text.
        config_dir: the Hydra config folder; default `agent.safety.files.config_dir()`.

    Returns:
        The path of the written file (also when it already held exactly this content).

    Raises:
        UnsafeConfigError: a refused group, name, base or mod (one line naming it); nothing
            was written.
    """
    root = _root(config_dir)
    folder = _group_folder(root, group)
    _name(base, "base config name")
    _name(name, "config name")
    if name == base:
        raise UnsafeConfigError(f"name {name!r} equals base {base!r}; give the variant a new name")
    base_path = folder / f"{base}.yaml"
    if base_path.is_symlink() or not base_path.is_file():
        raise UnsafeConfigError(
            f"{group}/{base}: no such {group} config; choose one of {_options(folder)}"
        )
    target = target_path(folder, name, ".yaml", "config name")
    refuse_human_file(target)
    changes_in = _parse_mods(mods)
    base_text = base_path.read_text(encoding="utf-8")
    if base_text.lstrip().startswith("# @"):
        raise UnsafeConfigError(f"{group}/{base} has a '# @' header; choose another base")
    raw = safe_load_yaml(base_text, source=f"{group}/{base}.yaml")
    if not isinstance(raw, dict):
        raise UnsafeConfigError(f"{group}/{base}.yaml is not a mapping; choose another base")
    effective = _container(_compose([f"{group}={base}"], root, f"{group}={base}")[group])
    changes = _check_mods(group, effective, changes_in, ())
    document = _apply(raw, changes)
    text = (
        f"{GENERATED_MARKER} (tier 2): variant of {group}/{base}; do not edit by hand\n"
        + dump_yaml(document)
    )
    expected = _merged(effective, changes)
    _verify(root, group, name, text, [f"{group}={name}"], lambda cfg: cfg[group], expected)
    write_generated_file(target, text)
    return target


def compose_experiment_config(
    name: str,
    components: Mapping[str, str] | Sequence[str],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    config_dir: str | Path | None = None,
) -> Path:
    """Write `experiment/<name>.yaml`: one config per group, plus values of existing keys.

    Args:
        name: the experiment name (`exp_wide`); selected later with `experiment=<name>`.
        components: group -> config (`{"model": "cnn1d_wide", "trainer": "quick"}`), or a
            list of `"model=cnn1d_wide"` / `"model/cnn1d_wide"` strings.
        overrides: Hydra overrides (`["trainer.lr=0.001"]`) or `{dotted key: value}`, checked
            by `check_overrides` against the config the components compose to.
        config_dir: the Hydra config folder; default `agent.safety.files.config_dir()`.

    Returns:
        The path of the written file (also when it already held exactly this content).

    Raises:
        UnsafeConfigError, UnsafeOverrideError: a refused name, component or override;
            nothing was written.
    """
    root = _root(config_dir)
    folder = root / "experiment"
    if folder.is_symlink() or not folder.is_dir():
        raise UnsafeConfigError(f"{root} has no experiment folder; check config_dir")
    _name(name, "experiment name")
    target = target_path(folder, name, ".yaml", "experiment name")
    refuse_human_file(target)
    selections = _components(components, root)
    base_overrides = [f"{g}={o}" for g, o in selections.items()]
    base_cfg = _compose(base_overrides, root, " ".join(base_overrides) or "the default config")
    checked = check_overrides(_override_list(overrides), base=base_cfg)
    if any(c.is_group for c in checked):
        raise UnsafeConfigError(
            f"{next(c.text for c in checked if c.is_group)}: select configs through "
            "components, not overrides"
        )
    if not selections and not checked:
        raise UnsafeConfigError("an experiment must select a config or set a value; got neither")
    body = _nested({c.key: c.value for c in checked})
    text = _experiment_text(name, selections, body)
    expected = _merged(_container(base_cfg), body)
    _verify(root, "experiment", name, text, [f"experiment={name}"], lambda cfg: cfg, expected)
    wrote = write_generated_file(target, text)
    try:
        _check_composed(_compose([f"experiment={name}"], root, f"experiment={name}"))
    except SafetyError:
        if wrote:
            target.unlink(missing_ok=True)
        raise
    return target


def _nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """{"trainer.lr": 0.1} -> {"trainer": {"lr": 0.1}}."""
    body: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return body


def _experiment_text(name: str, selections: Mapping[str, str], body: Mapping[str, Any]) -> str:
    """The experiment file: package header, marker, defaults list, body."""
    described = ", ".join(f"{g}={o}" for g, o in selections.items()) or "the default config"
    document: dict[str, Any] = {}
    if selections:
        document["defaults"] = [{f"override /{g}": o} for g, o in selections.items()]
    document.update(body)
    return (
        f"{PACKAGE_HEADER}\n{GENERATED_MARKER} (tier 2): experiment {name} = {described}; "
        "do not edit by hand\n" + dump_yaml(document)
    )


# --- arguments ----------------------------------------------------------------------------


def _root(config_dir: str | Path | None) -> Path:
    root = Path(config_dir).expanduser().resolve() if config_dir else default_config_dir()
    if not (root / "config.yaml").is_file():
        raise UnsafeConfigError(f"{root} is not a Hydra config folder (no config.yaml)")
    return root


def _name(value: object, what: str) -> str:
    return check_name(value, what)


def _group_folder(root: Path, group: object) -> Path:
    if group not in TIER2_GROUPS:
        raise UnsafeConfigError(
            f"group must be one of {', '.join(TIER2_GROUPS)}, got {group!r}; "
            "experiments are written with compose_experiment_config"
        )
    folder = root / str(group)
    if folder.is_symlink() or not folder.is_dir() or folder.resolve().parent != root:
        raise UnsafeConfigError(f"{folder} is not a config group folder; check config_dir")
    return folder


def _options(folder: Path) -> str:
    return ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "(none)"


def _parse_mods(mods: Any) -> Mapping[str, Any]:
    if isinstance(mods, str):
        mods = safe_load_yaml(mods, source="mods")
    elif hasattr(mods, "_metadata"):  # an OmegaConf DictConfig: keep interpolations as text
        from omegaconf import OmegaConf

        mods = OmegaConf.to_container(mods, resolve=False)
    if not isinstance(mods, Mapping) or not mods:
        raise UnsafeConfigError(
            f"mods must be a non-empty mapping of existing keys to new values, got "
            f"{type(mods).__name__} {_short(mods)}; e.g. {{'width': 32}}"
        )
    return mods


def _components(components: Any, root: Path) -> dict[str, str]:
    """group -> config, in TIER2_GROUPS order, each checked to exist."""
    if isinstance(components, Mapping):
        pairs = [(g, o) for g, o in components.items()]
    elif isinstance(components, Sequence) and not isinstance(components, str | bytes):
        pairs = [_split_component(item) for item in components]
    else:
        raise UnsafeConfigError(
            f"components must be a mapping or a list such as ['model=cnn1d'], got "
            f"{type(components).__name__} {_short(components)}"
        )
    selected: dict[str, str] = {}
    for group, option in pairs:
        folder = _group_folder(root, group)
        if group in selected:
            raise UnsafeConfigError(f"components: {group} is selected twice; select it once")
        _name(option, f"{group} config name")
        if (folder / f"{option}.yaml").is_symlink() or not (folder / f"{option}.yaml").is_file():
            close = difflib.get_close_matches(option, _options(folder).split(", "), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UnsafeConfigError(
                f"components: {group}={option}: no such {group} config; {hint}"
                f"choose one of {_options(folder)}"
            )
        selected[group] = option
    return {g: selected[g] for g in TIER2_GROUPS if g in selected}


def _split_component(item: Any) -> tuple[str, str]:
    if isinstance(item, str):
        for sep in ("=", "/"):
            if sep in item:
                group, option = item.split(sep, 1)
                return group, option
    raise UnsafeConfigError(
        f"components: each item must be 'group=config' or 'group/config', got {_short(item)}; "
        "e.g. 'model=cnn1d'"
    )


def _override_list(overrides: Any) -> Any:
    if not isinstance(overrides, Mapping):
        return overrides  # check_overrides refuses a str and non-str items itself
    out = []
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise UnsafeConfigError(f"override keys must be dotted strings, got {key!r}")
        try:
            out.append(f"{key}={format_value(value)}")
        except SafetyError as e:
            raise UnsafeOverrideError(f"{key}={_short(value)}: {e}") from e
    return out


# --- mods ---------------------------------------------------------------------------------


def _check_mods(
    group: str, effective: Mapping[str, Any], mods: Mapping[str, Any], path: tuple[str, ...]
) -> dict[str, Any]:
    """The normalised changes, or a refusal naming `<group>.<path>`."""
    changes: dict[str, Any] = {}
    for key, new in mods.items():
        parent = ".".join((group, *path))
        _check_mod_key(parent, key, top=not path)
        dotted = f"{parent}.{key}"
        if key not in effective:
            settable = [str(k) for k in effective if not str(k).startswith("_")]
            close = difflib.get_close_matches(key, settable, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "check the spelling"
            raise UnsafeConfigError(
                f"mods: {dotted} does not exist in the base config (variants may only change "
                f"existing keys; new hyperparameters need a new model); {hint}"
            )
        old = effective[key]
        if isinstance(old, Mapping) != isinstance(new, Mapping):
            was = "a mapping" if isinstance(old, Mapping) else "a single value"
            raise UnsafeConfigError(
                f"mods: {dotted}={_short(new)}: replacing {was} with {_kind(new)} is not allowed; "
                + ("set its fields one by one" if isinstance(old, Mapping) else "give one value")
            )
        if isinstance(new, Mapping):
            if not new:
                raise UnsafeConfigError(f"mods: {dotted}: an empty mapping changes nothing")
            changes[key] = _check_mods(group, old, new, (*path, key))
            continue
        try:
            changes[key] = check_value(dotted, new, old)
        except SafetyError as e:
            raise UnsafeConfigError(f"mods: {e}") from e
    return changes


def _check_mod_key(parent: str, key: object, *, top: bool) -> None:
    dotted = f"{parent}.{key}"
    if isinstance(key, str) and (key in INSTANTIATE_KEYS or key.startswith("_")):
        raise UnsafeConfigError(
            f"mods: {dotted}: {key} cannot be set, changed or removed (a variant always "
            "instantiates its base's _target_); change hyperparameters only"
        )
    if not isinstance(key, str) or not _MOD_KEY.fullmatch(key):
        text = key if isinstance(key, str) else ""
        why = (
            "merge keys (<<) are not allowed"
            if text == "<<"
            else "interpolations are not allowed in keys"
            if "${" in text
            else "dotted keys are not allowed, nest them: {'a': {'b': 1}}"
            if "." in text
            else "keys must be plain identifiers (letters, digits, _)"
        )
        raise UnsafeConfigError(f"mods: key {_short(key)} under {parent}: {why}")
    if top and key in ("defaults", "hydra"):
        raise UnsafeConfigError(
            f"mods: {dotted}: the {key} list/settings of a config cannot be changed; "
            "select configs with components of an experiment"
        )


def _apply(raw: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`raw` (the base file's own data) with `changes` written in; inherited keys appended."""
    out = copy.deepcopy(raw)
    for key, value in changes.items():
        if isinstance(value, Mapping):
            current = out.get(key)
            out[key] = _apply(current if isinstance(current, dict) else {}, value)
        else:
            out[key] = value
    return out


# --- composing ----------------------------------------------------------------------------


def _compose(overrides: list[str], root: Path, what: str) -> Any:
    from biosignals.train import compose_config

    try:
        return compose_config(overrides, root)
    except Exception as e:  # Hydra and OmegaConf raise many types; all mean "does not compose"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UnsafeConfigError(f"{what} does not compose: {first}; fix the config") from e


def _container(cfg: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=False)


def _merged(base: Any, changes: Mapping[str, Any]) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.merge(base, changes), resolve=False)


def _check_composed(cfg: Any) -> None:
    """The `_target_` allowlist over a composed config, and every value resolvable."""
    from omegaconf import OmegaConf

    from biosignals.config_safety import check_targets

    try:
        check_targets(cfg)
    except ValueError as e:
        raise UnsafeConfigError(f"the composed config is refused: {e}") from e
    for key in TIER2_GROUPS:
        try:
            OmegaConf.to_container(cfg[key], resolve=True)
        except Exception as e:  # an interpolation that does not resolve
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UnsafeConfigError(f"{key} does not resolve: {first}; fix the config") from e


def _verify(
    root: Path, group: str, name: str, text: str, overrides: list[str], part: Any, expected: Any
) -> None:
    """Compose `text` as `<group>/<name>.yaml` in a scratch copy of `root`: it must give
    exactly `expected` and pass `_check_composed`. Writes nothing under `root`."""
    with tempfile.TemporaryDirectory(prefix="agentune-verify-") as scratch:
        copy_root = Path(scratch) / "configs"
        shutil.copytree(root, copy_root, symlinks=True, ignore=shutil.ignore_patterns(".*"))
        path = copy_root / group / f"{name}.yaml"
        path.unlink(missing_ok=True)
        path.write_text(text, encoding="utf-8")
        cfg = _compose(overrides, copy_root, f"{group}/{name}")
        if _container(part(cfg)) != expected:
            raise UnsafeConfigError(
                f"{group}/{name}: Hydra reads the written config differently than intended; "
                "simplify the change"
            )
        _check_composed(cfg)


def _kind(value: Any) -> str:
    return "null" if value is None else "a mapping" if isinstance(value, Mapping) else "a value"


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = " ".join(repr(value).split())
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
