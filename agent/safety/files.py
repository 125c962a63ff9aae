"""Where agent-written files go, and how they are written: inside their folder, atomically,
never over a human-authored file.

Every file the agent writes (tier-2 configs, tier-3 model code and its config) starts with a
line beginning with `GENERATED_MARKER`. A file without it is human-authored and is never
replaced; a generated file is replaced only by identical content (writing the same thing
twice is a no-op), so an arm that trains a generated config never sees it change.

Folders: `config_dir()` is `$AGENTUNE_CONFIG_DIR` or the project's `configs/`;
`generated_dir()` is `$AGENTUNE_GENERATED_DIR` or the project's `generated_models/`.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from agent.safety.errors import UnsafeConfigError
from agent.safety.policy import NAME_PATTERN

__all__ = [
    "CONFIG_DIR_ENV",
    "GENERATED_DIR_ENV",
    "GENERATED_MARKER",
    "PACKAGE_HEADER",
    "check_name",
    "config_dir",
    "generated_dir",
    "is_generated_text",
    "refuse_human_file",
    "target_path",
    "write_generated_file",
]

CONFIG_DIR_ENV = "AGENTUNE_CONFIG_DIR"  # the same variable as biosignals.train.config_dir()
GENERATED_DIR_ENV = "AGENTUNE_GENERATED_DIR"
GENERATED_MARKER = "# agentune-generated"
PACKAGE_HEADER = "# @package _global_"
"""Hydra reads an experiment's package header only from the file's leading `# @` lines, so a
generated experiment starts with it and carries the marker on its second line."""
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def config_dir() -> Path:
    """The Hydra config folder agent-written configs go into (absolute)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    root = Path(override).expanduser() if override else _PROJECT_ROOT / "configs"
    return root.resolve()


def generated_dir() -> Path:
    """The folder generated model modules go into (absolute)."""
    override = os.environ.get(GENERATED_DIR_ENV)
    root = Path(override).expanduser() if override else _PROJECT_ROOT / "generated_models"
    return root.resolve()


def check_name(name: object, what: str = "name") -> str:
    """`name` if it matches `^[a-z][a-z0-9_]{0,63}$`, else `UnsafeConfigError`.

    Args:
        name: the proposed name (a file stem).
        what: how the message calls it ("config name", "model name").
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UnsafeConfigError(
            f"{what} must match ^[a-z][a-z0-9_]{{0,63}}$ (lower-case letters, digits and _, "
            f"starting with a letter), got {name!r}; try e.g. 'cnn1d_wide'"
        )
    return name


def target_path(directory: Path, name: str, suffix: str, what: str = "name") -> Path:
    """The file `<directory>/<name><suffix>`, checked to stay inside `directory`.

    The name is checked first (`check_name`); the resolved path must still lie directly in
    the resolved folder, and must not be a symbolic link (a link could point anywhere).

    Raises:
        UnsafeConfigError: a bad name, a path that leaves the folder, or a link.
    """
    check_name(name, what)
    folder = directory.resolve()
    path = folder / f"{name}{suffix}"
    if path.is_symlink():
        raise UnsafeConfigError(
            f"{path} is a symbolic link; agent-written files are never written through links, "
            "choose another name"
        )
    if path.resolve().parent != folder:
        raise UnsafeConfigError(f"{what} {name!r} leaves {folder}; choose a plain name")
    return path


def is_generated_text(text: str) -> bool:
    """Whether file content was written by the safety layer: the first line is the marker, or
    (experiments) the package header followed by the marker."""
    return text.startswith(GENERATED_MARKER) or text.startswith(
        f"{PACKAGE_HEADER}\n{GENERATED_MARKER}"
    )


def refuse_human_file(path: Path) -> None:
    """Fail fast (before any expensive check) when a human-authored file holds `path`.

    Raises:
        UnsafeConfigError: `path` exists and is not a generated file (or cannot be read).
    """
    if not (path.exists() or path.is_symlink()):
        return
    try:
        human = not is_generated_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        human = True
    if human:
        raise UnsafeConfigError(
            f"{path.parent.name}/{path.name} is human-authored and is never replaced; choose "
            "another name"
        )


def write_generated_file(path: Path, text: str) -> bool:
    """Write `text` to `path` atomically unless that would replace something else.

    Args:
        path: from `target_path`.
        text: the content; must pass `is_generated_text`.

    Returns:
        True when the file was written, False when it already held exactly `text`.

    Raises:
        UnsafeConfigError: `path` exists with other content (human-authored, or a generated
            file with different content): nothing is written.
        ValueError: `text` lacks the marker (a bug in the caller).
    """
    if not is_generated_text(text):
        raise ValueError(f"generated files must start with {GENERATED_MARKER!r}")
    if path.exists() or path.is_symlink():
        try:
            existing = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            existing = None
        if existing == text:
            return False
        who = "generated" if existing is not None and is_generated_text(existing) else "human"
        raise UnsafeConfigError(
            f"{path.name} already exists in {path.parent} ({who}-authored, different content) "
            "and is never overwritten; choose another name"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        # link() fails if the name appeared meanwhile: never replace a file a human just wrote
        os.link(tmp, path)
    except FileExistsError as e:
        raise UnsafeConfigError(
            f"{path.name} appeared in {path.parent} while writing; choose another name"
        ) from e
    finally:
        if tmp.exists():
            tmp.unlink()
    return True
