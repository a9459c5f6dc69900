"""Settings: LLM providers, the agent (prompts, budget, fallbacks), theme and where policy lives.

Providers and agent settings are saved separately, each with the other half
as last saved, so a half-edited prompt never blocks adding a key and the other
way round; ``save_settings`` applies them to the next message without a
restart. Forms come from the plane's JSON Schemas through ``views.forms``;
this module only arranges the generated fields and adds the editors a schema
cannot express well (the default-provider picker, per-channel prompts and the
fallback chain). The theme is applied to the page at once and remembered in
the client's own storage, so each browser or device keeps its choice.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import flet as ft

from pyclaw_app.control import ControlPlane, FieldError, ProbeOutcome, SettingsForm
from pyclaw_app.model import Event
from views.confirm import ask_first
from views.first_run import SETUP_ROUTE
from views.forms import LIST, FormField, SchemaForm, labelled
from views.i18n import LANGUAGES, set_language, system_language, t
from views.mcp_view import McpSection
from views.profiles_view import ProfilesSection
from views.status_line import StatusLine

__all__ = [
    "LANGUAGE_KEY",
    "SYSTEM_LANGUAGE",
    "THEME_MODES",
    "ClientLanguageStore",
    "ClientThemeStore",
    "ProviderEditor",
    "SettingsView",
    "StatusLine",
    "ThemeStore",
    "restore_language",
    "subschema",
    "when_language_changes",
]

_log = logging.getLogger(__name__)

THEME_MODES: dict[str, ft.ThemeMode] = {"system": ft.ThemeMode.SYSTEM,
                                        "light": ft.ThemeMode.LIGHT,
                                        "dark": ft.ThemeMode.DARK}
THEME_KEY = "pyclaw.theme"
LANGUAGE_KEY = "pyclaw.language"
SYSTEM_LANGUAGE = "system"
"""The language choice that follows the system's locale (``views.i18n.system_language``)."""
FIRST_PROVIDER = ""
AGENT_MAIN = ("system_prompt", "history_tokens", "max_concurrent_llm", "compaction")
AGENT_CUSTOM = ("provider", "system_prompts", "fallbacks")
CHANNELS_ROUTE = "/channels"
def _titles() -> dict[str, str]:
    """The agent sections an error may name, in the page's language."""
    return {"system_prompts": t("Per-channel system prompts"),
            "fallbacks": t("Fallback chain"), "agent": t("Assistant")}

Refresh = Callable[[], None]


def _prompt_help() -> str:
    """What a prompt template may use (the braces are literal: no field of ``t``)."""
    return t("Variables: {names}", names="{channel}, {user}, {date}")


def _nothing() -> None:
    """The default refresh: control-level tests have no page to update."""


# -- theme --------------------------------------------------------------------------------------


class ThemeStore(Protocol):
    """Where the client's theme choice is remembered."""

    async def get(self) -> str | None: ...

    async def set(self, mode: str) -> None: ...


class ClientThemeStore:
    """The choice in the client's shared preferences (a browser's local storage on the web).

    The service registers with the page of the current Flet context, so it is
    created on first use, inside a page's handler or load, never at import.
    """

    KEY: ClassVar[str] = THEME_KEY
    CHOICES: ClassVar[Iterable[str]] = THEME_MODES

    def __init__(self) -> None:
        self._prefs: ft.SharedPreferences | None = None

    def _service(self) -> ft.SharedPreferences | None:
        if self._prefs is None:
            try:
                ft.context.page  # noqa: B018 - raises outside a page's context
            except RuntimeError:
                return None
            self._prefs = ft.SharedPreferences()
        return self._prefs

    async def get(self) -> str | None:
        prefs = self._service()
        value = await prefs.get(self.KEY) if prefs is not None else None
        return value if isinstance(value, str) and value in self.CHOICES else None

    async def set(self, mode: str) -> None:
        prefs = self._service()
        if prefs is not None:
            await prefs.set(self.KEY, mode)


class ClientLanguageStore(ClientThemeStore):
    """The language choice ("system" or a code of LANGUAGES), kept beside the theme."""

    KEY: ClassVar[str] = LANGUAGE_KEY
    CHOICES: ClassVar[Iterable[str]] = (SYSTEM_LANGUAGE, *LANGUAGES)


Rebuild = Callable[[], Awaitable[None]]
_rebuilders: dict[int, Rebuild] = {}
"""How each page (by ``id``) rebuilds its shell after a language change (views/app.py)."""


def when_language_changes(page: ft.Page | ft.BasePage, rebuild: Rebuild) -> None:
    """Register how ``page`` shows itself anew in another language; the entry goes with it."""
    if id(page) not in _rebuilders:
        weakref.finalize(page, _rebuilders.pop, id(page), None)
    _rebuilders[id(page)] = rebuild


async def restore_language(page: ft.Page | ft.BasePage, store: ThemeStore | None = None) -> str:
    """The client's remembered language on ``page``, before any view is built; "system"
    (or nothing remembered, or a store that cannot be read) leaves the system's."""
    try:
        code = await (store or ClientLanguageStore()).get()
    except Exception as exc:  # noqa: BLE001 - the page keeps the system's language
        _log.warning("could not read the remembered language: %s", exc)
        code = None
    if code in LANGUAGES:
        set_language(page, code)
        return code
    return SYSTEM_LANGUAGE


