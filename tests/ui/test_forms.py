"""Forms people can read: labels, option names, fields that apply, groups, help, saved secrets.

Against the real config models (every registered channel, the provider and agent
models) and small hand-written schemas for the rules themselves. No browser here;
``test_browser_forms.py`` drives the same forms in Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import flet as ft
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.channels import ChannelConfig, registry
from pyclaw_app.config import AgentConfig, ProviderConfig
from pyclaw_app.control import FieldError, ProbeOutcome, UsageRow
from tests.ui.browser_support import FLET_ERROR_BOX
from tests.ui.fake_admin_plane import FakeAdminPlane
from tests.ui.test_usage_settings import MemoryThemeStore, SettingsPlane, _settings
from views.channel_editor import ChannelEditor
from views.forms import (
    ACCESS,
    ADVANCED,
    ESSENTIALS,
    HELP_LINES,
    SAVED_SECRET_NOTE,
    SchemaForm,
    parse_schema,
    readable_label,
)
from views.settings_view import SettingsView

RAW_WORDS = re.compile(r"\b(Url|Api|Id|Ids|Tls|Http|Https|Llm|Dm|Sid|Jid|Imap|Smtp|Oauth)\b")
"""Acronyms as title case writes them: never in a label."""


def _schemas() -> dict[str, dict[str, Any]]:
    return {name: spec.config_model.model_json_schema()
            for name, spec in registry.specs().items()}


def _type(plane: FakeAdminPlane, name: str) -> Any:
    return next(t for t in plane.channel_types() if t.type == name)


def _choose(form: SchemaForm, name: str, value: str) -> None:
    """What picking a menu entry does: the value, then the form's change hook."""
    form[name].input.value = value
    form[name]._changed(None)  # type: ignore[arg-type]


# -- labels -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "label"), [
    ("base_url", "Base URL"),
    ("api_key", "API key"),
    ("max_concurrent_llm", "Max concurrent LLM"),
    ("user_id", "User ID"),
    ("allow_insecure_http", "Allow insecure HTTP"),
    ("tls_verify", "TLS verify"),
    ("oauth_token", "OAuth token"),
    ("dm_policy", "DM policy"),
    ("service_url_hosts", "Service URL hosts"),
    ("baseUrl", "Base URL"),
    ("poll-timeout", "Poll timeout"),
    ("ACCOUNT_UPDATE", "Account update"),
    ("openai", "OpenAI"),
    ("url", "URL"),
    ("host", "Host"),
])
def test_readable_label(name: str, label: str) -> None:
    assert readable_label(name) == label


@given(st.from_regex(r"[a-z][a-z0-9]{0,8}(_[a-z][a-z0-9]{0,8}){0,4}", fullmatch=True))
def test_readable_label_keeps_every_word_and_drops_underscores(name: str) -> None:
    label = readable_label(name)
    assert "_" not in label and label[:1].isupper()
    assert label.lower().split() == name.split("_")
    assert not RAW_WORDS.search(label)


def test_a_title_from_the_model_wins_and_pydantics_invented_one_is_replaced() -> None:
    schema = {"properties": {
        "base_url": {"type": "string", "title": "Base Url"},  # pydantic's own: replaced
        "token": {"type": "string", "title": "Bot token"},  # the model's: kept
        "tls": {"type": "boolean"},  # none at all
    }}
    titles = {s.name: s.title for s in parse_schema(schema)}
    assert titles == {"base_url": "Base URL", "token": "Bot token", "tls": "TLS"}


def test_every_channel_form_label_is_readable() -> None:
    for type_name, schema in _schemas().items():
        for spec in parse_schema(schema):
            assert not RAW_WORDS.search(spec.title), (type_name, spec.name, spec.title)
            for label in spec.options:
                assert not RAW_WORDS.search(label), (type_name, spec.name, label)
            assert len(spec.options) == len(spec.choices)


