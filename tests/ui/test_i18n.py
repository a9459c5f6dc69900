"""Every panel string goes through ``views.i18n.t`` and has its Simplified Chinese.

Read from the code, not from a running page: each view module is parsed, every literal a
person would read (a ``Text``'s words, a label, a hint, a tooltip, a button's text) must be
a ``t(...)`` call, and every ``t("...")`` key must be in the zh-CN catalog, with the same
``{fields}``. A catalog key no code uses is stale and fails too.
"""

from __future__ import annotations

import ast
import json
import re
import string
from collections.abc import Iterator
from pathlib import Path

import flet as ft
import pytest

from views import i18n
from views.i18n import catalog, language, set_language, supported, system_language, t

VIEWS = Path(__file__).resolve().parents[2] / "views"
MODULES = sorted(p for p in VIEWS.glob("*.py") if p.name != "__init__.py")
READ_KEYWORDS = {"label", "hint_text", "helper_text", "tooltip", "text", "title",
                 "semantics_label", "error_text", "placeholder", "counter_text", "prefix_text",
                 "suffix_text", "message"}
"""Keyword arguments whose string a person reads on screen."""
TEXT_CALLS = {"Text", "Button", "TextButton", "OutlinedButton", "FilledButton",
              "ElevatedButton", "FilledTonalButton", "Tab", "SnackBar", "Chip", "Option",
              "SelectableText"}
"""Controls whose first positional string is read on screen."""
LETTERS = re.compile(r"[^\W\d_]")
NAMES = {"pyclaw"}
"""Words that are names in every language."""


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _is_readable_literal(node: ast.AST) -> bool:
    """A str literal or f-string with letters in its fixed parts (a name, a glyph or
    a number alone is not language)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value not in NAMES and bool(LETTERS.search(node.value))
    if isinstance(node, ast.BinOp):
        return _is_readable_literal(node.left) or _is_readable_literal(node.right)
    if isinstance(node, ast.IfExp):
        return _is_readable_literal(node.body) or _is_readable_literal(node.orelse)
    if isinstance(node, ast.JoinedStr):
        fixed = "".join(v.value for v in node.values
                        if isinstance(v, ast.Constant) and isinstance(v.value, str))
        return bool(LETTERS.search(fixed))
    return False


def _untranslated(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_readable_literal(node.value) and any(
                isinstance(target, ast.Attribute) and target.attr in READ_KEYWORDS | {"value"}
                for target in node.targets):
            yield node.lineno, ast.unparse(node)
        if not isinstance(node, ast.Call) or _call_name(node) == "t":
            continue
        if _call_name(node) in TEXT_CALLS and node.args and _is_readable_literal(node.args[0]):
            yield node.lineno, ast.unparse(node.args[0])
        for keyword in node.keywords:
            if keyword.arg in READ_KEYWORDS and _is_readable_literal(keyword.value):
                yield keyword.value.lineno, f"{keyword.arg}={ast.unparse(keyword.value)}"


def _keys(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and _call_name(node) == "t" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _used_keys() -> set[str]:
    return {key for path in MODULES for _, key in _keys(ast.parse(path.read_text("utf-8")))}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_every_readable_string_goes_through_t(path: Path) -> None:
    bare = list(_untranslated(ast.parse(path.read_text("utf-8"))))
    assert not bare, f"{path.name}: strings a person reads, not through t(): " + "; ".join(
        f"line {line}: {text}" for line, text in bare)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_every_key_has_its_chinese_with_the_same_fields(path: Path) -> None:
    zh = catalog("zh-CN")
    keys = list(_keys(ast.parse(path.read_text("utf-8"))))
    missing = [f"line {line}: {key!r}" for line, key in keys if key and key not in zh]
    assert not missing, f"{path.name}: no zh-CN translation for " + "; ".join(missing)
    wrong = [key for _, key in keys if key in zh and _fields(zh[key]) != _fields(key)]
    assert not wrong, f"{path.name}: translations whose {{fields}} differ: {wrong}"


def test_a_key_in_two_catalog_files_has_one_translation() -> None:
    seen: dict[str, tuple[str, str]] = {}
    differ = []
    for path in sorted((i18n.LOCALE_DIR / "zh-CN").glob("*.json")):
        for key, text in json.loads(path.read_text("utf-8")).items():
            first = seen.setdefault(key, (path.name, text))
            if first[1] != text:
                differ.append(f"{key!r}: {first[0]} {first[1]!r}, {path.name} {text!r}")
    assert not differ, "one English text, two translations: " + "; ".join(differ)


def test_the_catalog_has_no_stale_keys() -> None:
    stale = sorted(set(_catalog_file_keys()) - _used_keys() - _dynamic_keys())
    assert not stale, f"zh-CN keys no code uses: {stale}"


def _catalog_file_keys() -> list[str]:
    return [key for path in sorted((i18n.LOCALE_DIR / "zh-CN").glob("*.json"))
            if path.name != "config.json"
            for key in json.loads(path.read_text("utf-8"))]


def _dynamic_keys() -> set[str]:
    """Keys handed to ``t`` through a variable (config titles live in ``config.json``)."""
    return set()


def test_the_checker_sees_a_bare_string_and_accepts_a_translated_one() -> None:
    code = ('ft.Text("Save the channel"); ft.TextField(label=f"Name of {x}"); '
            'ft.Text(t("Save")); ft.Text("·"); ft.Text(f"{n}"); self.note.value = "Not saved"; '
            'page.title = "pyclaw"')
    assert sorted(text for _, text in _untranslated(ast.parse(code))) == [
        "'Save the channel'", "label=f'Name of {x}'", "self.note.value = 'Not saved'"]


@pytest.mark.parametrize(("name", "code"), [
    ("zh_CN.UTF-8", "zh-CN"), ("zh-Hans", "zh-CN"), ("zh_SG", "zh-CN"), ("zh_TW.UTF-8", None),
    ("en_GB.UTF-8", "en"), ("C.UTF-8", None), ("POSIX", None), ("fr_FR", None), ("", None)])
def test_locale_names_map_to_a_supported_language(name: str, code: str | None) -> None:
    assert supported(name) == code


def test_the_system_language_reads_the_posix_variables_in_their_order() -> None:
    assert system_language({"LC_ALL": "", "LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_US"}) == "zh-CN"
    assert system_language({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}) == "en"
    assert system_language({"LANG": "C.UTF-8"}) == "en"


def test_each_page_keeps_its_own_language() -> None:
    first, second = ft.Page.__new__(ft.Page), ft.Page.__new__(ft.Page)
    set_language(first, "zh-CN")
    set_language(second, "klingon")
    assert (language(first), language(second)) == ("zh-CN", "en")


def test_t_fills_fields_and_falls_back_to_english() -> None:
    assert t("no translation for {thing} here", thing="this") == "no translation for this here"
