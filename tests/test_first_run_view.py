"""The first-run guide driven against the real local control plane (a gateway on SQLite, the
OpenAI fake as the "local server"): each step, the saved provider's key in the secret
store, skipping remembered, and how the shell opens it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import flet as ft
import pytest

from pyclaw_app.control import FirstRunState
from pyclaw_app.control.first_run import TEST_PROMPT, Candidate
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory
from tests.fakes.openai_api import FakeOpenAI
from tests.ui.fake_plane import FakeControlPlane
from views.first_run import (
    CHANNEL,
    COMPATIBLE,
    DONE,
    LOCAL,
    OPENAI,
    PAIRING,
    PROVIDER,
    SETUP_ROUTE,
    TEST,
    FirstRunGuide,
    unique_name,
)
from views.shell import Shell

KEY = "sk-guide-secret-key"


def shown_texts(node: object) -> str:
    """Every string a user can see in a control tree (invisible controls left out)."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, ft.BaseControl) and value.visible is not False:
            for name in ("value", "label", "content", "controls", "text", "tooltip", "error"):
                walk(getattr(value, name, None))

    walk(node)
    return " | ".join(out)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def keyed_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY, models=("hosted-model",)) as server:
        yield server  # type: ignore[misc]


async def make_plane(make_gateway: GatewayFactory, tmp_path: Path,
                     candidates: list[Candidate]) -> LocalControlPlane:
    gateway = await make_gateway()
    return LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"),
                             gateway.config.path, local_servers=candidates)


def _yaml(plane: LocalControlPlane) -> str:
    path = plane.gateway.config.path
    assert path is not None
    return path.read_text()


async def test_a_local_server_walked_end_to_end(make_gateway: GatewayFactory, tmp_path: Path,
                                                fake_llm: FakeOpenAI) -> None:
    plane = await make_plane(make_gateway, tmp_path, [Candidate("Closed", closed_port()),
                                                      Candidate("Ollama", fake_llm.port)])
    guide = FirstRunGuide(plane)
    await guide.load()
    assert guide.wanted and guide.step == PROVIDER
    assert guide.choice.value == LOCAL and guide.server.value == fake_llm.base_url
    assert f"Found Ollama at {fake_llm.base_url}." in shown_texts(guide.root)
    assert (guide.name.value, guide.model.value) == ("ollama", "fake-model")
    assert guide.provider() == {"name": "ollama", "kind": "openai", "model": "fake-model",
                                "base_url": fake_llm.base_url}

    assert await guide.next_from_provider()
    assert guide.step == TEST and guide.check is not None and guide.check.ok
    texts = shown_texts(guide.root)
    assert f"Echo: {TEST_PROMPT}" in texts and "Save and continue" in texts
    assert fake_llm.requests[-1]["messages"][-1]["content"] == TEST_PROMPT

    assert await guide.save_provider() == []
    assert guide.step == CHANNEL and guide.saved == "ollama"
    form = plane.settings_form()
    assert [p["name"] for p in form.providers] == ["ollama"]
    assert form.agent["provider"] == "ollama"
    assert "The local chat" in shown_texts(guide.root) and guide.local_chat
    assert "Open the chat" in shown_texts(guide.root)
    await guide.go(TEST)  # back, and on again: saved once
    assert await guide.save_provider() == [] and guide.step == CHANNEL
    assert len(plane.settings_form().providers) == 1

    await guide.go(PAIRING)
    texts = shown_texts(guide.root)
    assert "pyclaw pairing approve CODE" in texts and "Pairing requests" in texts
    assert await guide.finish()
    assert guide.step == DONE and (await plane.first_run_state()).closed == "finished"
    texts = shown_texts(guide.root)
    assert "Provider ollama saved and answering." in texts
    assert "Skip the guide" not in texts
    guide.reopen()  # from Settings: a finished guide starts over
    assert guide.step == PROVIDER and guide.saved == ""


async def test_a_hosted_key_goes_to_the_secret_store_never_the_yaml(
        make_gateway: GatewayFactory, tmp_path: Path, keyed_llm: FakeOpenAI) -> None:
    plane = await make_plane(make_gateway, tmp_path, [])
    guide = FirstRunGuide(plane)
    await guide.load()
    assert guide.servers == [] and "No local server answered" in shown_texts(guide.root)
    guide.show_choice(COMPATIBLE)
    assert guide.name.value == "custom" and guide.base_url.visible
    guide.base_url.value = keyed_llm.base_url
    guide.model.value = "hosted-model"
    guide.api_key.value = KEY
    assert await guide.next_from_provider()
    assert guide.check is not None and guide.check.ok
    assert await guide.save_provider() == []

    assert KEY not in _yaml(plane) and "custom" in _yaml(plane)
    secrets = FileSecretStore(tmp_path / "data" / "secrets.json")
    assert secrets.get("providers.custom.api_key") == KEY
    assert plane.settings_form().keys_set == ("custom",)
    assert guide.api_key.value == "" and KEY not in shown_texts(guide.root)
    # the next message goes through it, with the stored key
    assert plane.gateway.agent.failover.links[0].provider.name == "custom"