def _current_page() -> ft.Page | ft.BasePage | None:
    try:
        return ft.context.page
    except RuntimeError:
        return None


# -- schema adapters ------------------------------------------------------------------------------


def subschema(schema: Mapping[str, Any], names: Iterable[str] | None = None, *,
              without: Iterable[str] = ()) -> dict[str, Any]:
    """The object schema limited to ``names`` (in that order), or all but ``without``."""
    props: dict[str, Any] = schema.get("properties", {})
    skip = set(without)
    keep = [n for n in (props if names is None else names) if n in props and n not in skip]
    return {**schema, "properties": {n: props[n] for n in keep},
            "required": [n for n in schema.get("required", ()) if n in keep]}


def _form_values(form: SchemaForm) -> dict[str, Any]:
    """``form.values()``, but a blank optional list means "unset", not "empty".

    (``tools: null`` enables every built-in tool; ``[]`` would enable none.)
    """
    values = form.values()
    for name, field in form.fields.items():
        if field.spec.kind == LIST and field.spec.nullable and values.get(name) == []:
            del values[name]
    return values


def _multiline(form: SchemaForm, name: str, min_lines: int = 3, max_lines: int = 12) -> None:
    """A long text field: several lines, and the full width of a two-column form."""
    field = form[name]
    if isinstance(field.input, ft.TextField):
        field.input.multiline = True
        field.input.min_lines = min_lines
        field.input.max_lines = max_lines
    form.widen(name)


def _split(errors: Sequence[FieldError], prefix: str) -> tuple[list[FieldError], list[FieldError]]:
    """Errors under ``prefix`` (renamed to the bare field) and all the others."""
    mine, other = [], []
    for error in errors:
        if error.field.startswith(prefix):
            mine.append(FieldError(error.field.removeprefix(prefix), error.message))
        else:
            other.append(error)
    return mine, other


HEALTH_WINDOW = 86400.0
"""Seconds of usage records a provider card sums up."""


def _health_row(ok: bool, words: str) -> ft.Control:
    color = ft.Colors.GREEN_700 if ok else ft.Colors.ERROR
    return ft.Row(spacing=4, vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
        ft.Icon(ft.Icons.CHECK_CIRCLE if ok else ft.Icons.ERROR_OUTLINE, size=14, color=color),
        ft.Text(words, size=12, color=color, expand=True)])


CARD_COLUMNS = {"xs": 12, "md": 10, "lg": 8, "xl": 7}
"""A card's share of the view's width: all of a phone, ~720 px of a wide window."""


def _card(*controls: ft.Control) -> ft.ResponsiveRow:
    return ft.ResponsiveRow(controls=[ft.Container(
        col=CARD_COLUMNS,
        padding=ft.Padding.symmetric(horizontal=20, vertical=16),
        border_radius=12,
        bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
        border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
        content=ft.Column(spacing=14, horizontal_alignment=ft.CrossAxisAlignment.STRETCH,
                          controls=list(controls)),
    )])


def _section(title: str, subtitle: str = "") -> ft.Control:
    parts: list[ft.Control] = [ft.Text(title, theme_style=ft.TextThemeStyle.TITLE_MEDIUM,
                                       weight=ft.FontWeight.W_600)]
    if subtitle:
        parts.append(ft.Text(subtitle, size=13, color=ft.Colors.ON_SURFACE_VARIANT))
    return ft.Column(parts, spacing=2)


# -- one provider ---------------------------------------------------------------------------------


