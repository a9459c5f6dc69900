"""Where pyclaw keeps its files. Never the current directory: ``flet run`` changes it."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["default_config_path", "default_data_dir", "private_dir", "private_file"]

APP = "pyclaw"


def default_data_dir() -> Path:
    override = os.environ.get("PYCLAW_DATA_DIR")
    if override:
        return Path(override)
    flet_storage = os.environ.get("FLET_APP_STORAGE_DATA")
    if flet_storage:
        return Path(flet_storage)
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def default_config_path() -> Path:
    override = os.environ.get("PYCLAW_CONFIG")
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / "pyclaw.yaml"


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
"""The data directory holds every message and the secrets file: other local users of the
machine must not read it, whatever their umask made of it."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed, and make it ours alone (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if os.name == "posix":
        os.chmod(path, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if it is missing, and make it readable by us alone (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    os.close(fd)
    if os.name == "posix":
        os.chmod(path, PRIVATE_FILE)
    return path