async def test_a_failed_test_says_why_and_saving_then_warns(
        make_gateway: GatewayFactory, tmp_path: Path, keyed_llm: FakeOpenAI) -> None:
    plane = await make_plane(make_gateway, tmp_path, [])
    guide = FirstRunGuide(plane)
    await guide.load()
    guide.show_choice(COMPATIBLE)
    guide.base_url.value = keyed_llm.base_url
    guide.model.value = "hosted-model"
    guide.api_key.value = "sk-wrong"
    assert await guide.next_from_provider()
    assert guide.check is not None and guide.check.failure == "unauthorized"
    texts = shown_texts(guide.root)
    assert "The API key was refused (HTTP 401)" in texts and "Save anyway" in texts
    assert "Saved like this, messages to it fail until it answers." in texts

    guide.base_url.value = f"http://127.0.0.1:{closed_port()}/v1"
    check = await guide.run_test()
    assert check.failure == "refused"
    assert "Connection refused: nothing is listening" in shown_texts(guide.root)
    assert plane.settings_form().providers == ()  # nothing saved by testing


async def test_missing_fields_are_marked_and_nothing_is_sent(
        make_gateway: GatewayFactory, tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    plane = await make_plane(make_gateway, tmp_path, [Candidate("Closed", closed_port())])
    guide = FirstRunGuide(plane)
    await guide.load()
    assert not await guide.next_from_provider()  # local chosen, none found
    assert "No local server is selected" in shown_texts(guide.root)
    guide.show_choice(OPENAI)
    assert (guide.model.value, guide.name.value) == ("gpt-4o-mini", "openai")
    assert not await guide.next_from_provider()
    assert guide.api_key.error == "Paste the key from platform.openai.com/api-keys."
    assert guide.step == PROVIDER and fake_llm.requests == []


async def test_a_taken_name_is_not_suggested_and_a_clash_is_said(
        make_gateway: GatewayFactory, tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    plane = await make_plane(make_gateway, tmp_path, [Candidate("Ollama", fake_llm.port)])
    assert await plane.save_settings([{"name": "ollama", "base_url": fake_llm.base_url,
                                       "model": "fake-model"}], {}) == []
    guide = FirstRunGuide(plane)
    await guide.load()
    assert not guide.wanted  # a provider exists: the guide waits to be opened
    await guide.scan()
    assert guide.name.value == "ollama-2"
    guide.name.value = "ollama"
    await guide.next_from_provider()
    assert await guide.save_provider()
    assert "Not saved: providers: two providers are called 'ollama'" in shown_texts(guide.root)
    assert guide.step == TEST


async def test_the_local_chat_is_added_when_missing(make_gateway: GatewayFactory,
                                                    tmp_path: Path) -> None:
    plane = await make_plane(make_gateway, tmp_path, [])
    await plane.delete_channel("local")
    guide = FirstRunGuide(plane)
    await guide.load()
    await guide.go(CHANNEL)
    assert not guide.local_chat and "Add the local chat" in shown_texts(guide.root)
    assert await guide.add_local_chat()
    assert [c.type for c in await plane.channels()] == ["local"]
    assert "Open the chat" in shown_texts(guide.root)


async def test_skipping_is_remembered_and_the_shell_opens_it_only_when_due(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    plane = await make_plane(make_gateway, tmp_path, [])
    shell = Shell(plane)
    for panel in shell.live_panels:
        await panel.load()
    assert shell.first_run_due("/") and shell.first_run_due("")
    assert not shell.first_run_due("/settings")  # an address someone asked for wins
    assert shell.show(SETUP_ROUTE) == SETUP_ROUTE
    assert shell.guide.root.visible and shell.current is shell.guide
    assert not any(p.root.visible for p in shell.panels.values())
    assert shell.rail.selected_index is None
    assert shell.show("/chat") == "/chat" and not shell.guide.root.visible

    assert await shell.guide.skip()
    again = Shell(plane)  # the next start
    for panel in again.live_panels:
        await panel.load()
    assert not again.first_run_due("/")
    assert again.show(SETUP_ROUTE) == SETUP_ROUTE  # Settings can still open it
    assert "Set up pyclaw" in shown_texts(again.guide.root)


async def test_a_plane_without_the_guide_and_a_watching_token_never_open_it() -> None:
    guide = FirstRunGuide(FakeControlPlane())
    await guide.load()
    assert guide.state is None and not guide.wanted

    class Watching(FakeControlPlane):
        read_only = True

        async def first_run_state(self) -> FirstRunState:
            return FirstRunState(True, False)

    watcher = FirstRunGuide(Watching())
    await watcher.load()
    assert watcher.state is not None and not watcher.wanted


def test_unique_names() -> None:
    assert unique_name("openai", []) == "openai"
    assert unique_name("openai", ["openai", "openai-2"]) == "openai-3"