class ProviderEditor:
    """Add or edit one provider: generated form, Test connection with a model picker, Save."""

    def __init__(self, view: SettingsView, index: int | None) -> None:
        self.view = view
        self.index = index  # None: a new provider, appended on save
        existing = view.providers[index] if index is not None else None
        saved_key = existing is not None and existing.get("name") in view.keys_set
        self.touched: set[str] = set()
        self.last_test: tuple[dict[str, Any], ProbeOutcome] | None = None
        self.form = SchemaForm(view.provider_schema, existing or {"kind": "openai"},
                               ("api_key",) if saved_key else (), on_blur=self._blurred)
        if existing is not None and isinstance(self.form["name"].input, ft.TextField):
            self.form["name"].input.read_only = True  # the stored key is filed under the name
        self.models = ft.Dropdown(label=t("Available models"), expand=True,
                                  on_select=self._model_picked,
                                  helper_text=t("From the provider's model list"))
        # shown once a test listed models; the row is hidden, never the labelled dropdown
        self.models_row = self.form.insert_after(
            "model", ft.Row([labelled(self.models, t("Available models"), expand=True)]))
        self.models_row.visible = False
        self.advanced = self.form.advanced  # timeouts, retries, limits, prices
        self.progress = ft.ProgressRing(width=20, height=20, stroke_width=2.5, visible=False,
                                        semantics_label=t("Testing the connection"))
        self.probe_result = StatusLine()
        self.form_error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.test_button = ft.OutlinedButton(t("Test connection"), icon=ft.Icons.WIFI_TETHERING,
                                             on_click=self._on_test)
        self.save_button = ft.FilledButton(t("Save provider"), icon=ft.Icons.SAVE_OUTLINED,
                                           on_click=self._on_save)
        title = (t("Edit provider {name}", name=existing.get("name")) if existing is not None
                 else t("Add a provider"))
        self.root = ft.Column(spacing=16, controls=[
            ft.Row([ft.IconButton(ft.Icons.ARROW_BACK, tooltip=t("Back to settings"),
                                  on_click=self._on_cancel),
                    ft.Icon(ft.Icons.SMART_TOY_OUTLINED, color=ft.Colors.PRIMARY, size=28),
                    ft.Text(title, theme_style=ft.TextThemeStyle.HEADLINE_SMALL)], spacing=8),
            _card(
                ft.Text(t("OpenAI, Anthropic, or any OpenAI-compatible server (Ollama, vLLM, "
                          "LM Studio): for those choose \"OpenAI or OpenAI-compatible\" and "
                          "give its base URL."),
                        color=ft.Colors.ON_SURFACE_VARIANT),
                self.form.root,
                self.form_error,
                ft.Divider(height=1),
                ft.Row(wrap=True, spacing=12, run_spacing=8,
                       vertical_alignment=ft.CrossAxisAlignment.CENTER,
                       controls=[self.test_button, self.progress, self.probe_result.root]),
                ft.Row(spacing=12, controls=[
                    self.save_button, ft.TextButton(t("Cancel"), on_click=self._on_cancel)]),
            ),
        ])

    def values(self) -> dict[str, Any]:
        return _form_values(self.form)

    def providers_with_this(self) -> tuple[list[dict[str, Any]], int]:
        """The saved providers with this form's values in place; and this one's index."""
        providers = [dict(p) for p in self.view.providers]
        if self.index is None:
            providers.append(self.values())
            return providers, len(providers) - 1
        providers[self.index] = self.values()
        return providers, self.index

    def show_errors(self, errors: Sequence[FieldError], *, touched_only: bool = False) -> None:
        position = len(self.view.providers) if self.index is None else self.index
        mine, other = _split(errors, f"providers.{position}.")
        rest = self.form.show_errors(mine, self.touched if touched_only else None)
        rest += [e.message if not e.field else f"{e.field}: {e.message}" for e in other
                 if not e.field.startswith("providers.")  # another provider's: not ours
                 or e.field == "providers"]
        if touched_only:
            rest = []
        self.form_error.value = "\n".join(rest)
        self.form_error.visible = bool(rest)

    def validate(self, *, touched_only: bool = False) -> list[FieldError]:
        providers, _ = self.providers_with_this()
        try:
            errors = self.view.plane.validate_settings(providers, self.view.agent)
        except Exception as exc:  # noqa: BLE001 - shown on the form, the view stays usable
            _log.warning("validate_settings failed: %s", exc)
            errors = [FieldError("", t("could not check the form: {error}", error=exc))]
        self.show_errors(errors, touched_only=touched_only)
        return errors

    def _blurred(self, field: FormField) -> None:
        self.touched.add(field.spec.name)
        self.validate(touched_only=True)

    async def test_connection(self, refresh: Refresh = _nothing) -> bool:
        """List the provider's models with the form's values; offer them in the model picker."""
        self.progress.visible = True
        self.probe_result.hide()
        self.test_button.disabled = True
        refresh()
        try:
            models, outcome = await self.view.plane.list_models(self.values())
        except Exception as exc:  # noqa: BLE001 - the result line says what went wrong
            _log.warning("list_models failed: %s", exc)
            models, ok, message = [], False, t("could not test: {error}", error=exc)
        else:
            ok, message = outcome.ok, outcome.message
        finally:
            self.progress.visible = False
            self.test_button.disabled = False
        self.probe_result.show(ok, message)
        tested = self.values()
        self.last_test = (tested, ProbeOutcome(ok, message))
        self.view.record_test(str(tested.get("name") or ""), ProbeOutcome(ok, message))
        self.models.options = [ft.DropdownOption(key=m, text=m) for m in models]
        current = self.form["model"].value()
        self.models.value = current if current in models else None
        self.models_row.visible = bool(models)
        return ok

    def failed_test(self) -> ProbeOutcome | None:
        """The last Test connection's failure, while the form still holds what was tested."""
        if self.last_test is None:
            return None
        tested, outcome = self.last_test
        return outcome if not outcome.ok and tested == self.values() else None

    def confirm_save(self, failed: ProbeOutcome, page: ft.Page | ft.BasePage | None
                     ) -> ft.AlertDialog:
        """Saving a provider that just failed its test is allowed, after saying so."""
        return ask_first(page, title=t("Save a provider that failed its test?"),
                         action=t("Save anyway"), cancel=t("Keep editing"), selectable=True,
                         body=t("Test connection said: {message}\n\nSaved like this, messages "
                                "sent to it will fail until the endpoint answers.",
                                message=failed.message),
                         on_confirm=lambda e: self.save_and_close(e.page))

    async def save_and_close(self, page: ft.Page | ft.BasePage) -> bool:
        if await self.save(page.update):
            self.view.close_editor(t("Provider saved — used from the next message."))
            page.update()
            return True
        page.update()
        return False

    def pick_model(self, model: str) -> None:
        field = self.form["model"]
        if isinstance(field.input, ft.TextField):
            field.input.value = model
        field.set_error(None)

    async def save(self, refresh: Refresh = _nothing) -> bool:
        self.touched.update(self.form.fields)
        if self.validate():
            return False
        providers, _ = self.providers_with_this()
        self.save_button.disabled = True
        refresh()
        try:
            errors = await self.view.save(providers, self.view.agent)
        finally:
            self.save_button.disabled = False
        self.show_errors(errors)
        return not errors

    def _model_picked(self, e: ft.Event[ft.Dropdown]) -> None:
        if self.models.value:
            self.pick_model(str(self.models.value))
            e.page.update()

    async def _on_test(self, e: ft.Event[ft.Control]) -> None:
        await self.test_connection(e.page.update)
        e.page.update()

    async def _on_save(self, e: ft.Event[ft.Control]) -> None:
        failed = self.failed_test()
        if failed is not None:
            self.confirm_save(failed, e.page)
            return
        await self.save_and_close(e.page)

    def _on_cancel(self, e: ft.Event[ft.Control]) -> None:
        self.view.close_editor()
        e.page.update()


