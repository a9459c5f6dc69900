"""The first-run guide: 1 provider, 2 test, 3 channel, 4 pairing, done.

A new owner sees it on the first start of a gateway with no LLM provider (the shell
opens it; ``wanted``), can skip it (remembered by the gateway, so it stays closed)
and opens it again from Settings. Each step calls the plane only: the provider is
tested with one real chat completion (``test_completion``) and saved the way Settings
saves one (``save_settings``: the key goes to the secret store, never the YAML); the
local chat is added with ``save_channel``; pairing is explained, not configured.

Steps are data (``step``) and the card is rebuilt from it; the methods that do the
work return what happened, so tests drive the guide without a page. Handlers only
call them, push a route where the guide sends the owner, and update the page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import flet as ft

from pyclaw_app.control import (
    CompletionCheck,
    ControlPlane,
    FieldError,
    FirstRunState,
    LocalServer,
)
from pyclaw_app.model import Event
from views.forms import labelled
from views.i18n import t
from views.status_line import StatusLine

__all__ = ["ANTHROPIC", "CHANNELS_ROUTE", "CHAT_ROUTE", "COMPATIBLE", "DONE_ROUTE", "LOCAL",
           "OPENAI", "SETUP_ROUTE", "STEPS", "FirstRunGuide"]

_log = logging.getLogger(__name__)

SETUP_ROUTE = "/setup"
CHANNELS_ROUTE = "/channels"
CHAT_ROUTE = "/chat"
DONE_ROUTE = "/dashboard"
"""Where skipping or finishing the guide lands: the panel's first view."""

PROVIDER, TEST, CHANNEL, PAIRING, DONE = range(5)
STEPS = ("Provider", "Test", "Channel", "Pairing", "Done")
"""The steps' English names (also their order); ``step_labels`` says them in the page's."""

LOCAL, OPENAI, ANTHROPIC, COMPATIBLE = "local", "openai", "anthropic", "compatible"


def step_labels() -> tuple[str, ...]:
    """STEPS in the page's language."""
    return (t("Provider"), t("Test"), t("Channel"), t("Pairing"), t("Done"))


def choices() -> dict[str, str]:
    """The provider choices' radio labels (short: one line, also on a phone)."""
    return {LOCAL: t("A server on this computer"), OPENAI: "OpenAI",
            ANTHROPIC: t("Anthropic (Claude)"), COMPATIBLE: t("Another OpenAI-compatible API")}


def choice_hints() -> dict[str, str]:
    return {
        LOCAL: t("Ollama, LM Studio, vLLM, llama.cpp's server or LocalAI, running here: free "
                 "per message, and nothing leaves this machine."),
        OPENAI: t("GPT models, paid per message with an API key."),
        ANTHROPIC: t("Claude models, paid per message with an API key."),
        COMPATIBLE: t("OpenRouter, Groq, Together, or your own server elsewhere: its base URL "
                      "and usually a key."),
    }
DEFAULT_MODELS = {OPENAI: "gpt-4o-mini", ANTHROPIC: "claude-3-5-haiku-latest"}
KEY_PAGES = {OPENAI: "platform.openai.com/api-keys",
             ANTHROPIC: "console.anthropic.com/settings/keys"}
EXAMPLE_CODE = "K7QH2M"
"""The pairing code of the example request (a code, the same in every language)."""
USUAL_PORTS = ("Ollama 11434, LM Studio 1234, vLLM 8000, llama.cpp server and LocalAI 8080")

Refresh = Callable[[], None]
Handler = Callable[[ft.Event[ft.Control]], Awaitable[None]]


