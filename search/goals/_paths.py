"""Where campaign files and Hydra configs live, and how a path is shown in a message.

Both the loader and the composition check need the default config dir, and the loader calls
the composition check, so the directories live here rather than in either of them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CAMPAIGNS_DIR_ENV",
    "CONFIGS_DIR_ENV",
    "default_campaigns_dir",
    "default_configs_dir",
    "display",
]

CAMPAIGNS_DIR_ENV = "AGENTUNE_CAMPAIGNS_DIR"
CONFIGS_DIR_ENV = "AGENTUNE_CONFIG_DIR"  # the same variable as biosignals.train.config_dir()
_REPO_ROOT = Path(__file__).resolve().parents[2]


def default_configs_dir() -> Path:
    """The Hydra config dir: env AGENTUNE_CONFIG_DIR, else `<repo>/configs` (as biosignals)."""
    env = os.environ.get(CONFIGS_DIR_ENV)
    return Path(env).expanduser().resolve() if env else _REPO_ROOT / "configs"


def default_campaigns_dir() -> Path:
    """The campaigns dir: env AGENTUNE_CAMPAIGNS_DIR, else `<repo>/campaigns`."""
    env = os.environ.get(CAMPAIGNS_DIR_ENV)
    return Path(env).expanduser().resolve() if env else _REPO_ROOT / "campaigns"


def display(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