# -- lists of small rows: per-channel prompts and the fallback chain -----------------------------


class PromptRow:
    """A channel name and the system prompt template used on it."""

    def __init__(self, channel: str, prompt: str, channels: Sequence[str],
                 on_remove: Callable[[PromptRow], None]) -> None:
        self.channel = ft.Dropdown(
            label=t("Channel"), value=channel or None, width=200,
            options=[ft.DropdownOption(key=c, text=c)
                     for c in sorted({*channels, *([channel] if channel else [])})])
        self.prompt = ft.TextField(label=t("System prompt for {channel}", channel=channel)
                                   if channel else t("System prompt for this channel"),
                                   value=prompt, multiline=True, min_lines=2, max_lines=8,
                                   expand=True, helper=_prompt_help())
        self._on_remove = on_remove
        self.root = ft.Row(vertical_alignment=ft.CrossAxisAlignment.START, controls=[
            labelled(self.channel, t("Prompt channel")), self.prompt,
            ft.IconButton(ft.Icons.DELETE_OUTLINE,
                          tooltip=t("Remove the {channel} prompt", channel=channel),
                          on_click=self._removed)])

    def _removed(self, e: ft.Event[ft.Control]) -> None:
        self._on_remove(self)
        e.page.update()


class FallbackRow:
    """One step of the failover chain: a provider and, optionally, another of its models."""

    def __init__(self, provider: str, model: str | None, providers: Sequence[str],
                 on_remove: Callable[[FallbackRow], None], position: int) -> None:
        self.provider = ft.Dropdown(
            label=t("Fallback {position}", position=position), value=provider or None, width=220,
            options=[ft.DropdownOption(key=p, text=p)
                     for p in dict.fromkeys([*providers, *([provider] if provider else [])])])
        self.model = ft.TextField(label=t("Model (blank: the provider's own)"), value=model or "",
                                  expand=True)
        self._on_remove = on_remove
        self.root = ft.Row(vertical_alignment=ft.CrossAxisAlignment.START, controls=[
            labelled(self.provider, t("Fallback {position} provider", position=position)),
            self.model,
            ft.IconButton(ft.Icons.DELETE_OUTLINE,
                          tooltip=t("Remove fallback {position}", position=position),
                          on_click=self._removed)])

    def _removed(self, e: ft.Event[ft.Control]) -> None:
        self._on_remove(self)
        e.page.update()

    def value(self) -> dict[str, Any] | None:
        if not self.provider.value:
            return None
        model = (self.model.value or "").strip()
        return {"provider": str(self.provider.value), **({"model": model} if model else {})}


# -- the view -----------------------------------------------------------------------------------