def _nothing() -> None:
    """The default refresh: control-level tests have no page to update."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "provider"


def unique_name(base: str, taken: Sequence[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever no provider is called yet."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _card(*controls: ft.Control) -> ft.Container:
    return ft.Container(
        padding=ft.Padding.symmetric(horizontal=20, vertical=16),
        border_radius=12,
        bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
        border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
        content=ft.Column(spacing=14, horizontal_alignment=ft.CrossAxisAlignment.STRETCH,
                          controls=list(controls)),
    )


def _title(text: str) -> ft.Text:
    return ft.Text(text, theme_style=ft.TextThemeStyle.TITLE_MEDIUM, weight=ft.FontWeight.W_600)


def _muted(text: str) -> ft.Text:
    return ft.Text(text, color=ft.Colors.ON_SURFACE_VARIANT)


class FirstRunGuide:
    """The guide as one panel of the shell (shown on ``SETUP_ROUTE``)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.state: FirstRunState | None = None
        self.step = PROVIDER
        self.servers: list[LocalServer] = []
        self.scanned = False
        self.check: CompletionCheck | None = None
        self.tested: dict[str, Any] | None = None
        """The provider values the last check was made with."""
        self.saved: str = ""
        """The name the guide saved its provider under ("" before)."""
        self.local_chat = False
        self.pending_pairings = 0

        self.choice = ft.RadioGroup(value=LOCAL, on_change=self._on_choice, content=ft.Column(
            spacing=2, controls=[ft.Radio(value=k, label=v) for k, v in choices().items()]))
        self.scan_progress = ft.ProgressRing(width=18, height=18, stroke_width=2.5,
                                             visible=False,
                                             semantics_label=t("Looking for a local server"))
        self.scan_result = ft.Text(color=ft.Colors.ON_SURFACE_VARIANT, expand=True)
        self.scan_button = ft.OutlinedButton(t("Look again"), icon=ft.Icons.REFRESH,
                                             on_click=self._on_scan)
        self.server = ft.Dropdown(label=t("Local server"), expand=True, on_select=self._on_server)
        self.server_row = ft.Row([labelled(self.server, t("Local server"), expand=True)])
        self.models = ft.Dropdown(label=t("Available models"), expand=True,
                                  on_select=self._on_model)
        self.models_row = ft.Row([labelled(self.models, t("Available models"), expand=True)])
        self.name = ft.TextField(label=t("Name"),
                                 helper=t("What usage, logs and fallbacks call it"))
        self.base_url = ft.TextField(
            label=t("Base URL"), helper=t("The API's root, e.g. {url}",
                                          url="https://openrouter.ai/api/v1"))
        self.api_key = ft.TextField(label=t("API key"), password=True, can_reveal_password=True)
        self.model = ft.TextField(label=t("Model"),
                                  helper=t("The model name the provider knows"))
        self.choice_hint = ft.Text(size=13, color=ft.Colors.ON_SURFACE_VARIANT)
        self.provider_error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)

        self.test_progress = ft.ProgressRing(width=20, height=20, stroke_width=2.5,
                                             visible=False,
                                             semantics_label=t("Waiting for the answer"))
        self.test_result = StatusLine(wrap=True)
        self.answer = ft.Text(italic=True)
        self.answer_box = ft.Container(
            visible=False, padding=12, border_radius=10, bgcolor=ft.Colors.SECONDARY_CONTAINER,
            content=ft.Column(spacing=4, controls=[
                ft.Text(t("The answer"), size=12, color=ft.Colors.ON_SECONDARY_CONTAINER),
                self.answer]))
        self.save_note = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.save_result = StatusLine(wrap=True)
        self.channel_result = StatusLine(wrap=True)

        self.stepper = ft.Row(wrap=True, spacing=8, run_spacing=8)
        self.body = ft.Column(spacing=14, horizontal_alignment=ft.CrossAxisAlignment.STRETCH)
        self.skip_button = ft.TextButton(t("Skip the guide"), icon=ft.Icons.CLOSE,
                                         on_click=self._on_skip)
        self.notice = StatusLine(wrap=True)
        self._root = ft.Column(expand=True, scroll=ft.ScrollMode.AUTO, spacing=16, controls=[
            ft.Row(wrap=True, alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
                   vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                       ft.Text(t("Set up pyclaw"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
                       self.skip_button]),
            _muted(t("Four short steps: where the answers come from, a test, a first channel, "
                     "and who may talk to the assistant. You can open this guide again from "
                     "Settings.")),
            self.stepper,
            self.notice.root,
            ft.ResponsiveRow(controls=[ft.Container(col={"xs": 12, "md": 11, "lg": 9, "xl": 8},
                                                    content=self.body)]),
        ])
        self.show_choice(LOCAL)
        self.render()

    @property
    def root(self) -> ft.Control:
        return self._root

    @property
    def wanted(self) -> bool:
        """Open by itself: no provider yet and never skipped or finished (and this client may
        change the gateway at all)."""
        return (self.state is not None and self.state.show
                and not getattr(self.plane, "read_only", False))

    # -- loading -------------------------------------------------------------------------------

    async def load(self) -> None:
        """Whether the guide is due; when it is, look for a local server once (half a second
        at most). A failure means "not due": the other views must still work."""
        try:
            self.state = await self.plane.first_run_state()
        except Exception as exc:  # noqa: BLE001 - an older gateway has no guide
            _log.info("the first-run guide is not available: %s", exc)
            self.state = None
            return
        if self.wanted and not self.scanned:
            await self.scan()
            self.render()

    def apply(self, events: Sequence[Event], now: float) -> None:
        """The guide does not follow live traffic."""

    def reopen(self) -> None:
        """Shown again (from Settings): a finished guide starts over, one in progress stays."""
        if self.step == DONE:
            self.step = PROVIDER
            self.check = self.tested = None
            self.saved = ""
            self.render()

    # -- step 1: the provider ----------------------------------------------------------------

    async def scan(self, refresh: Refresh = _nothing) -> list[LocalServer]:
        self.scan_progress.visible = True
        self.scan_button.disabled = True
        self.scan_result.value = t("Looking for a local server…")
        refresh()
        try:
            self.servers = await self.plane.find_local_servers()
        except Exception as exc:  # noqa: BLE001 - said where the list would be
            _log.warning("find_local_servers failed: %s", exc)
            self.servers = []
            self.scan_result.value = t("Could not look for local servers: {error}", error=exc)
        else:
            self.scan_result.value = self._scan_words()
        finally:
            self.scan_progress.visible = False
            self.scan_button.disabled = False
            self.scanned = True
        self.server.options = [ft.DropdownOption(key=s.base_url, text=self._server_text(s))
                               for s in self.servers]
        if self.servers:
            self.pick_server(self.servers[0].base_url)
        else:
            self.server.value = None
        self.show_choice(str(self.choice.value or LOCAL))
        return self.servers

    def _scan_words(self) -> str:
        if not self.servers:
            return t("No local server answered on the usual ports ({ports}). Start one and "
                     "look again, or choose a hosted provider below.", ports=USUAL_PORTS)
        names = ", ".join(t("{name} at {url}", name=s.name, url=s.base_url)
                          for s in self.servers)
        return t("Found {servers}.", servers=names)

    @staticmethod
    def _server_text(server: LocalServer) -> str:
        count = len(server.models)
        models = (t("{count} model", count=count) if count == 1
                  else t("{count} models", count=count)) if count else server.note
        return f"{server.name} · {server.base_url} · {models}"

    def pick_server(self, base_url: str) -> None:
        server = next((s for s in self.servers if s.base_url == base_url), None)
        if server is None:
            return
        self.server.value = base_url
        self.models.options = [ft.DropdownOption(key=m, text=m) for m in server.models]
        self.models.value = server.models[0] if server.models else None
        self.model.value = server.models[0] if server.models else ""
        self.models_row.visible = bool(server.models)
        self.name.value = self._default_name(_slug(server.name.split(" or ")[0]))

    def show_choice(self, choice: str) -> None:
        """Show the fields the choice needs, with its defaults (a typed key is kept)."""
        self.choice.value = choice
        self.choice_hint.value = choice_hints().get(choice, "")
        local = choice == LOCAL
        self.server_row.visible = local and bool(self.servers)
        self.models_row.visible = local and bool(self.server.value) and bool(
            self.models.options)
        self.base_url.visible = choice == COMPATIBLE
        for field in (self.api_key, self.model, self.name):  # nothing to fill in without one
            field.visible = not local or bool(self.servers)
        self.api_key.label = t("API key") if choice in KEY_PAGES else \
            t("API key (blank if the server needs none)")
        self.api_key.helper = (t("Make one at {page}. It is kept in the system keyring, never "
                                 "in the config file.", page=KEY_PAGES[choice])
                               if choice in KEY_PAGES
                               else t("Kept in the system keyring, never in the config file."))
        if local:
            if self.server.value:
                self.pick_server(str(self.server.value))
            else:
                self.model.value = ""
                self.name.value = self._default_name("local")
        else:
            self.model.value = DEFAULT_MODELS.get(choice, "")
            self.name.value = self._default_name(choice if choice in KEY_PAGES else "custom")
        for field in (self.name, self.base_url, self.api_key, self.model):
            field.error = None
        self.provider_error.visible = False

    def _taken(self) -> list[str]:
        try:
            return [str(p.get("name")) for p in self.plane.settings_form().providers]
        except Exception:  # noqa: BLE001 - a default name is only a suggestion
            return []

    def _default_name(self, base: str) -> str:
        return unique_name(base, self._taken())

    def provider(self) -> dict[str, Any]:
        """The provider the step's fields describe, in ProviderConfig's shape."""
        choice = self.choice.value
        values: dict[str, Any] = {
            "name": (self.name.value or "").strip(),
            "kind": "anthropic" if choice == ANTHROPIC else "openai",
            "model": (self.model.value or "").strip(),
        }
        if choice == LOCAL and self.server.value:
            values["base_url"] = str(self.server.value)
        elif choice == COMPATIBLE:
            values["base_url"] = (self.base_url.value or "").strip()
        key = (self.api_key.value or "").strip()
        if key:
            values["api_key"] = key
        return values

    def check_provider(self) -> bool:
        """What the guide can tell before asking the gateway: the fields it needs are filled."""
        choice = self.choice.value
        needed = [(self.name, t("Give it a name.")),
                  (self.model, t("Which model should answer?"))]
        if choice == COMPATIBLE:
            needed.append((self.base_url, t("The service's base URL, e.g. {url}",
                                            url="https://…/v1")))
        if choice in KEY_PAGES:
            needed.append((self.api_key, t("Paste the key from {page}.",
                                           page=KEY_PAGES.get(choice, ""))))
        ok = True
        for field, words in needed:
            field.error = None if (field.value or "").strip() else words
            ok = ok and field.error is None
        self.provider_error.visible = choice == LOCAL and not self.server.value
        if self.provider_error.visible:
            self.provider_error.value = t("No local server is selected: start one and look "
                                          "again, or choose another option.")
            ok = False
        return ok

    async def next_from_provider(self, refresh: Refresh = _nothing) -> bool:
        """On to the test, which starts at once."""
        if not self.check_provider():
            return False
        self.step = TEST
        self.render()
        await self.run_test(refresh)
        return True

    # -- step 2: the test and saving ---------------------------------------------------------

    async def run_test(self, refresh: Refresh = _nothing) -> CompletionCheck:
        values = self.provider()
        self.test_progress.visible = True
        self.test_result.hide()
        self.answer_box.visible = False
        refresh()
        try:
            check = await self.plane.test_completion(values)
        except Exception as exc:  # noqa: BLE001 - the result line says what went wrong
            _log.warning("test_completion failed: %s", exc)
            check = CompletionCheck(False, "error", t("Could not test: {error}", error=exc))
        finally:
            self.test_progress.visible = False
        self.check, self.tested = check, values
        self.render()
        return check

    async def save_provider(self, refresh: Refresh = _nothing) -> list[FieldError]:
        """Save it as Settings does, as the default provider; on to the channel step."""
        values = self.provider()
        if self.saved and self.saved == values["name"]:  # back and on again: saved already
            await self.go(CHANNEL)
            return []
        position = ""
        try:
            form = self.plane.settings_form()
            position = f"providers.{len(form.providers)}."
            providers = [dict(p) for p in form.providers] + [values]
            agent = {**form.agent, "provider": values["name"]}
            errors = await self.plane.save_settings(providers, agent)
        except Exception as exc:  # noqa: BLE001 - said on the step, nothing is lost
            _log.warning("saving the guide's provider failed: %s", exc)
            errors = [FieldError("", t("could not save: {error}", error=exc))]
        if errors:
            self.save_note.value = t("Not saved: ") + "; ".join(
                f"{e.field.removeprefix(position)}: {e.message}" if e.field else e.message
                for e in errors)
            self.save_note.visible = True
            refresh()
            return errors
        self.saved = str(values["name"])
        self.api_key.value = ""  # stored now; the guide keeps no copy
        self.save_note.visible = False
        await self.load_channels()
        self.step = CHANNEL
        self.render()
        return []

    # -- step 3: a channel -------------------------------------------------------------------

    async def load_channels(self) -> None:
        try:
            self.local_chat = any(c.type == "local" for c in await self.plane.channels())
        except Exception as exc:  # noqa: BLE001 - the step offers to add it then
            _log.warning("could not list channels: %s", exc)
            self.local_chat = False

    async def add_local_chat(self) -> bool:
        try:
            errors = await self.plane.save_channel("local", "local", {})
        except Exception as exc:  # noqa: BLE001 - said on the step
            errors = [FieldError("", str(exc))]
        if errors:
            self.channel_result.show(False, t("The local chat was not added: ") + "; ".join(
                e.message for e in errors))
            return False
        self.local_chat = True
        self.channel_result.show(True, t("The local chat is ready."))
        self.render()
        return True

    # -- step 4, done, and leaving -----------------------------------------------------------

    async def load_pairing(self) -> None:
        try:
            self.pending_pairings = len(await self.plane.pairing_requests())
        except Exception as exc:  # noqa: BLE001 - the explanation stands without the count
            _log.warning("could not read pairing requests: %s", exc)
            self.pending_pairings = 0

    async def go(self, step: int) -> None:
        if step == CHANNEL:
            await self.load_channels()
        if step == PAIRING:
            await self.load_pairing()
        self.step = step
        self.render()

    async def finish(self) -> bool:
        """Remember the guide as finished; shows the summary."""
        ok = await self._close("finished")
        self.step = DONE
        self.render()
        return ok

    async def skip(self) -> bool:
        """Remember the skip; the shell then shows the panel's first view."""
        return await self._close("skipped")

    async def _close(self, how: str) -> bool:
        try:
            self.state = await self.plane.close_first_run(how)
        except Exception as exc:  # noqa: BLE001 - the guide still closes, just not for good
            _log.warning("close_first_run failed: %s", exc)
            self.notice.show(False, t("Could not remember that: {error}", error=exc))
            return False
        self.notice.hide()
        return True

    # -- rendering ---------------------------------------------------------------------------

    def render(self) -> None:
        self.stepper.controls = [self._chip(i, label) for i, label in enumerate(step_labels())]
        self.skip_button.visible = self.step != DONE
        self.body.controls = [(self._provider_step, self._test_step, self._channel_step,
                               self._pairing_step, self._done_step)[self.step]()]

    def _chip(self, index: int, label: str) -> ft.Control:
        current, past = index == self.step, index < self.step
        icon = ft.Icons.CHECK_CIRCLE if past else (
            ft.Icons.RADIO_BUTTON_CHECKED if current else ft.Icons.RADIO_BUTTON_UNCHECKED)
        words = f"{index + 1} {label}" if index < DONE else label
        state = t("current step") if current else (t("done") if past else t("to do"))
        return ft.Container(
            padding=ft.Padding.symmetric(horizontal=12, vertical=6), border_radius=16,
            bgcolor=ft.Colors.PRIMARY_CONTAINER if current else None,
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Row(tight=True, spacing=6, controls=[
                ft.Icon(icon, size=16, color=ft.Colors.PRIMARY),
                ft.Text(words, weight=ft.FontWeight.W_600 if current else None,
                        semantics_label=t("Step {step}, {state}", step=words, state=state))]))

    def _actions(self, *controls: ft.Control) -> ft.Row:
        return ft.Row(wrap=True, spacing=12, run_spacing=8,
                      vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=list(controls))

    def _back(self, step: int) -> ft.Control:
        return ft.TextButton(t("Back"), icon=ft.Icons.ARROW_BACK, on_click=self._goer(step))

    def _provider_step(self) -> ft.Control:
        return _card(
            _title(t("1 · Where do the answers come from?")),
            _muted(t("The assistant needs a language model. A server on this computer costs "
                     "nothing per message; a hosted one needs an API key.")),
            self.choice,
            self.choice_hint,
            ft.Row(spacing=12, vertical_alignment=ft.CrossAxisAlignment.CENTER,
                   controls=[self.scan_progress, self.scan_result, self.scan_button]),
            self.server_row,
            self.base_url,
            self.api_key,
            self.model,
            self.models_row,
            self.name,
            self.provider_error,
            self._actions(ft.FilledButton(t("Next: test it"), icon=ft.Icons.ARROW_FORWARD,
                                          on_click=self._on_next_provider)),
        )

    def _test_step(self) -> ft.Control:
        check = self.check
        where = self.tested or self.provider()
        target = where.get("base_url") or ("api.anthropic.com" if where.get("kind") ==
                                           "anthropic" else "api.openai.com")
        if check is not None:
            self.test_result.show(check.ok, check.message)
            self.answer.value = check.answer
            self.answer_box.visible = bool(check.answer)
        failed = check is not None and not check.ok
        save = ft.FilledButton(t("Save anyway") if failed else t("Save and continue"),
                               icon=ft.Icons.SAVE_OUTLINED, on_click=self._on_save,
                               disabled=check is None,
                               style=ft.ButtonStyle(bgcolor=ft.Colors.ERROR,
                                                    color=ft.Colors.ON_ERROR) if failed else None)
        warning = _muted(t("Saved like this, messages to it fail until it answers."))
        warning.visible = failed
        return _card(
            _title(t("2 · Test it with a real message")),
            _muted(t("One short message goes to {model} at {target}, through the same code the "
                     "assistant uses for every answer.", model=where.get("model", ""),
                     target=target)),
            ft.Row([self.test_progress]),
            self.test_result.root,
            self.answer_box,
            warning,
            self.save_note,
            self._actions(self._back(PROVIDER),
                          ft.OutlinedButton(t("Test again"), icon=ft.Icons.REPLAY,
                                            on_click=self._on_test),
                          save),
        )

    def _channel_step(self) -> ft.Control:
        if self.local_chat:
            local = _muted(t("Ready: talk to the assistant in this app (or with `pyclaw chat` "
                             "in a terminal). It needs no account and only you can use it."))
            local_action: ft.Control = ft.OutlinedButton(
                t("Open the chat"), icon=ft.Icons.CHAT_BUBBLE_OUTLINE,
                on_click=self._leaver(CHAT_ROUTE))
        else:
            local = _muted(t("Talk to the assistant in this app: no account, only you can use "
                             "it."))
            local_action = ft.FilledButton(t("Add the local chat"), icon=ft.Icons.ADD,
                                           on_click=self._on_add_local)
        return _card(
            _title(t("3 · A first channel")),
            _muted(t("Channels are where people reach the assistant.")),
            ft.Row(spacing=12, vertical_alignment=ft.CrossAxisAlignment.START, controls=[
                ft.Icon(ft.Icons.CHAT_BUBBLE, color=ft.Colors.PRIMARY),
                ft.Column(expand=True, spacing=6, controls=[
                    ft.Text(t("The local chat"), weight=ft.FontWeight.W_600), local,
                    self._actions(local_action), self.channel_result.root])]),
            ft.Divider(height=1),
            ft.Row(spacing=12, vertical_alignment=ft.CrossAxisAlignment.START, controls=[
                ft.Icon(ft.Icons.HUB, color=ft.Colors.PRIMARY),
                ft.Column(expand=True, spacing=6, controls=[
                    ft.Text(t("A messaging platform"), weight=ft.FontWeight.W_600),
                    _muted(t("Telegram, Discord, Slack, WhatsApp, Matrix and many more: each "
                             "needs a bot account on its platform. Pick one in the catalog, "
                             "fill in its form and press Test connection.")),
                    self._actions(ft.OutlinedButton(
                        t("Open the channel catalog"), icon=ft.Icons.OPEN_IN_NEW,
                        on_click=self._leaver(CHANNELS_ROUTE)))])]),
            self._actions(self._back(TEST),
                          ft.FilledButton(t("Next: pairing"), icon=ft.Icons.ARROW_FORWARD,
                                          on_click=self._goer(PAIRING))),
        )

    def _pairing_step(self) -> ft.Control:
        count = self.pending_pairings
        pending = "" if not count else (
            t("{count} pairing request waits for you now, under Channels.", count=count)
            if count == 1 else
            t("{count} pairing requests wait for you now, under Channels.", count=count))
        example = ft.Container(
            padding=ft.Padding.symmetric(horizontal=12, vertical=6), border_radius=8,
            bgcolor=ft.Colors.SECONDARY_CONTAINER,
            content=ft.Row(wrap=True, spacing=16,
                           vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                               ft.Text(EXAMPLE_CODE, font_family="monospace", size=16,
                                       weight=ft.FontWeight.BOLD),
                               ft.Text(t("Alex on telegram")),
                               ft.Text(t("expires in 59 min"), size=12,
                                       color=ft.Colors.ON_SURFACE_VARIANT),
                               ft.Text(t("[Approve]"), color=ft.Colors.PRIMARY)]))
        steps = [
            t("Someone you have not approved writes to your bot. The assistant does not answer "
              "them: it replies with a short pairing code and says that its owner must "
              "approve it."),
            t("They send you the code (or you see it in the app): Channels lists every waiting "
              "code under Pairing requests, with who asked and on which channel."),
            t("You press Approve (or run `pyclaw pairing approve CODE`). From then on they are "
              "answered. A code expires after an hour; ignore it and nothing happens."),
            t("Groups work the same way: a group that mentions the bot waits, silent, until "
              "you approve it under Group requests."),
        ]
        return _card(
            _title(t("4 · Who may talk to the assistant")),
            _muted(t("A bot that answers anyone spends your tokens, so pyclaw is private by "
                     "default: direct messages need pairing. The local chat is yours and "
                     "open.")),
            *[ft.Row(spacing=10, vertical_alignment=ft.CrossAxisAlignment.START, controls=[
                ft.Container(width=26, height=26, border_radius=13, bgcolor=ft.Colors.PRIMARY,
                             alignment=ft.Alignment.CENTER,
                             content=ft.Text(str(i), color=ft.Colors.ON_PRIMARY, size=13)),
                ft.Text(words, expand=True)]) for i, words in enumerate(steps, 1)],
            ft.Text(t("What a request looks like:"), size=12, color=ft.Colors.ON_SURFACE_VARIANT),
            example,
            ft.Text(pending, visible=bool(pending), weight=ft.FontWeight.W_600),
            _muted(t("Per channel you can instead open it to everyone, keep a fixed allowlist, "
                     "or turn direct messages off (its form's Access section).")),
            self._actions(self._back(CHANNEL),
                          ft.FilledButton(t("Finish"), icon=ft.Icons.CHECK,
                                          on_click=self._on_finish)),
        )

    def _done_step(self) -> ft.Control:
        lines: list[tuple[bool, str]] = []
        if self.saved:
            tested = self.check is not None and self.check.ok
            lines.append((tested, t("Provider {name} saved and answering.", name=self.saved)
                          if tested else
                          t("Provider {name} saved, but its test failed.", name=self.saved)))
        else:
            lines.append((False, t("No provider saved yet: the assistant can only echo.")))
        lines.append((self.local_chat, t("The local chat is ready.") if self.local_chat
                      else t("No local chat: add channels under Channels.")))
        lines.append((True, t("Strangers need your approval (pairing).")))
        return _card(
            _title(t("pyclaw is set up")),
            *[ft.Row(spacing=8, controls=[
                ft.Icon(ft.Icons.CHECK_CIRCLE if ok else ft.Icons.INFO_OUTLINE,
                        color=ft.Colors.GREEN_700 if ok else ft.Colors.ON_SURFACE_VARIANT),
                ft.Text(words, expand=True)]) for ok, words in lines],
            self._actions(
                ft.FilledButton(t("Talk to the assistant"), icon=ft.Icons.CHAT_BUBBLE_OUTLINE,
                                on_click=self._leaver(CHAT_ROUTE)),
                ft.OutlinedButton(t("Go to the dashboard"), icon=ft.Icons.DASHBOARD_OUTLINED,
                                  on_click=self._leaver(DONE_ROUTE))),
        )

    # -- handlers ----------------------------------------------------------------------------

    def _on_choice(self, e: ft.Event[ft.RadioGroup]) -> None:
        self.show_choice(str(self.choice.value or LOCAL))
        e.page.update()

    def _on_server(self, e: ft.Event[ft.Dropdown]) -> None:
        if self.server.value:
            self.pick_server(str(self.server.value))
            self.show_choice(LOCAL)
            e.page.update()

    def _on_model(self, e: ft.Event[ft.Dropdown]) -> None:
        if self.models.value:
            self.model.value = str(self.models.value)
            e.page.update()

    async def _on_scan(self, e: ft.Event[ft.Control]) -> None:
        page = e.page  # before re-rendering: the clicked control may go
        await self.scan(page.update)
        self.render()
        page.update()

    async def _on_next_provider(self, e: ft.Event[ft.Control]) -> None:
        page = e.page  # before re-rendering: the clicked control may go
        await self.next_from_provider(page.update)
        page.update()

    async def _on_test(self, e: ft.Event[ft.Control]) -> None:
        page = e.page  # before re-rendering: the clicked control may go
        await self.run_test(page.update)
        page.update()

    async def _on_save(self, e: ft.Event[ft.Control]) -> None:
        page = e.page  # before re-rendering: the clicked control may go
        await self.save_provider(page.update)
        page.update()

    async def _on_add_local(self, e: ft.Event[ft.Control]) -> None:
        page = e.page  # before re-rendering: the clicked control may go
        await self.add_local_chat()
        page.update()

    def _goer(self, step: int) -> Handler:
        async def on_click(e: ft.Event[ft.Control]) -> None:
            page = e.page  # before re-rendering: the clicked control may go
            await self.go(step)
            page.update()

        return on_click

    async def _on_finish(self, e: ft.Event[ft.Control]) -> None:
        page = e.page  # before re-rendering: the clicked control may go
        await self.finish()
        page.update()

    async def _on_skip(self, e: ft.Event[ft.Control]) -> None:
        page = e.page  # before re-rendering: the clicked control may go
        await self.skip()
        await page.push_route(DONE_ROUTE)

    @staticmethod
    def _leaver(route: str) -> Handler:
        """Off to another view; the guide keeps its step for when it is opened again."""
        async def on_click(e: ft.Event[ft.Control]) -> None:
            await e.page.push_route(route)

        return on_click
