"""Every setup form reads in Simplified Chinese: titles, help and option labels from the
config models, and the fixed texts of ``views.forms``.

``test_i18n.py`` finds the keys written in the views; these come from the models, so they
are found here by building every form the panel renders, from the same registry functions
the plane serves them with (a new channel type is covered without touching this file).
Their translations live in ``assets/locale/zh-CN/config.json``.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from typing import Any

import flet as ft
import pytest

from pyclaw_app.config import AgentConfig, Config, ProviderConfig
from pyclaw_app.control import mcp, profiles
from pyclaw_app.control.admin import channel_types
from views import forms, i18n
from views.forms import FieldSpec, SchemaForm, parse_schema
from views.i18n import catalog, set_language

FIXED = (forms.ACCESS_TITLE, forms.ADVANCED_TITLE, forms.SAVED_SECRET_HINT,
         forms.SAVED_SECRET_NOTE, "comma-separated", "None", "Yes", "No")
"""The texts ``views.forms`` itself adds to every form."""


def _rendered_schemas() -> dict[str, Mapping[str, Any]]:
    """Every schema the panel turns into a form, as the plane hands it over: each channel
    type's (Channels), the provider's and the agent's (Settings), an MCP server's and a
    profile's (with a config that has nothing in it yet)."""
    schemas: dict[str, Mapping[str, Any]] = {
        f"channel {kind.type}": kind.schema for kind in channel_types() if kind.schema}
    schemas |= {"provider": ProviderConfig.model_json_schema(),
                "agent": AgentConfig.model_json_schema(),
                "mcp server": mcp.form_schema(),
                "profile": profiles.form_schema(Config(path=None))}
    return schemas


SCHEMAS = _rendered_schemas()


def _readable(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def _texts(spec: FieldSpec) -> Iterator[tuple[str, str]]:
    """What a person reads of one field, by what it is."""
    yield "title", spec.title
    if spec.help:
        yield "help", spec.help
    for option in spec.options:
        yield "option", option


def _key(text: str) -> str:
    """The catalog key of a text: itself, or for help the plane extended with a sentence of
    its own ("... Channels: none yet."), the model's part (what ``views.forms`` translates)."""
    head, dot, _ = text.partition(". ")
    return text if text in catalog("zh-CN") or not dot else head


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _current_page_in(monkeypatch: pytest.MonkeyPatch, code: str) -> ft.Page:
    """A page read in ``code``, taken for the current one (no Flet session here)."""
    page = ft.Page.__new__(ft.Page)
    set_language(page, code)
    monkeypatch.setattr(i18n, "_current_page", lambda: page)
    return page


@pytest.fixture
def english_page(monkeypatch: pytest.MonkeyPatch) -> ft.Page:
    """English whatever the system's locale: the specs then hold the catalog's keys."""
    return _current_page_in(monkeypatch, "en")


@pytest.fixture
def chinese_page(monkeypatch: pytest.MonkeyPatch) -> ft.Page:
    return _current_page_in(monkeypatch, "zh-CN")


def test_the_registry_gives_every_channel_type_a_form() -> None:
    assert sum(name.startswith("channel ") for name in SCHEMAS) >= 30


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.usefixtures("english_page")
def test_every_text_of_a_form_has_its_chinese_with_the_same_fields(name: str) -> None:
    zh = catalog("zh-CN")
    texts = [(spec.name, what, text) for spec in parse_schema(SCHEMAS[name])
             for what, text in _texts(spec) if _readable(text)]
    missing = [f"{field} {what}: {text!r}" for field, what, text in texts
               if _key(text) not in zh]
    assert not missing, f"{name}: no zh-CN translation for " + "; ".join(missing)
    wrong = [text for _, _, text in texts if _fields(zh[_key(text)]) != _fields(_key(text))]
    assert not wrong, f"{name}: translations whose {{fields}} differ: {wrong}"


def test_the_fixed_texts_of_forms_have_their_chinese() -> None:
    assert [text for text in FIXED if text not in catalog("zh-CN")] == []




def _telegram() -> Mapping[str, Any]:
    return SCHEMAS["channel telegram"]


def test_a_form_built_for_a_chinese_page_reads_in_chinese(chinese_page: ft.Page) -> None:
    zh = catalog("zh-CN")
    form = SchemaForm(_telegram(), {"token": "123:x"}, secrets_set=("token",))
    token, mode = form["token"].input, form["mode"].input
    assert token.label == zh["Bot token"] + " *"
    assert token.hint_text == zh[forms.SAVED_SECRET_HINT]
    assert token.helper == zh[_telegram()["properties"]["token"]["description"]]
    assert [option.text for option in mode.options] == [
        zh["Polling (works behind NAT)"], zh["Webhook (needs a public HTTPS URL)"]]
    assert form.advanced is not None and form.advanced.title.value == zh[forms.ADVANCED_TITLE]
    assert form.access_heading is not None
    assert form.access_heading.value == zh[forms.ACCESS_TITLE]


def test_the_same_schema_reads_in_english_on_an_english_page(chinese_page: ft.Page) -> None:
    """The language is looked up when the form is built: one parse, one page's language."""
    set_language(chinese_page, "en")
    specs = {s.name: s for s in parse_schema(_telegram())}
    assert specs["token"].title == "Bot token"
    assert specs["mode"].options == ("Polling (works behind NAT)",
                                     "Webhook (needs a public HTTPS URL)")


def test_help_the_plane_extended_keeps_its_own_sentence(chinese_page: ft.Page) -> None:
    """A profile's "Used on" help ends with the config's channels: the model's part is
    translated, the names stay as the config has them."""
    english = SCHEMAS["profile"]["properties"]["match"]["description"]
    model_part, _, plane_part = english.partition(". ")
    match = next(s for s in parse_schema(SCHEMAS["profile"]) if s.name == "match")
    assert plane_part == "Channels: none yet."
    assert match.help == f"{catalog('zh-CN')[model_part]}。{plane_part}"


def test_placeholders_in_help_are_shown_as_written(chinese_page: ft.Page) -> None:
    prompt = next(s for s in parse_schema(AgentConfig.model_json_schema())
                  if s.name == "system_prompt")
    assert "{channel}" in prompt.help and "{user}" in prompt.help