class SettingsView:
    """Providers, agent, appearance and the access-policy pointer; one card each."""

    def __init__(self, plane: ControlPlane, *, theme_store: ThemeStore | None = None,
                 language_store: ThemeStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.plane = plane
        self.theme_store: ThemeStore = theme_store or ClientThemeStore()
        self._theme_choices = 0
        """Themes chosen so far: a restore that reads the store while one is chosen keeps it."""
        self.language_store: ThemeStore = language_store or ClientLanguageStore()
        self.clock = clock
        self.tests: dict[str, ProbeOutcome] = {}
        """The last Test connection outcome per provider name, shown on its card."""
        self.recent_calls: dict[str, tuple[int, int]] = {}
        """(calls, failed) per provider over the last day, from the usage records."""
        self.providers: list[dict[str, Any]] = []
        self.keys_set: set[str] = set()
        self.agent: dict[str, Any] = {}
        self.provider_schema: dict[str, Any] = {}
        self.agent_schema: dict[str, Any] = {}
        self.channel_names: list[str] = []
        self.editor: ProviderEditor | None = None
        self.agent_form = SchemaForm({})
        self.advanced_form = SchemaForm({})
        self.prompt_rows: list[PromptRow] = []
        self.fallback_rows: list[FallbackRow] = []

        self.notice = StatusLine()
        self.provider_list = ft.Column(spacing=8)
        self.mcp = McpSection(plane)
        self.profiles = ProfilesSection(plane)
        self.default_provider = ft.Dropdown(label=t("Default provider"), width=320,
                                            on_select=self._agent_touched)
        self.prompts = ft.Column(spacing=10)
        self.fallbacks = ft.Column(spacing=10)
        self.agent_form_slot = ft.Container()
        self.advanced_slot = ft.Container()
        self.advanced = ft.ExpansionTile(
            title=ft.Text(t("Advanced: tools, retries, circuit breaker")),
            controls_padding=ft.Padding.only(top=8, bottom=8), controls=[self.advanced_slot])
        self.agent_error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.agent_status = StatusLine()
        self.save_agent_button = ft.FilledButton(t("Save agent settings"),
                                                 icon=ft.Icons.SAVE_OUTLINED,
                                                 on_click=self._on_save_agent)
        self.theme_picker = ft.SegmentedButton(
            selected=["system"], allow_multiple_selection=False, allow_empty_selection=False,
            segments=[ft.Segment(value="system", label=ft.Text(t("System")),
                                 icon=ft.Icon(ft.Icons.BRIGHTNESS_AUTO)),
                      ft.Segment(value="light", label=ft.Text(t("Light")),
                                 icon=ft.Icon(ft.Icons.LIGHT_MODE)),
                      ft.Segment(value="dark", label=ft.Text(t("Dark")),
                                 icon=ft.Icon(ft.Icons.DARK_MODE))],
            on_change=self._on_theme,
        )
        self.language_picker = ft.Dropdown(
            label=t("Language"), value=SYSTEM_LANGUAGE, width=220, on_select=self._on_language,
            options=[ft.DropdownOption(key=SYSTEM_LANGUAGE, text=t("System")),
                     *(ft.DropdownOption(key=code, text=name)  # each named in itself
                       for code, name in LANGUAGES.items())])
        self.settings_page = ft.Column(spacing=16, controls=[
            ft.Text(t("Settings"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
            self.notice.root,
            _card(
                _section(t("Providers"), t("The LLM endpoints the assistant can use. API keys "
                                           "are kept in the system keyring, never in the "
                                           "config.")),
                self.provider_list,
                ft.Row([ft.FilledTonalButton(t("Add provider"), icon=ft.Icons.ADD,
                                             on_click=self._on_add_provider),
                        ft.TextButton(t("Open the setup guide"), icon=ft.Icons.ASSISTANT_OUTLINED,
                                      on_click=self._on_open_guide)], wrap=True),
            ),
            _card(self.mcp.root),
            _card(
                _section(t("Assistant"), t("Applied to the next message, no restart.")),
                ft.Row([labelled(self.default_provider, t("Default provider"))]),
                self.agent_form_slot,
                _section(t("Per-channel system prompts"),
                         t("Replace the system prompt on one channel (a profile below that "
                           "sets its own wins there).") + " " + _prompt_help()),
                self.prompts,
                ft.Row([ft.TextButton(t("Add channel prompt"), icon=ft.Icons.ADD,
                                      on_click=self._on_add_prompt)]),
                _section(t("Fallback chain"), t("Tried in order when the default provider "
                                                "fails or is rate limited.")),
                self.fallbacks,
                ft.Row([ft.TextButton(t("Add fallback"), icon=ft.Icons.ADD,
                                      on_click=self._on_add_fallback)]),
                self.advanced,
                self.agent_error,
                ft.Row(spacing=12, vertical_alignment=ft.CrossAxisAlignment.CENTER,
                       controls=[self.save_agent_button, self.agent_status.root]),
            ),
            _card(self.profiles.root),
            _card(
                _section(t("Appearance"), t("Remembered on this device or browser.")),
                ft.Row([self.theme_picker, labelled(self.language_picker, t("Language"))],
                       wrap=True, spacing=16, run_spacing=12),
            ),
            _card(
                _section(t("Access policy")),
                ft.Text(t("Who may talk to the assistant (DM and group policy, allowlists, "
                          "pairing codes, rate limits) is set per channel."),
                        color=ft.Colors.ON_SURFACE_VARIANT),
                ft.Row([ft.TextButton(t("Open Channels"), icon=ft.Icons.HUB_OUTLINED,
                                      on_click=self._on_open_channels)]),
            ),
        ])
        self._root = ft.Column(expand=True, scroll=ft.ScrollMode.AUTO,
                               controls=[self.settings_page])

    @property
    def root(self) -> ft.Control:
        return self._root

    # -- loading -----------------------------------------------------------------------------

    async def load(self) -> None:
        """The stored settings, channel names for the prompt picker, and the client's theme."""
        try:
            form = self.plane.settings_form()
            channels = await self.plane.channels()
        except Exception as exc:  # noqa: BLE001 - said on the view
            _log.warning("could not load settings: %s", exc)
            self._notify(False, t("Could not load the settings: {error}", error=exc))
            return
        self.channel_names = [c.name for c in channels]
        await self.load_health()
        self.show_form(form)
        await self.mcp.load()
        await self.profiles.load()
        await self.restore_theme(_current_page())
        await self.restore_language_choice()

    async def load_health(self) -> None:
        """Each provider's calls and failures over the last day, for its card."""
        try:
            rows = await self.plane.usage(since=self.clock() - HEALTH_WINDOW)
        except Exception as exc:  # noqa: BLE001 - the cards go without it
            _log.warning("could not read provider usage: %s", exc)
            rows = []
        totals: dict[str, tuple[int, int]] = {}
        for row in rows:
            calls, errors = totals.get(row.provider, (0, 0))
            totals[row.provider] = (calls + row.calls, errors + row.errors)
        self.recent_calls = totals

    def record_test(self, name: str, outcome: ProbeOutcome) -> None:
        if name:
            self.tests[name] = outcome

    def health_lines(self, name: str) -> list[tuple[bool, str]]:
        """What the card says about a provider's health: (ok, words) lines."""
        lines: list[tuple[bool, str]] = []
        test = self.tests.get(name)
        if test is not None:
            lines.append((test.ok, t("Test passed: {message}", message=test.message) if test.ok
                          else t("Last test failed: {message}", message=test.message)))
        calls, errors = self.recent_calls.get(name, (0, 0))
        if calls:
            lines.append((errors == 0, t("Last 24 h: {calls} call, {errors} failed", calls=calls,
                                         errors=errors) if calls == 1 else
                          t("Last 24 h: {calls} calls, {errors} failed", calls=calls,
                            errors=errors)))
        return lines

    def show_form(self, form: SettingsForm) -> None:
        """Render what the plane has stored (after load and after every save)."""
        self.providers = [dict(p) for p in form.providers]
        self.keys_set = set(form.keys_set)
        self.agent = dict(form.agent)
        self.provider_schema = form.provider_schema
        self.agent_schema = form.agent_schema
        self._show_providers()
        self._show_agent()

    def _show_providers(self) -> None:
        default = self.agent.get("provider") or (self.providers[0]["name"]
                                                 if self.providers else None)
        rows: list[ft.Control] = []
        for index, p in enumerate(self.providers):
            name = str(p.get("name", ""))
            where = p.get("base_url") or ("api.anthropic.com" if p.get("kind") == "anthropic"
                                          else "api.openai.com")
            key = t("API key saved") if name in self.keys_set else t("no API key")
            rows.append(ft.Container(
                padding=ft.Padding.symmetric(horizontal=12, vertical=8),
                border_radius=10,
                border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
                content=ft.Row(vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                    ft.Icon(ft.Icons.SMART_TOY_OUTLINED, color=ft.Colors.PRIMARY),
                    ft.Column(expand=True, spacing=2, controls=[
                        ft.Row(spacing=8, controls=[
                            ft.Text(name, weight=ft.FontWeight.W_600),
                            ft.Container(
                                visible=name == default,
                                padding=ft.Padding.symmetric(horizontal=8, vertical=1),
                                border_radius=8, bgcolor=ft.Colors.PRIMARY_CONTAINER,
                                content=ft.Text(t("default"), size=11,
                                                color=ft.Colors.ON_PRIMARY_CONTAINER)),
                        ]),
                        ft.Text(f"{p.get('kind', 'openai')} · {p.get('model', '')} · {where} · "
                                f"{key}", size=12, color=ft.Colors.ON_SURFACE_VARIANT),
                        *[_health_row(ok, words) for ok, words in self.health_lines(name)],
                    ]),
                    ft.IconButton(ft.Icons.EDIT_OUTLINED, tooltip=t("Edit {name}", name=name),
                                  on_click=self._edit_handler(index)),
                    ft.IconButton(ft.Icons.DELETE_OUTLINE, tooltip=t("Remove {name}", name=name),
                                  icon_color=ft.Colors.ERROR,
                                  on_click=lambda e, i=index: self.confirm_remove(i, e.page)),
                ]),
            ))
        if not rows:
            rows.append(ft.Text(t("No provider yet: add one so the assistant can answer."),
                                color=ft.Colors.ON_SURFACE_VARIANT))
        self.provider_list.controls = rows

    def _show_agent(self) -> None:
        names = [str(p.get("name")) for p in self.providers]
        first = (t("The first provider ({name})", name=names[0]) if names
                 else t("The first provider"))
        current = self.agent.get("provider")
        self.default_provider.options = [ft.DropdownOption(key=FIRST_PROVIDER, text=first)] + [
            ft.DropdownOption(key=n, text=n) for n in dict.fromkeys(
                [*names, *([current] if current else [])])]
        self.default_provider.value = current or FIRST_PROVIDER
        self.default_provider.error_text = None
        self.agent_form = SchemaForm(subschema(self.agent_schema, AGENT_MAIN), self.agent,
                                     grouped=False)
        _multiline(self.agent_form, "system_prompt", 4, 14)
        self.agent_form["system_prompt"].input.helper = _prompt_help()
        self.agent_form_slot.content = self.agent_form.root
        self.advanced_form = SchemaForm(subschema(self.agent_schema,
                                                  without=(*AGENT_MAIN, *AGENT_CUSTOM)),
                                        self.agent, grouped=False)
        self.advanced_slot.content = self.advanced_form.root
        self.prompt_rows = []
        for channel, prompt in dict(self.agent.get("system_prompts") or {}).items():
            self.add_prompt(channel, prompt)
        self._show_prompts()
        self.fallback_rows = []
        for step in list(self.agent.get("fallbacks") or []):
            self.add_fallback(str(step.get("provider", "")), step.get("model"))
        self._show_fallbacks()
        self.agent_error.visible = False

    # -- providers ---------------------------------------------------------------------------

    def open_editor(self, index: int | None) -> ProviderEditor:
        self.editor = ProviderEditor(self, index)
        self._root.controls = [self.editor.root]
        return self.editor

    def close_editor(self, message: str = "") -> None:
        self.editor = None
        self._show_providers()  # a test run in the editor shows on the card
        self._root.controls = [self.settings_page]
        if message:
            self._notify(True, message)

    def _edit_handler(self, index: int) -> Callable[[ft.Event[ft.Control]], None]:
        def on_click(e: ft.Event[ft.Control]) -> None:
            self.open_editor(index)
            e.page.update()

        return on_click

    def _on_add_provider(self, e: ft.Event[ft.Control]) -> None:
        self.open_editor(None)
        e.page.update()

    def confirm_remove(self, index: int, page: ft.Page | ft.BasePage | None) -> ft.AlertDialog:
        name = self.providers[index].get("name")
        return ask_first(page, title=t("Remove provider {name}?", name=name), action=t("Remove"),
                         body=t("Its settings and stored API key are deleted. Past usage "
                                "stays."),
                         on_confirm=lambda e: self.remove_provider(index))

    async def remove_provider(self, index: int) -> bool:
        name = self.providers[index].get("name")
        providers = [p for i, p in enumerate(self.providers) if i != index]
        errors = await self.save(providers, self.agent)
        if errors:
            self._notify(False, t("{name} was not removed: ", name=name) + "; ".join(
                f"{e.field}: {e.message}" if e.field else e.message for e in errors))
            return False
        self._notify(True, t("Provider {name} removed.", name=name))
        return True

    async def save(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                   ) -> list[FieldError]:
        """Save through the plane; on success re-read the stored form (keys_set moves on)."""
        try:
            errors = await self.plane.save_settings(providers, agent)
        except Exception as exc:  # noqa: BLE001 - shown where the save was asked for
            _log.warning("save_settings failed: %s", exc)
            return [FieldError("", t("could not save: {error}", error=exc))]
        if not errors:
            self.show_form(self.plane.settings_form())
        return errors

    # -- agent -------------------------------------------------------------------------------

    def add_prompt(self, channel: str = "", prompt: str = "") -> PromptRow:
        row = PromptRow(channel, prompt, self.channel_names, self._remove_prompt)
        self.prompt_rows.append(row)
        return row

    def _remove_prompt(self, row: PromptRow) -> None:
        self.prompt_rows.remove(row)
        self._show_prompts()

    def _show_prompts(self) -> None:
        self.prompts.controls = [r.root for r in self.prompt_rows] or [
            ft.Text(t("None: every channel uses the system prompt above."), size=13,
                    color=ft.Colors.ON_SURFACE_VARIANT)]

    def add_fallback(self, provider: str = "", model: str | None = None) -> FallbackRow:
        names = [str(p.get("name")) for p in self.providers]
        row = FallbackRow(provider, model, names, self._remove_fallback,
                          len(self.fallback_rows) + 1)
        self.fallback_rows.append(row)
        return row

    def _remove_fallback(self, row: FallbackRow) -> None:
        kept = [(r.provider.value or "", r.model.value) for r in self.fallback_rows if r is not row]
        self.fallback_rows = []
        for provider, model in kept:
            self.add_fallback(str(provider), model)
        self._show_fallbacks()

    def _show_fallbacks(self) -> None:
        self.fallbacks.controls = [r.root for r in self.fallback_rows] or [
            ft.Text(t("None: a failing provider fails the message."), size=13,
                    color=ft.Colors.ON_SURFACE_VARIANT)]

    def agent_values(self) -> dict[str, Any]:
        """The agent settings as the forms hold them, in AgentConfig's shape."""
        values = {**_form_values(self.agent_form), **_form_values(self.advanced_form)}
        values["provider"] = self.default_provider.value or None
        values["system_prompts"] = {str(r.channel.value): (r.prompt.value or "")
                                    for r in self.prompt_rows
                                    if r.channel.value and (r.prompt.value or "").strip()}
        values["fallbacks"] = [v for r in self.fallback_rows if (v := r.value()) is not None]
        return values

    def show_agent_errors(self, errors: Sequence[FieldError]) -> None:
        mine, other = _split(errors, "agent.")
        self.default_provider.error_text = "; ".join(
            e.message for e in mine if e.field == "provider") or None
        main = [e for e in mine if e.field in self.agent_form.fields]
        advanced = [e for e in mine if e.field in self.advanced_form.fields]
        self.agent_form.show_errors(main)
        self.advanced_form.show_errors(advanced)
        self.advanced.expanded = self.advanced.expanded or bool(advanced)
        shown = {e.field for e in main + advanced} | {"provider"}
        rest = [f"{_titles().get(e.field, e.field)}: {e.message}" for e in mine
                if e.field not in shown]
        rest += [f"{e.field}: {e.message}" if e.field else e.message for e in other]
        self.agent_error.value = "\n".join(rest)
        self.agent_error.visible = bool(rest)

    async def save_agent(self, refresh: Refresh = _nothing) -> bool:
        agent = self.agent_values()
        self.agent_status.hide()
        self.save_agent_button.disabled = True
        refresh()
        try:
            errors = await self.save(self.providers, agent)
        finally:
            self.save_agent_button.disabled = False
        if errors:
            self.show_agent_errors(errors)
            self.agent_status.show(False, t("Not saved: see the fields marked above."))
            return False
        self.agent_status.show(True, t("Saved — used from the next message."))
        return True

    def _agent_touched(self, e: ft.Event[ft.Control]) -> None:
        self.agent_status.hide()

    def _on_add_prompt(self, e: ft.Event[ft.Control]) -> None:
        self.add_prompt()
        self._show_prompts()
        e.page.update()

    def _on_add_fallback(self, e: ft.Event[ft.Control]) -> None:
        self.add_fallback()
        self._show_fallbacks()
        e.page.update()

    async def _on_save_agent(self, e: ft.Event[ft.Control]) -> None:
        await self.save_agent(e.page.update)
        e.page.update()

    # -- theme and navigation ------------------------------------------------------------------

    async def restore_theme(self, page: ft.Page | ft.BasePage | None) -> None:
        """The client's remembered theme, if any; otherwise show what the page uses (flet.toml).
        A theme chosen while the store was read stands (the view loads after the page shows)."""
        choices = self._theme_choices
        try:
            mode = await self.theme_store.get()
        except Exception as exc:  # noqa: BLE001 - the page keeps flet.toml's theme
            _log.warning("could not read the remembered theme: %s", exc)
            mode = None
        if self._theme_choices != choices:
            return
        if mode is not None and page is not None:
            page.theme_mode = THEME_MODES[mode]
        elif page is not None and page.theme_mode is not None:
            mode = next((k for k, v in THEME_MODES.items() if v == page.theme_mode), None)
        self.theme_picker.selected = [mode or "system"]

    async def set_theme(self, mode: str, page: ft.Page | ft.BasePage | None) -> None:
        """Apply at once, then remember it for this client."""
        if mode not in THEME_MODES:
            raise ValueError(f"unknown theme {mode!r}; one of {', '.join(THEME_MODES)}")
        self._theme_choices += 1
        self.theme_picker.selected = [mode]
        if page is not None:
            page.theme_mode = THEME_MODES[mode]
            page.update()
        try:
            await self.theme_store.set(mode)
        except Exception as exc:  # noqa: BLE001 - applied anyway, just not remembered
            _log.warning("could not remember the theme: %s", exc)

    async def restore_language_choice(self) -> None:
        """Show the client's remembered language choice ("system" when none)."""
        try:
            code = await self.language_store.get()
        except Exception as exc:  # noqa: BLE001 - the picker shows "System"
            _log.warning("could not read the remembered language: %s", exc)
            code = None
        self.language_picker.value = code or SYSTEM_LANGUAGE

    async def set_language_choice(self, code: str, page: ft.Page | ft.BasePage | None) -> None:
        """Remember it for this client, show the page in it and rebuild the page's views,
        so every one of them speaks it at once."""
        if code != SYSTEM_LANGUAGE and code not in LANGUAGES:
            raise ValueError(f"unknown language {code!r}; system or one of {', '.join(LANGUAGES)}")
        self.language_picker.value = code
        try:
            await self.language_store.set(code)
        except Exception as exc:  # noqa: BLE001 - applied anyway, just not remembered
            _log.warning("could not remember the language: %s", exc)
        if page is None:
            return
        set_language(page, system_language() if code == SYSTEM_LANGUAGE else code)
        rebuild = _rebuilders.get(id(page))
        if rebuild is not None:
            await rebuild()
        else:
            page.update()

    async def _on_language(self, e: ft.Event[ft.Dropdown]) -> None:
        await self.set_language_choice(str(self.language_picker.value or SYSTEM_LANGUAGE),
                                       e.page)

    async def _on_theme(self, e: ft.Event[ft.SegmentedButton]) -> None:
        await self.set_theme(next(iter(self.theme_picker.selected or ["system"])), e.page)

    async def _on_open_channels(self, e: ft.Event[ft.Control]) -> None:
        await e.page.push_route(CHANNELS_ROUTE)

    async def _on_open_guide(self, e: ft.Event[ft.Control]) -> None:
        await e.page.push_route(SETUP_ROUTE)

    def _notify(self, ok: bool, message: str) -> None:
        self.notice.show(ok, message)

    def apply(self, events: Sequence[Event], now: float) -> None:
        """Settings do not follow live traffic."""

