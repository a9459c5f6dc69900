"""Where pyclaw keeps its files. Never the current directory: ``flet run`` changes it."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["default_config_path", "default_data_dir"]

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
