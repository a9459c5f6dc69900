"""The app's run-time settings from ``flet.toml`` next to ``main.py``.

Kept apart from the gateway's YAML config: this file is about the window and
how the UI is served, and it must load on the Android monitor (tomllib only).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["APP_DIR", "SETTINGS_FILE", "AppSettings", "SettingsError", "load_settings"]

APP_DIR = Path(__file__).resolve().parent.parent
"""The Flet app directory (the repository root): where main.py, flet.toml and assets/ live."""

SETTINGS_FILE = APP_DIR / "flet.toml"

_THEME_MODES = ("system", "light", "dark")
_APP_MODES = ("local", "monitor")


class SettingsError(ValueError):
    """flet.toml holds a value the app cannot use; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class AppSettings:
    window_width: int = 1280
    window_height: int = 820
    window_min_width: int = 420
    window_min_height: int = 560
    theme_mode: str = "system"
    web_host: str = "127.0.0.1"
    web_port: int = 8550
    mode: str = "local"


def load_settings(path: Path = SETTINGS_FILE) -> AppSettings:
    """Read ``path``; a missing file means defaults, a wrong value raises SettingsError."""
    if not path.exists():
        return AppSettings()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from exc
    reader = _Reader(path, data)
    defaults = AppSettings()
    return AppSettings(
        window_width=reader.positive_int("window", "width", defaults.window_width),
        window_height=reader.positive_int("window", "height", defaults.window_height),
        window_min_width=reader.positive_int("window", "min_width", defaults.window_min_width),
        window_min_height=reader.positive_int("window", "min_height",
                                              defaults.window_min_height),
        theme_mode=reader.choice("theme", "mode", _THEME_MODES, defaults.theme_mode),
        web_host=reader.string("web", "host", defaults.web_host),
        web_port=reader.positive_int("web", "port", defaults.web_port),
        mode=reader.choice("app", "mode", _APP_MODES, defaults.mode),
    )


class _Reader:
    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def _get(self, table: str, key: str, default: object) -> object:
        section = self.data.get(table, {})
        if not isinstance(section, dict):
            raise SettingsError(f"{self.path}: [{table}] must be a table")
        return section.get(key, default)

    def positive_int(self, table: str, key: str, default: int) -> int:
        value = self._get(table, key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SettingsError(f"{self.path}: {table}.{key} must be a positive integer, "
                                f"not {value!r}")
        return value

    def string(self, table: str, key: str, default: str) -> str:
        value = self._get(table, key, default)
        if not isinstance(value, str) or not value:
            raise SettingsError(f"{self.path}: {table}.{key} must be a non-empty string")
        return value

    def choice(self, table: str, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self._get(table, key, default)
        if value not in choices:
            raise SettingsError(f"{self.path}: {table}.{key} must be one of "
                                f"{', '.join(choices)}, not {value!r}")
        return str(value)
