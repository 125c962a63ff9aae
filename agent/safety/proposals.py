"""The proposal check: every `Proposal` passes it before it becomes an arm of the searcher.

`ProposalCheck()(proposal)` returns the proposal as it will be trained (canonical override
strings; for tier 3 the registered model's source and config filled in) or raises a
`SafetyError` whose one-line message the searcher records in the history.

Two modes:

* **Structural** (`ProposalCheck()`, what a drop-in `AgentSearcher` uses): overrides, initial
  params and search-space keys follow the override policy (`agent.safety.overrides`) without
  a base config, and tier-3 `model_source` passes the static code check.
* **Campaign** (`ProposalCheck(config_dir=..., experiment=..., base_overrides=...)`, what
  `agentune run` uses): in addition the overrides are typed against the campaign's composed
  base config, group selections must name existing configs, a tier-3 proposal is tied to a
  registered generated model (its code is registered, smoke test included, when it arrives
  as bare `model_source`), and the whole trial config is composed and target-checked, so a
  bad proposal is refused once with a reason instead of failing trials.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.proposer import Proposal
from agent.safety.errors import SafetyError, UnsafeModelError, UnsafeOverrideError
from agent.safety.files import GENERATED_MARKER

__all__ = ["ProposalCheck", "check_model_source", "strip_generated_header"]

logger = logging.getLogger(__name__)

_CAMPAIGN_GROUPS = ("model", "trainer")  # the dataset is built once by the driver
_ABSENT = object()


def check_model_source(source: object) -> str:
    """`source` if it passes the static code check, else `UnsafeModelError` with every reason."""
    from agent.safety.code_policy import require_valid_model_source

    if not isinstance(source, str) or not source.strip():
        raise UnsafeModelError("a tier-3 proposal needs model_source: the generated model's code")
    require_valid_model_source(source)
    return source


def strip_generated_header(source: str) -> str:
    """The code of a generated module without the header lines `register_generated_model`
    writes (so the registered file and the code the agent sent compare equal)."""
    lines = source.splitlines(keepends=True)
    while (
        lines
        and lines[0].startswith("#")
        and (lines[0].startswith(GENERATED_MARKER) or lines[0].startswith("# and sandboxed"))
    ):
        lines.pop(0)
    return "".join(lines)


def _space_candidates(key: str, spec: Any) -> list[Any]:
    """The values a search-space entry can produce that the policy must type-check: the
    bounds of a numeric range, every choice of a categorical."""
    choices = getattr(spec, "choices", None)
    if choices is None and isinstance(spec, Mapping):
        choices = spec.get("values")
    if choices is not None:
        return list(choices)
    low = getattr(spec, "low", None) if not isinstance(spec, Mapping) else spec.get("low")
    high = getattr(spec, "high", None) if not isinstance(spec, Mapping) else spec.get("high")
    if low is None or high is None:
        raise UnsafeOverrideError(
            f"space[{key!r}] must be a numeric range or a choice (a spec dict such as "
            f"{{'type': 'loguniform', 'low': 1e-4, 'high': 1e-2}}), got {spec!r}"
        )
    return [low, high]


def _slug(name: str, source: str) -> str:
    """A generated-model name for a proposal: its name, lower-cased, plus a hash of the code."""
    stem = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "model"
    if not stem[0].isalpha():
        stem = f"m_{stem}"
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:8]
    return f"{stem[:48]}_{digest}"


@dataclass(frozen=True)
class ProposalCheck:
    """Checks one proposal (see the module docstring); picklable, so it travels with the
    searcher.

    Attributes:
        config_dir: the Hydra config folder; None: structural checks only.
        experiment: the campaign's experiment (`mitbih_aami3_quick`).
        base_overrides: the goal's fixed overrides (trusted: written by the user).
        groups: config groups proposals may change (campaign default: model and trainer; the
            campaign's dataset is built once and shipped to every trial).
        generated_dir: where tier-3 code is registered (default `generated_models/`).
        smoke_dims: in_channels, input_length, num_classes and num_features (side features
            per window; optional, default 9) of the campaign's data, for the smoke test of
            tier-3 code registered here.
        register_sources: register tier-3 proposals that carry bare `model_source`
            (campaign mode); False refuses them.
        space_keys: the campaign's own search-space keys (campaign mode): those the arm's
            config does not have (a `model.width` for a model without one) are added to the
            proposal's `drop_params`, so its trials never set a key that does not exist.
    """

    config_dir: str | None = None
    experiment: str | None = None
    base_overrides: tuple[str, ...] = ()
    groups: tuple[str, ...] | None = None
    generated_dir: str | None = None
    smoke_dims: Mapping[str, int] = field(default_factory=dict)
    register_sources: bool = True
    space_keys: tuple[str, ...] = ()

    def _groups(self) -> tuple[str, ...]:
        from agent.safety.overrides import DEFAULT_GROUPS

        if self.groups is not None:
            return tuple(self.groups)
        return _CAMPAIGN_GROUPS if self.config_dir is not None else tuple(DEFAULT_GROUPS)

    def __call__(self, proposal: Proposal) -> Proposal:
        """The checked proposal (see the module docstring).

        Raises:
            SafetyError: the first rule broken, as one line (UnsafeOverrideError,
                UnsafeConfigError or UnsafeModelError).
        """
        if self.config_dir is None:
            return self._structural(proposal)
        return self._campaign(proposal)

    # ------------------------------------------------------------------ structural

    def _structural(self, p: Proposal) -> Proposal:
        from agent.safety.overrides import check_overrides, check_param, check_space_key

        groups = self._groups()
        checked = check_overrides(list(p.overrides), groups=groups)
        for key, value in dict(p.params).items():
            check_param(str(key), value, groups=groups)
        for key, spec in dict(p.space or {}).items():
            check_space_key(str(key), groups=groups)
            for value in _space_candidates(str(key), spec):
                check_param(str(key), value, groups=groups)
        if p.tier == 3:
            check_model_source(p.model_source)
        elif p.model_source is not None:
            raise UnsafeModelError("only a tier-3 proposal may carry model_source")
        return replace(p, overrides=[o.text for o in checked])

    # ------------------------------------------------------------------ campaign

    def _campaign(self, p: Proposal) -> Proposal:
        from agent.safety.overrides import (
            check_overrides,
            check_param,
            check_space_key,
            group_options_in,
        )

        assert self.config_dir is not None
        groups = self._groups()
        options = group_options_in(Path(self.config_dir))
        checked = check_overrides(list(p.overrides), groups=groups, group_options=options)
        selections = [o for o in checked if o.is_group]
        model = next((str(o.value) for o in selections if o.key == "model"), None)
        registered: set[str] = set()
        if p.tier == 3:
            p, model, target = self._tier3(p, model)
            registered.add(target)
            options = group_options_in(Path(self.config_dir))  # the registration added one
            checked = check_overrides(list(p.overrides), groups=groups, group_options=options)
            selections = [o for o in checked if o.is_group]
        else:
            if p.model_source is not None:
                raise UnsafeModelError("only a tier-3 proposal may carry model_source")
            if model is not None and self._registration(model) is not None:
                raise UnsafeOverrideError(
                    f"model={model} is a generated (tier-3) model; propose it at tier 3"
                )
        base = self._compose([o.text for o in selections], registered)
        checked = check_overrides(
            list(p.overrides), groups=groups, base=base, group_options=options
        )
        for key, value in dict(p.params).items():
            check_param(str(key), value, groups=groups, base=base)
        for key, spec in dict(p.space or {}).items():
            check_space_key(str(key), groups=groups, base=base)
            for value in _space_candidates(str(key), spec):
                check_param(str(key), value, groups=groups, base=base)
        texts = [o.text for o in checked]
        self._compose(texts, registered)  # the whole arm config composes and its targets pass
        return replace(p, overrides=texts, drop_params=self._drops(p, base, checked))

    def _drops(self, p: Proposal, base: Any, checked: Sequence[Any]) -> list[str]:
        """`p.drop_params` plus the campaign's space keys the arm's config does not have."""
        from omegaconf import OmegaConf

        drops = list(p.drop_params)
        fixed = {o.key for o in checked}
        for key in self.space_keys:
            missing = OmegaConf.select(base, key, default=_ABSENT) is _ABSENT
            if missing and key not in drops and key not in fixed and key not in (p.space or {}):
                logger.info("proposal %r: %s does not exist in its config; not tuned", p.name, key)
                drops.append(key)
        return drops

    def _registration(self, model: str) -> Any:
        from agent.safety.models import registered_model

        assert self.config_dir is not None
        try:
            return registered_model(
                model,
                configs=Path(self.config_dir),
                generated=Path(self.generated_dir) if self.generated_dir else None,
            )
        except SafetyError:
            return None

    def _tier3(self, p: Proposal, model: str | None) -> tuple[Proposal, str, str]:
        """Tie a tier-3 proposal to a registered generated model: (proposal, name, target)."""
        if model is not None:
            reg = self._registration(model)
            if reg is None:
                raise UnsafeOverrideError(
                    f"model={model} is not a registered generated model; register the code "
                    "with register_generated_model(name, code, args) and select it with "
                    "model=<name>, or send the code as model_source without a model= override"
                )
            if p.model_source is not None and strip_generated_header(
                p.model_source
            ) != strip_generated_header(reg.source):
                raise UnsafeModelError(
                    f"model_source differs from the registered generated_models/{model}.py; "
                    "register changed code under a new name"
                )
            check_model_source(reg.source)  # the file could have been edited since
            return replace(p, model_source=reg.source, model_config=reg.config), model, reg.target
        source = check_model_source(p.model_source)
        if not self.register_sources:
            raise UnsafeModelError(
                "tier-3 code must be registered first (register_generated_model), then "
                "selected with model=<name>"
            )
        from agent.safety.models import register_generated_model

        assert self.config_dir is not None
        reg = register_generated_model(
            _slug(p.name, source),
            source,
            dims=dict(self.smoke_dims) or None,
            configs=self.config_dir,
            generated=self.generated_dir,
        )
        logger.info("proposal %r: code registered as generated model %s", p.name, reg.name)
        overrides = [f"model={reg.name}", *p.overrides]
        checked = replace(p, overrides=overrides, model_source=reg.source, model_config=reg.config)
        return checked, reg.name, reg.target

    def _compose(self, overrides: Sequence[str], registered: set[str]) -> Any:
        """The campaign config with `overrides`, target-checked; UnsafeOverrideError if not."""
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from biosignals.config_safety import UnsafeTargetError, check_targets
        from biosignals.train import compose_config

        assert self.config_dir is not None
        experiment = [f"experiment={self.experiment}"] if self.experiment else []
        try:
            cfg = compose_config([*experiment, *self.base_overrides, *overrides], self.config_dir)
        except (HydraException, OmegaConfBaseException) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UnsafeOverrideError(
                f"the proposal's config does not compose: {first}; check the override keys "
                "and config names (list_available_configs)"
            ) from e
        try:
            check_targets(cfg, registered=registered)
        except UnsafeTargetError as e:
            raise UnsafeOverrideError(str(e)) from e
        return cfg
