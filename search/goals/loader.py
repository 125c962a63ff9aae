"""Reading campaign files: `load_goal("file:goal")`, `list_goals`, `scan_goals`.

A campaign file holds exactly one key, `goals:`, mapping goal names to goals. Loading reads
the YAML, validates each goal with `CampaignGoal` and turns pydantic's errors into one
`CampaignError` whose message is a line per problem:
`<file>: goals.<name>.<key path>: <rule>, got <value>[; allowed: ...]`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from search.goals._base import ERR_AT, CampaignError, short
from search.goals._paths import default_campaigns_dir, default_configs_dir, display
from search.goals.compose import check_goal_composes
from search.goals.schema import CampaignGoal

__all__ = ["list_goals", "load_campaign_file", "load_goal", "scan_goals"]

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _format_loc(parts: Sequence[int | str]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int) or (isinstance(part, str) and part.startswith("[")):
            text += f"[{part}]" if isinstance(part, int) else part
        else:
            text += f".{part}" if text else str(part)
    return text


def _format_errors(error: ValidationError, where: str, prefix: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for item in error.errors():
        ctx = item.get("ctx") or {}
        loc: list[int | str] = [*prefix, *item["loc"]]
        extra = ctx.get(ERR_AT)
        if extra:
            if str(extra).startswith("space."):
                loc = [*prefix, *str(extra).split(".", 1)]
            else:
                loc.append(str(extra))
        msg = str(item["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if item["type"] == "missing":
            msg = "required key is missing; see campaigns/README.md"
        elif item["type"] not in ("campaign", "value_error"):
            msg = msg.replace("Input should be", "must be") + f", got {short(item['input'])}"
        lines.append(f"{where}: {_format_loc(loc)}: {msg}")
    return lines


def _campaign_error(lines: list[str]) -> CampaignError:
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return CampaignError(lines[0] + more, lines)


def _read_goals(path: Path) -> dict[str, Any]:
    where = display(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CampaignError(f"{where}: {at}not valid YAML ({problem})") from e
    except OSError as e:
        raise CampaignError(f"{where}: cannot read the file ({e.strerror})") from e
    if not isinstance(raw, Mapping) or set(raw) != {"goals"}:
        keys = sorted(map(str, raw)) if isinstance(raw, Mapping) else short(raw)
        raise CampaignError(
            f"{where}: a campaign file holds exactly one top-level key, goals, got {keys}; "
            "allowed: goals (a mapping of goal names to goals)"
        )
    goals = raw["goals"]
    if not isinstance(goals, Mapping) or not goals:
        raise CampaignError(f"{where}: goals: must map goal names to goals, got {short(goals)}")
    for name in goals:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise CampaignError(
                f"{where}: goals.{name}: goal names are letters, digits, _ and -, starting with "
                f"a letter, got {name!r}"
            )
    return dict(goals)


def _validate_goal(path: Path, name: str, raw: Any, configs_dir: Path | None) -> CampaignGoal:
    where = display(path)
    if isinstance(raw, Mapping):
        for internal in ("name", "source"):
            if internal in raw:
                raise CampaignError(
                    f"{where}: goals.{name}.{internal}: set by the loader (the goal's key and "
                    f"file), got {short(raw[internal])}; remove it"
                )
        data: Any = {**raw, "name": name, "source": path}
    else:
        data = raw
    try:
        return CampaignGoal.model_validate(data, context={"configs_dir": configs_dir})
    except ValidationError as e:
        # not chained: pydantic's text repeats the input, which may hold a pasted API key
        raise _campaign_error(_format_errors(e, where, ["goals", name])) from None


def load_campaign_file(
    path: str | Path, *, configs_dir: Path | Literal["default"] | None = "default"
) -> dict[str, CampaignGoal]:
    """Every goal of one campaign file, validated, by name (file order).

    Args:
        path: the YAML file.
        configs_dir: Hydra config dir to check experiment/model names against; "default" uses
            `default_configs_dir()`, None skips those checks.

    Raises:
        CampaignError: the file is missing, not YAML, or any goal is invalid.
    """
    path = Path(path)
    cdir = default_configs_dir() if configs_dir == "default" else configs_dir
    goals = _read_goals(path)
    return {name: _validate_goal(path, name, raw, cdir) for name, raw in goals.items()}


def _campaign_files(campaigns_dir: Path) -> list[Path]:
    return sorted(campaigns_dir.glob("*.yaml"))


def _resolve_file(file_part: str, campaigns_dir: Path, spec: str) -> Path:
    if file_part.endswith((".yaml", ".yml")) or "/" in file_part or os.sep in file_part:
        path = Path(file_part).expanduser()
        if not path.is_file():
            raise CampaignError(f"{spec}: campaign file {file_part!r} does not exist")
        return path
    path = campaigns_dir / f"{file_part}.yaml"
    if not path.is_file():
        available = [p.stem for p in _campaign_files(campaigns_dir)]
        close = difflib.get_close_matches(file_part, available, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CampaignError(
            f"{spec}: no campaign file {file_part!r} in {display(campaigns_dir)}{hint}; "
            f"allowed: {', '.join(available) or '(none)'}"
        )
    return path


def load_goal(
    spec: str,
    campaigns_dir: Path | None = None,
    *,
    configs_dir: Path | Literal["default"] | None = "default",
    compose: bool = False,
) -> CampaignGoal:
    """Load and validate one goal addressed as `file:goal`.

    Args:
        spec: `file:goal` (`mitbih:aami3_quick`), where file is a name in `campaigns_dir`
            (without `.yaml`) or a path to a YAML file (`./my.yaml:fast`).
        campaigns_dir: where campaign files live; default `default_campaigns_dir()`.
        configs_dir: Hydra config dir to check experiment/model names against; "default" uses
            `default_configs_dir()`, None skips those checks.
        compose: also run `check_goal_composes` (about 0.1 s per composition; needs
            configs_dir).

    Raises:
        CampaignError: a malformed spec, an unknown file or goal (the message lists what
            exists), or an invalid goal (the message names file, key, value and what is
            allowed).
    """
    file_part, sep, goal_name = spec.rpartition(":")
    if not sep or not file_part or not goal_name:
        raise CampaignError(
            f"a goal is addressed as file:goal (e.g. mitbih:aami3_quick), got {spec!r}; "
            "`agentune list` shows them"
        )
    cdir = Path(campaigns_dir) if campaigns_dir is not None else default_campaigns_dir()
    path = _resolve_file(file_part, cdir, spec)
    goals = _read_goals(path)
    if goal_name not in goals:
        close = difflib.get_close_matches(goal_name, list(goals), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CampaignError(
            f"{display(path)}: goals.{goal_name}: no such goal{hint}, got {goal_name!r}; "
            f"allowed: {', '.join(goals)}"
        )
    resolved = default_configs_dir() if configs_dir == "default" else configs_dir
    goal = _validate_goal(path, goal_name, goals[goal_name], resolved)
    if compose:
        if resolved is None:
            raise CampaignError(f"{spec}: compose=True needs a configs_dir, got None")
        check_goal_composes(goal, resolved)
    return goal


def list_goals(campaigns_dir: Path | None = None) -> list[tuple[str, str]]:
    """`(file:goal, description)` for every goal in every campaign file, sorted by file.

    Each file is validated (without the configs-dir checks, to stay fast).

    Raises:
        CampaignError: a campaign file that does not load (the first one).
    """
    goals, errors = scan_goals(campaigns_dir)
    if errors:
        raise errors[0]
    return goals


def scan_goals(
    campaigns_dir: Path | None = None,
) -> tuple[list[tuple[str, str]], list[CampaignError]]:
    """Like `list_goals`, but a file that does not load is reported, not raised.

    Returns:
        `(file:goal, description)` of every goal of the files that load, and one
        `CampaignError` per file that does not (its message names the file and the reason).
    """
    cdir = Path(campaigns_dir) if campaigns_dir is not None else default_campaigns_dir()
    out: list[tuple[str, str]] = []
    errors: list[CampaignError] = []
    for path in _campaign_files(cdir):
        try:
            goals = load_campaign_file(path, configs_dir=None)
        except CampaignError as e:
            errors.append(e)
            continue
        out.extend((f"{path.stem}:{name}", goal.description) for name, goal in goals.items())
    return out, errors