def test_the_shared_models_have_titles_and_option_labels() -> None:
    base = {s.name: s for s in parse_schema(ChannelConfig.model_json_schema())}
    assert base["dm_policy"].title == "Direct messages"
    assert base["dm_policy"].option_label("pairing") == "Pairing: strangers ask the owner"
    assert base["group_reply"].options == ("When @mentioned", "When @mentioned or replied to",
                                           "Every message")
    assert base["rate_limit_per_minute"].title == "Messages per minute per sender"
    provider = {s.name: s for s in parse_schema(ProviderConfig.model_json_schema())}
    assert [provider[n].title for n in ("base_url", "api_key", "kind")] == [
        "Base URL", "API key", "API type"]
    assert provider["kind"].option_label("openai").startswith("OpenAI or OpenAI-compatible")
    agent = {s.name: s for s in parse_schema(AgentConfig.model_json_schema())}
    assert agent["max_concurrent_llm"].title == "Concurrent LLM calls"
    for model in (ChannelConfig, ProviderConfig, AgentConfig):
        for name, info in model.model_fields.items():
            assert info.title and info.description, (model.__name__, name)


def test_choices_without_labels_are_named_from_their_values() -> None:
    specs = {s.name: s for s in parse_schema(_schemas()["email"])}
    assert specs["imap_tls"].options == ("Implicit", "STARTTLS")
    messenger = {s.name: s for s in parse_schema(_schemas()["messenger"])}
    assert messenger["message_tag"].options[:2] == ("None", "Account update")
    mqtt = {s.name: s for s in parse_schema(_schemas()["mqtt"])}
    assert mqtt["protocol"].options == ("5", "3.1.1")  # versions stay as written


def test_dropdowns_show_labels_and_send_values() -> None:
    plane = FakeAdminPlane()
    form = SchemaForm(_type(plane, "telegram").schema)
    dropdown = form["dm_policy"].input
    assert isinstance(dropdown, ft.Dropdown)
    assert [(o.key, o.text) for o in dropdown.options][2] == ("open", "Open: anyone")
    _choose(form, "dm_policy", "open")
    assert form.values()["dm_policy"] == "open"
    assert form["token"].input.label == "Bot token *"  # required secret, its model's title
    assert form.cells["dm_policy"].col == {"xs": 12, "md": 6}
    provider = SchemaForm(ProviderConfig.model_json_schema())
    assert provider.cells["kind"].col == 12  # a long option gets the whole line


# -- fields that apply ----------------------------------------------------------------------

def test_telegram_webhook_fields_show_only_in_webhook_mode() -> None:
    form = SchemaForm(_type(FakeAdminPlane(), "telegram").schema)
    assert not form.shown("webhook_url") and not form.shown("webhook_secret")
    assert form.shown("poll_timeout") and form.shown("token")
    _choose(form, "mode", "webhook")
    assert form.shown("webhook_url") and form.shown("webhook_secret")
    assert not form.shown("poll_timeout")
    form["webhook_url"].input.value = "https://example.org/webhook/tg"
    _choose(form, "mode", "polling")
    assert not form.shown("webhook_url")
    assert form.values()["webhook_url"] == "https://example.org/webhook/tg"  # kept, not lost


def test_slack_shows_the_secret_its_mode_needs() -> None:
    form = SchemaForm(_type(FakeAdminPlane(), "slack").schema)
    assert form.shown("app_token") and not form.shown("signing_secret")
    _choose(form, "mode", "events")
    assert form.shown("signing_secret") and not form.shown("app_token")


def test_access_fields_follow_the_policies() -> None:
    form = SchemaForm(_type(FakeAdminPlane(), "telegram").schema)
    assert form.shown("allow_groups") and form.shown("group_reply") and form.shown("allow_from")
    _choose(form, "group_policy", "disabled")
    assert not form.shown("allow_groups") and not form.shown("group_reply")
    _choose(form, "group_policy", "open")
    assert form.shown("group_reply") and not form.shown("allow_groups")
    _choose(form, "dm_policy", "open")
    assert not form.shown("allow_from")
    assert form.access_heading is not None and form.access_heading.visible


