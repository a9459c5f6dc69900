"""Settings → Profiles against the real control plane of a running gateway: the list, the
generated form, errors under their fields with nothing written, a save applied to the
next message (the OpenAI fake sees it), an edit with a rename, a delete; and the monitor's
read-only token over the control API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import flet as ft
import pytest
import yaml

from pyclaw_app.control.chat import ask
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.remote import AdminRequired, RemoteControlPlane
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, provider_section
from tests.fakes.openai_api import FakeOpenAI
from views.forms import SchemaForm
from views.profiles_view import ProfileEditor, ProfilesSection
from views.settings_view import SettingsView

CONFIG = {"agent": {"system_prompt": "Default."},
          "channels": {"local": {"type": "local"}}}


def type_into(form: SchemaForm, name: str, text: str) -> None:
    field = form[name]
    assert isinstance(field.input, ft.TextField), name
    field.input.value = text


def choose(form: SchemaForm, name: str, value: str) -> None:
    field = form[name]
    assert isinstance(field.input, ft.Dropdown), name
    field.input.value = value


def texts(control: Any) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, ft.Text) and node.value:
            found.append(str(node.value))
        for attr in ("content", "controls", "title", "actions"):
            child = getattr(node, attr, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, ft.Control):
                    walk(item)

    walk(control)
    return found


def tooltips(control: Any) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, ft.IconButton) and node.tooltip:
            found.append(str(node.tooltip))
        for attr in ("content", "controls"):
            child = getattr(node, attr, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, ft.Control):
                    walk(item)

    walk(control)
    return found


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(models=("fake-model", "fake-small")) as server:
        yield server  # type: ignore[misc]


async def running(make_gateway: GatewayFactory, llm: FakeOpenAI, tmp_path: Path
                  ) -> tuple[Gateway, ProfilesSection, Path]:
    gateway = await make_gateway({**CONFIG, "providers": [provider_section(llm)]})
    path = tmp_path / "pyclaw-0.yaml"
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"),
                              path)
    section = ProfilesSection(plane)
    await section.load()
    return gateway, section, path


def fill(editor: ProfileEditor) -> None:
    type_into(editor.form, "name", "vip")
    type_into(editor.form, "match", "local:vip-room")
    type_into(editor.form, "system_prompt", "You serve {user} first.")
    choose(editor.form, "provider", "fake")
    type_into(editor.form, "model", "fake-small")
    type_into(editor.form, "temperature", "0.3")
    type_into(editor.form, "tools", "calculate")


async def test_add_a_profile_and_the_next_message_uses_it(
        make_gateway: GatewayFactory, llm: FakeOpenAI, tmp_path: Path) -> None:
    gateway, section, path = await running(make_gateway, llm, tmp_path)
    assert texts(section.cards) == [
        "No profile yet: every channel uses the assistant's settings."]
    editor = section.open_editor(None)
    assert section.root.controls == [editor.root]
    provider = editor.form["provider"]
    assert provider.spec.options == ("The assistant's default", "fake")
    assert "Channels: local." in editor.form["match"].spec.help
    assert "calculate" in editor.form["tools"].spec.help
    fill(editor)
    assert await editor.save()
    assert section.editor is None and section.root.controls == [section.list_page]
    shown = texts(section.cards)
    assert "vip" in shown and "Used on local:vip-room" in shown
    assert "Answers with fake/fake-small" in shown
    assert "temperature 0.3 · own system prompt · tools: calculate" in shown
    assert section.notice.message.startswith("Profile vip saved")
    saved = yaml.safe_load(path.read_text("utf-8"))["profiles"]
    assert saved == {"vip": {"match": ["local:vip-room"],
                             "system_prompt": "You serve {user} first.", "provider": "fake",
                             "model": "fake-small", "temperature": 0.3, "tools": ["calculate"]}}

    # applied at once: the chat of the profile, and another chat of the same channel
    await ask(gateway, "hello", chat="vip-room", timeout=10)
    request = llm.requests[-1]
    assert request["model"] == "fake-small" and request["temperature"] == 0.3
    assert request["messages"][0]["content"].startswith("You serve ")
    assert [t["function"]["name"] for t in request["tools"]] == ["calculate"]
    await ask(gateway, "hello", chat="lobby", timeout=10)
    request = llm.requests[-1]
    assert request["model"] == "fake-model" and "temperature" not in request
    assert request["messages"][0]["content"] == "Default."


async def test_errors_land_under_their_fields_and_nothing_is_written(
        make_gateway: GatewayFactory, llm: FakeOpenAI, tmp_path: Path) -> None:
    _, section, path = await running(make_gateway, llm, tmp_path)
    before = path.read_text("utf-8")
    editor = section.open_editor(None)
    type_into(editor.form, "name", "two words")
    type_into(editor.form, "match", "nowhere, local:")
    assert not await editor.save()
    assert "letters, digits" in str(editor.form["name"].error)
    assert "write a channel name" in str(editor.form["match"].error)

    type_into(editor.form, "name", "ok")
    type_into(editor.form, "match", "nowhere")
    type_into(editor.form, "temperature", "3")
    assert not await editor.save()
    assert "less than or equal to 2" in str(editor.form["temperature"].error)
    type_into(editor.form, "temperature", "")
    type_into(editor.form, "tools", "teleport")
    assert not await editor.save()
    assert "no built-in tool is called teleport" in str(editor.form["tools"].error)
    type_into(editor.form, "tools", "")
    assert not await editor.save()
    assert "no channel is called 'nowhere'" in str(editor.form["match"].error)
    assert path.read_text("utf-8") == before and section.editor is editor

    type_into(editor.form, "match", "local")
    assert await editor.save()
    other = section.open_editor(None)
    type_into(other.form, "name", "second")
    type_into(other.form, "match", "local")
    assert not await other.save()
    assert "already used by profile 'ok'" in str(other.form["match"].error)
    type_into(other.form, "name", "ok")
    type_into(other.form, "match", "local:x")
    assert not await other.save()
    assert "another profile is called 'ok'" in str(other.form["name"].error)


async def test_edit_renames_in_place_keeps_an_empty_list_and_delete_asks_first(
        make_gateway: GatewayFactory, llm: FakeOpenAI, tmp_path: Path) -> None:
    gateway, section, path = await running(make_gateway, llm, tmp_path)
    for name, body in (("first", {"match": ["local:a"], "tools": [], "language": "German"}),
                       ("second", {"match": ["local"]})):
        assert await section.plane.save_profile({"name": name, **body}) == []
    await section.load()
    assert "in German · no built-in tools" in texts(section.cards)
    assert tooltips(section.cards) == ["Edit profile first", "Delete profile first",
                                       "Edit profile second", "Delete profile second"]

    editor = section.open_editor("first")
    assert editor.form["language"].input.value == "German"
    assert editor.form["tools"].input.value == ""  # stored as [], shown blank
    type_into(editor.form, "name", "kids")
    assert await editor.save()
    assert list(gateway.config.profiles) == ["kids", "second"]  # the first still wins a:
    saved = yaml.safe_load(path.read_text("utf-8"))["profiles"]
    assert saved["kids"] == {"match": ["local:a"], "tools": [], "language": "German"}
    await ask(gateway, "hi", chat="a", timeout=10)
    request = llm.requests[-1]
    assert "tools" not in request and "Always answer in German" in \
        request["messages"][0]["content"]

    page = SimpleNamespace(dialogs=[], show_dialog=lambda d: page.dialogs.append(d))
    dialog = section.confirm_delete("kids", page)  # type: ignore[arg-type]
    assert page.dialogs == [dialog] and "Delete profile kids?" in texts(dialog)
    assert await section.delete("kids")
    assert [r.name for r in section.rows] == ["second"]
    assert section.notice.message == "Profile kids deleted."
    assert await section.delete("kids") is False
    assert "no profile is called 'kids'" in section.notice.message


async def test_settings_shows_the_section_and_a_stale_problem_on_its_card(
        make_gateway: GatewayFactory, llm: FakeOpenAI, tmp_path: Path) -> None:
    gateway = await make_gateway({**CONFIG, "providers": [provider_section(llm)],
                                  "profiles": {"old": {"match": ["gone"]}}})
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"),
                              tmp_path / "pyclaw-0.yaml")
    view = SettingsView(plane)
    await view.load()
    assert "Profiles" in texts(view.root)
    assert "match: no channel is called 'gone': this entry applies to nothing" in \
        texts(view.profiles.cards)


async def test_the_monitor_token_lists_profiles_and_may_not_change_them(
        tmp_path: Path, llm: FakeOpenAI) -> None:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": 0, "control_api": True}, "providers": [provider_section(llm)],
        "profiles": {"support": {"match": ["local"], "temperature": 0.5}},
        "channels": {"local": {"type": "local"}}}))
    host = await GatewayHost.start(config, tmp_path / "data")
    try:
        assert host.server is not None
        secrets = host.runtime.secrets
        monitor = await RemoteControlPlane(host.server.url,
                                           secrets.get(MONITOR_TOKEN_KEY) or "").connect()
        admin = await RemoteControlPlane(host.server.url,
                                         secrets.get(ADMIN_TOKEN_KEY) or "").connect()
        try:
            listed = await monitor.profiles()
            assert [(r.name, r.used_on) for r in listed.profiles] == [("support", ("local",))]
            assert listed.schema["properties"]["name"]["title"] == "Name"
            with pytest.raises(AdminRequired):
                await monitor.save_profile({"name": "x"})
            with pytest.raises(AdminRequired):
                await monitor.delete_profile("support")
            watcher = ProfilesSection(monitor)
            await watcher.load()
            assert "Used on local" in texts(watcher.cards)
            assert tooltips(watcher.cards) == [] and not watcher.add_button.visible

            errors = await admin.save_profile({"name": "support", "match": ["local"],
                                               "temperature": "warm"}, "support")
            assert [e.field for e in errors] == ["temperature"]
            assert await admin.save_profile({"name": "support", "match": ["local"],
                                             "language": "French"}, "support") == []
            assert host.runtime.gateway.config.profiles["support"].language == "French"
        finally:
            await monitor.close()
            await admin.close()
    finally:
        await host.stop()
