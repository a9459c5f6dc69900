"""The one translation layer every panel string goes through.

The English text is its own key: ``t("Channel {name} saved", name=name)``. A reader sees the
English where the string is used, a missing translation falls back to it instead of to a
key nobody can read, and ``tests/ui/test_i18n.py`` finds every key by reading the code.
Catalogs are JSON maps from English to the language (``assets/locale/<code>/*.json``,
merged), so translators touch no Python.

The language belongs to a page, not to the process: two browser tabs of one gateway may
read it in two languages. A page starts in the system's language (``LC_ALL``,
``LC_MESSAGES``, ``LANG``, then the platform locale) and Settings can change it; the choice
is remembered in the client's preferences beside the theme.
"""

from __future__ import annotations

import json
import locale
import os
import weakref
from functools import cache
from pathlib import Path
from typing import Any

import flet as ft

LOCALE_DIR = Path(__file__).resolve().parent.parent / "assets" / "locale"
ENGLISH = "en"
LANGUAGES: dict[str, str] = {"en": "English", "zh-CN": "简体中文"}
"""The languages a user can choose, each named in itself (a person who cannot read the
current language still finds their own)."""

_page_languages: dict[int, str] = {}
"""Chosen languages by ``id(page)`` (a Flet page is not hashable); an entry goes with its page."""


def system_language(environ: dict[str, str] | None = None) -> str:
    """The supported language closest to the system's locale; English when none is."""
    env = os.environ if environ is None else environ
    names = [env.get(var, "") for var in ("LC_ALL", "LC_MESSAGES", "LANG")]
    if environ is None:
        names.append(locale.getlocale()[0] or "")
    for name in names:
        code = supported(name)
        if code is not None:
            return code
    return ENGLISH


def supported(name: str | None) -> str | None:
    """The supported language a locale or language name means (``zh_CN.UTF-8``,
    ``zh-Hans``, ``en_GB``), or None when it means none of them (``C``, ``POSIX``, ``fr``)."""
    if not name:
        return None
    base = name.split(".")[0].split("@")[0].replace("_", "-").lower()
    if base.startswith("zh") and not base.startswith(("zh-tw", "zh-hk", "zh-mo", "zh-hant")):
        return "zh-CN"
    if base == "en" or base.startswith("en-"):
        return ENGLISH
    return None


def set_language(page: Any, code: str) -> None:
    """Show ``page`` in ``code`` from the next string built; unknown codes mean English."""
    if id(page) not in _page_languages:
        weakref.finalize(page, _page_languages.pop, id(page), None)
    _page_languages[id(page)] = code if code in LANGUAGES else ENGLISH


def language(page: Any | None = None) -> str:
    """The language of ``page`` (the current Flet page when none is given)."""
    page = page if page is not None else _current_page()
    if page is not None:
        chosen = _page_languages.get(id(page))
        if chosen is not None:
            return chosen
    return system_language()


def t(text: str, /, **values: object) -> str:
    """``text`` in the current page's language, with ``values`` filled in
    (``str.format`` fields, so a translation may reorder them)."""
    translated = catalog(language()).get(text, text) if text else text
    return translated.format(**values) if values else translated


@cache
def catalog(code: str) -> dict[str, str]:
    """Every translation of ``code``, English keys to text; empty for English."""
    if code == ENGLISH:
        return {}
    merged: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / code).glob("*.json")):
        merged.update(json.loads(path.read_text("utf-8")))
    return merged


def _current_page() -> Any | None:
    try:
        return ft.context.page
    except RuntimeError:
        return None