def test_an_error_on_a_hidden_field_is_not_lost() -> None:
    form = SchemaForm(_type(FakeAdminPlane(), "telegram").schema)
    rest = form.show_errors([FieldError("webhook_secret", "required in webhook mode"),
                             FieldError("poll_timeout", "too long")])
    assert rest == ["Webhook secret: required in webhook mode"]
    assert form["poll_timeout"].error == "too long"


def test_shown_when_takes_one_value_or_several() -> None:
    schema = {"properties": {
        "mode": {"enum": ["a", "b", "c"], "default": "a", "type": "string"},
        "only_b": {"type": "string", "shown_when": {"mode": "b"}},
        "b_or_c": {"type": "string", "shown_when": {"mode": ["b", "c"]}},
    }}
    form = SchemaForm(schema)
    assert not form.shown("only_b") and not form.shown("b_or_c")
    _choose(form, "mode", "c")
    assert not form.shown("only_b") and form.shown("b_or_c")


# -- groups ---------------------------------------------------------------------------------

def test_telegram_groups_essentials_access_advanced() -> None:
    groups: dict[str, list[str]] = {}
    for spec in parse_schema(_schemas()["telegram"]):
        groups.setdefault(spec.group, []).append(spec.name)
    assert groups[ESSENTIALS] == ["token", "mode", "webhook_url", "webhook_secret", "enabled"]
    assert groups[ACCESS] == ["dm_policy", "group_policy", "group_reply", "allow_from",
                              "allow_groups", "rate_limit_per_minute"]
    assert groups[ADVANCED] == ["burst", "burst_settle", "base_url", "base_file_url",
                                "poll_timeout", "stream_replies", "voice_replies"]


def test_default_group_rule() -> None:
    schema = {"properties": {
        "host": {"type": "string"},  # required
        "password": {"type": "string", "secret": True},
        "app_id": {"type": "string", "default": ""},  # nothing to fall back to
        "port": {"type": "integer", "default": 443},
        "api_base": {"type": "string", "default": "https://api.example.com"},
        "debug": {"type": "boolean", "default": False, "group": "essentials"},  # marked
    }, "required": ["host"]}
    groups = {s.name: s.group for s in parse_schema(schema)}
    assert groups == {"host": ESSENTIALS, "password": ESSENTIALS, "app_id": ESSENTIALS,
                      "debug": ESSENTIALS, "port": ADVANCED, "api_base": ADVANCED}


def test_every_channel_keeps_what_it_needs_out_of_the_collapsed_section() -> None:
    for type_name, schema in _schemas().items():
        for spec in parse_schema(schema):
            if spec.required or spec.kind == "secret":
                assert spec.group == ESSENTIALS, (type_name, spec.name)


def test_advanced_is_collapsed_opens_for_changed_values_and_errors() -> None:
    telegram = _type(FakeAdminPlane(), "telegram").schema
    form = SchemaForm(telegram)
    assert form.advanced is not None and not form.advanced.expanded
    assert form.cells["base_url"] in form.sections[ADVANCED].controls
    assert "Base URL" in str(form.advanced.subtitle.value)
    form.show_errors([FieldError("poll_timeout", "too long")])
    assert form.advanced.expanded
    edited = SchemaForm(telegram, {"base_url": "http://localhost:8081/bot"})
    assert edited.advanced is not None and edited.advanced.expanded
    untouched = SchemaForm(telegram, {"base_url": "https://api.telegram.org/bot",
                                      "allow_from": []})
    assert untouched.advanced is not None and not untouched.advanced.expanded


def test_flat_form_for_views_that_arrange_fields_themselves() -> None:
    form = SchemaForm(ProviderConfig.model_json_schema(), grouped=False)
    assert form.advanced is None and list(form.sections) == [ESSENTIALS]
    assert len(form.sections[ESSENTIALS].controls) == len(form.fields)


# -- help and saved secrets -----------------------------------------------------------------

def test_help_text_is_shown_whole() -> None:
    form = SchemaForm(_type(FakeAdminPlane(), "telegram").schema)
    webhook_url = form["webhook_url"].input
    assert isinstance(webhook_url, ft.TextField) and webhook_url.helper_max_lines == HELP_LINES
    help_texts = [c for c in form["group_policy"].root.controls if isinstance(c, ft.Text)]
    description = ChannelConfig.model_fields["group_policy"].description
    assert [t.value for t in help_texts] == [description]  # the whole text, below the menu
    assert form["group_policy"].input.helper_text is None  # not the one-line helper


def test_a_saved_secret_says_so_without_showing_it() -> None:
    schema = _type(FakeAdminPlane(), "telegram").schema
    form = SchemaForm(schema, {"token": "123:never-shown"}, secrets_set=("token",))
    field = form["token"]
    assert field.input.value == "" and field.saved_note is not None
    assert field.saved_note in field.root.controls  # always visible, not a focus-only hint
    assert SAVED_SECRET_NOTE in [c.value for c in field.saved_note.controls
                                 if isinstance(c, ft.Text)]
    assert "123:never-shown" not in repr(form.root)
    assert form["webhook_secret"].saved_note is None  # nothing stored: nothing claimed


# -- no red boxes -----------------------------------------------------------------------------

def _invisible_semantics(control: object, path: str = "") -> list[str]:
    """Semantics wrappers whose content is hidden: Flet draws a red error box for each."""
    found: list[str] = []
    if isinstance(control, ft.Semantics) and control.visible is not False:
        content = control.content
        if content is None or getattr(content, "visible", True) is False:
            found.append(f"{path}/{control.label}")
    if isinstance(control, ft.BaseControl) and getattr(control, "visible", True) is False:
        return found  # nothing under a hidden control is drawn
    if isinstance(control, list | tuple):
        for item in control:
            found += _invisible_semantics(item, path)
    elif isinstance(control, ft.BaseControl):
        for name in ("content", "controls", "title", "subtitle"):
            found += _invisible_semantics(getattr(control, name, None),
                                          f"{path}/{type(control).__name__}")
    return found


async def test_no_form_hides_the_content_of_a_labelled_control() -> None:
    plane = FakeAdminPlane()
    for channel_type in plane.channel_types():
        editor = ChannelEditor(plane, channel_type, types=plane.channel_types())
        assert _invisible_semantics(editor.root) == [], channel_type.type
    view, _ = await _settings()
    assert _invisible_semantics(view.root) == []
    editor = view.open_editor(None)
    assert _invisible_semantics(view.root) == []  # the Add provider form of the red box
    editor.form["name"].input.value = "x"
    editor.form["model"].input.value = "m"
    editor.form["base_url"].input.value = "http://bad.invalid"
    await editor.test_connection()
    assert _invisible_semantics(view.root) == []


def _flet_error_messages() -> list[str]:
    """The messages of Flet's ErrorControl in the installed web client (minified names are
    found from the class that prints "ErrorControl build: ")."""
    import flet_web

    bundle = (Path(flet_web.__file__).parent / "web" / "main.dart.js").read_text("utf-8")
    owner = re.search(r"A\.(\w+)\.prototype=\{\s*\w+\(\w+\)\{[^{}]*?\"ErrorControl build: \"",
                      bundle)
    assert owner, "Flet's ErrorControl was not found in the web client"
    name = re.escape(owner.group(1))
    return sorted({m.group(2) for m in re.finditer(rf"new A\.{name}\((['\"])(.*?)\1", bundle)})


def test_the_error_box_check_knows_every_flet_error_box() -> None:
    messages = _flet_error_messages()
    assert len(messages) > 40 and "Semantics.content must be provided and visible" in messages
    missed = [m for m in messages if not FLET_ERROR_BOX.search(m)]
    assert missed == []


def test_the_error_box_check_does_not_fire_on_pyclaws_own_texts() -> None:
    texts: list[str] = []
    for schema in [*_schemas().values(), ProviderConfig.model_json_schema(),
                   AgentConfig.model_json_schema()]:
        for spec in parse_schema(schema):
            texts += [spec.title, *spec.options, *spec.help.splitlines()]
    for spec in registry.specs().values():
        texts.append(spec.description)
    assert [t for t in texts if FLET_ERROR_BOX.search(t)] == []


# -- providers: a failed test warns before saving, and shows on the card ---------------------

class _Page(SimpleNamespace):
    def __init__(self) -> None:
        super().__init__(dialogs=[], updates=0)

    def show_dialog(self, dialog: ft.AlertDialog) -> None:
        self.dialogs.append(dialog)

    def pop_dialog(self) -> None:
        self.dialogs.pop()

    def update(self) -> None:
        self.updates += 1


async def _click(button: ft.Control, page: _Page) -> None:
    result = button.on_click(SimpleNamespace(page=page))  # type: ignore[union-attr]
    if result is not None:
        await result


async def test_a_provider_that_failed_its_test_is_saved_only_after_a_warning() -> None:
    view, plane = await _settings()
    editor = view.open_editor(None)
    editor.form["name"].input.value = "broken"
    editor.form["model"].input.value = "m"
    editor.form["base_url"].input.value = "http://bad.invalid"
    assert not await editor.test_connection()
    page = _Page()
    await _click(editor.save_button, page)
    assert plane.saves == [] and len(page.dialogs) == 1  # warned, nothing saved
    dialog = page.dialogs[0]
    assert "connection refused" in dialog.content.value
    assert [a.content for a in dialog.actions] == ["Keep editing", "Save anyway"]
    await _click(dialog.actions[0], page)
    assert page.dialogs == [] and plane.saves == [] and view.editor is editor

    await _click(editor.save_button, page)
    await _click(page.dialogs[0].actions[1], page)
    assert page.dialogs == [] and plane.saves and view.editor is None
    assert (False, "Last test failed: connection refused") in view.health_lines("broken")
    card = view.provider_list.controls[-1]
    assert "Last test failed: connection refused" in repr(card)


async def test_a_passing_or_outdated_test_saves_without_asking() -> None:
    view, plane = await _settings()
    editor = view.open_editor(None)
    editor.form["name"].input.value = "fixed"
    editor.form["model"].input.value = "m"
    editor.form["base_url"].input.value = "http://bad.invalid"
    assert not await editor.test_connection()
    editor.form["base_url"].input.value = "http://127.0.0.1:11434/v1"  # changed since
    assert editor.failed_test() is None
    assert await editor.test_connection()
    page = _Page()
    await _click(editor.save_button, page)
    assert page.dialogs == [] and plane.saves and view.editor is None
    assert view.health_lines("fixed") == [(True, "Test passed: 2 models available")]


async def test_provider_cards_sum_the_last_days_calls() -> None:
    rows = [UsageRow("2026-03-10", "main", "gpt", "tg", 5, 2, 0, 0, 0.0, 0.0, 0.0),
            UsageRow("2026-03-09", "main", "gpt", "slack", 3, 0, 0, 0, 0.0, 0.0, 0.0)]
    asked: list[float | None] = []

    class HealthPlane(SettingsPlane):
        async def usage(self, *, since: float | None = None, until: float | None = None,
                        channel: str | None = None) -> list[UsageRow]:
            asked.append(since)
            return rows

    view = SettingsView(HealthPlane(), theme_store=MemoryThemeStore(), clock=lambda: 90_000.0)
    await view.load()
    assert asked == [90_000.0 - 86_400]
    assert view.health_lines("main") == [(False, "Last 24 h: 8 calls, 2 failed")]
    assert "Last 24 h: 8 calls, 2 failed" in repr(view.provider_list)
    view.record_test("main", ProbeOutcome(True, "2 models available"))
    assert view.health_lines("main")[0] == (True, "Test passed: 2 models available")
    assert view.health_lines("other") == []
