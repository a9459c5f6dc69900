"""The first-run guide's gateway side against real servers on 127.0.0.1: local-server
detection, the test completion's outcomes, and the remembered skip."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.control.first_run import (
    CANDIDATES_ENV,
    CLOSED_KEY,
    DEFAULT_CANDIDATES,
    TEST_PROMPT,
    Candidate,
    FirstRunAdmin,
    configured_candidates,
    format_candidates,
    parse_candidates,
)
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.remote import AdminRequired, RemoteControlPlane
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, StoreFactory, provider_section
from tests.fakes.openai_api import FakeOpenAI, Fault
from tests.fakes.server import FakeServer, json_response

KEY = "sk-first-run-key"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeOllama(FakeServer):
    """An older Ollama: ``/v1/models`` answers 404, its own ``/api/tags`` lists models."""

    def routes(self, app: web.Application) -> None:
        async def tags(request: web.Request) -> web.Response:
            return json_response({"models": [{"name": "llama3.2:latest"},
                                              {"name": "qwen2.5:7b"}]})

        app.router.add_get("/api/tags", tags)


class NotAnLlm(FakeServer):
    """A web app on a usual port: it answers, but not the OpenAI API."""

    def routes(self, app: web.Application) -> None:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text="<html>hello</html>", content_type="text/html")

        app.router.add_get("/{tail:.*}", page)


@pytest.fixture
async def keyed_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY, models=("fake-model", "fake-model-large")) as server:
        yield server  # type: ignore[misc]


# -- detection -----------------------------------------------------------------------------


async def test_detection_finds_the_fake_and_not_a_closed_port(
        make_gateway: GatewayFactory, fake_llm: FakeOpenAI) -> None:
    gateway = await make_gateway()
    closed = closed_port()
    admin = FirstRunAdmin(gateway, [Candidate("Closed", closed), Candidate("Fake", fake_llm.port)])
    found = await admin.find_local_servers()
    assert [(s.name, s.base_url, s.models, s.note) for s in found] == [
        ("Fake", f"http://127.0.0.1:{fake_llm.port}/v1", ("fake-model",), "")]
    assert found[0].base_url == fake_llm.base_url  # what the provider form saves


async def test_nothing_found_is_an_empty_list(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    admin = FirstRunAdmin(gateway, [Candidate("A", closed_port()), Candidate("B", closed_port())])
    assert await admin.find_local_servers() == []
    assert await FirstRunAdmin(gateway, []).find_local_servers() == []


async def test_detection_reads_ollamas_tags_skips_other_apps_and_notes_a_key(
        make_gateway: GatewayFactory, keyed_llm: FakeOpenAI) -> None:
    gateway = await make_gateway()
    async with FakeOllama() as ollama, NotAnLlm() as web_app:
        admin = FirstRunAdmin(gateway, [Candidate("Ollama", ollama.port),
                                        Candidate("Web", web_app.port),
                                        Candidate("vLLM", keyed_llm.port),
                                        Candidate("Again", ollama.port)])
        found = await admin.find_local_servers()
    assert [(s.name, s.models) for s in found] == [
        ("Ollama", ("llama3.2:latest", "qwen2.5:7b")), ("vLLM", ())]
    assert found[1].note == "it wants an API key (HTTP 401)"


async def test_a_slow_port_costs_the_probe_timeout_not_more(make_gateway: GatewayFactory,
                                                            ) -> None:
    """A port that accepts and never answers is "nothing there" once the probe times out."""
    gateway = await make_gateway()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        admin = FirstRunAdmin(gateway, [Candidate("Silent", silent.getsockname()[1])],
                              probe_timeout=0.2)
        assert await admin.find_local_servers() == []


def test_the_usual_ports_and_the_environment() -> None:
    assert [c.port for c in DEFAULT_CANDIDATES] == [11434, 1234, 8000, 8080]
    assert configured_candidates({}) == DEFAULT_CANDIDATES
    assert configured_candidates({CANDIDATES_ENV: "Fake=4242, 8081"}) == (
        Candidate("Fake", 4242), Candidate("Local server", 8081))
    assert configured_candidates({CANDIDATES_ENV: ""}) == ()
    assert configured_candidates({CANDIDATES_ENV: "host.example:80"}) == DEFAULT_CANDIDATES


@pytest.mark.parametrize(("text", "words"), [
    ("ollama=0", "not 1-65535"), ("x=70000", "not 1-65535"), ("10.0.0.1:8080", "not"),
    ("=", "not"), ("a=b=1", "not"), ("name=²", "not"), ("name=", "not"),
])
def test_bad_candidates_are_named(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=f"{CANDIDATES_ENV}: .*{words}"):
        parse_candidates(text)


def test_a_label_names_the_port_and_never_a_host() -> None:
    (only,) = parse_candidates("example.com=80")
    assert only.base_url == "http://127.0.0.1:80/v1"


labels = st.text(st.characters(exclude_characters="=,", exclude_categories=("Cs",)),
                 min_size=1, max_size=60).map(str.strip).filter(bool)


@given(st.lists(st.builds(Candidate, labels, st.integers(1, 65535)), max_size=6))
def test_candidates_round_trip(candidates: list[Candidate]) -> None:
    assert parse_candidates(format_candidates(candidates)) == tuple(candidates)


@given(st.text(max_size=80))
def test_any_text_parses_or_is_named(text: str) -> None:
    try:
        parsed = parse_candidates(text)
    except ValueError as exc:
        assert str(exc).startswith(CANDIDATES_ENV)
    else:
        assert all(0 < c.port < 65536 and c.base_url.startswith("http://127.0.0.1:")
                   for c in parsed)


# -- the test completion -------------------------------------------------------------------


async def test_a_test_completion_answers_through_the_provider(
        make_gateway: GatewayFactory, keyed_llm: FakeOpenAI) -> None:
    admin = FirstRunAdmin(await make_gateway(), [])
    check = await admin.test_completion(provider_section(keyed_llm, api_key=KEY))
    assert check.ok and check.failure == ""
    assert check.answer == f"Echo: {TEST_PROMPT}"
    assert check.message == f"fake-model answered through 127.0.0.1:{keyed_llm.port}."
    assert keyed_llm.requests[-1]["max_tokens"] == 48  # one short completion
    assert keyed_llm.requests[-1]["messages"] == [{"role": "user", "content": TEST_PROMPT}]


async def test_refused_timed_out_and_401_are_told_apart(
        make_gateway: GatewayFactory, keyed_llm: FakeOpenAI) -> None:
    admin = FirstRunAdmin(await make_gateway(), [])
    port = closed_port()
    refused = await admin.test_completion(
        provider_section(keyed_llm, base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY))
    keyed_llm.faults.append(Fault(delay=3))
    timed_out = await admin.test_completion(provider_section(keyed_llm, api_key=KEY,
                                                             timeout=0.3))
    unauthorized = await admin.test_completion(provider_section(keyed_llm, api_key="sk-wrong"))
    no_key = await admin.test_completion(provider_section(keyed_llm))
    unknown = await admin.test_completion(provider_section(keyed_llm, api_key=KEY,
                                                           model="nope"))

    assert (refused.ok, refused.failure) == (False, "refused")
    assert refused.message.startswith(f"Connection refused: nothing is listening at "
                                      f"127.0.0.1:{port}.")
    assert (timed_out.ok, timed_out.failure) == (False, "timed_out")
    assert timed_out.message.startswith(f"Timed out: 127.0.0.1:{keyed_llm.port} did not "
                                        "answer within 0.3 seconds.")
    assert (unauthorized.ok, unauthorized.failure) == (False, "unauthorized")
    assert unauthorized.message.startswith("The API key was refused (HTTP 401)")
    assert "sk-wrong" not in unauthorized.message
    assert no_key.failure == "unauthorized"
    assert (unknown.failure, unknown.ok) == ("model", False)
    assert "does not know the model 'nope'" in unknown.message
    messages = {c.message for c in (refused, timed_out, unauthorized, unknown)}
    assert len(messages) == 4 and not any(c.answer for c in (refused, timed_out, unauthorized))


async def test_invalid_settings_are_named_and_nothing_is_sent(
        make_gateway: GatewayFactory, fake_llm: FakeOpenAI) -> None:
    admin = FirstRunAdmin(await make_gateway(), [])
    check = await admin.test_completion({"name": "x", "base_url": fake_llm.base_url,
                                         "model": "", "kind": "openai"})
    assert (check.ok, check.failure) == (False, "invalid")
    assert check.message.startswith("Not tested: model:")
    assert fake_llm.requests == []


async def test_a_stored_key_is_never_sent_by_the_test(
        make_gateway: GatewayFactory, keyed_llm: FakeOpenAI, tmp_path: Path) -> None:
    """A saved provider's name with a blank key and another endpoint gets no key: the test
    sends only what was typed (else it could carry a stored key to any server)."""
    secrets = FileSecretStore(tmp_path / "data" / "secrets.json")
    secrets.set("providers.main.api_key", KEY)
    gateway = await make_gateway({"providers": [provider_section(keyed_llm, name="main")]})
    assert gateway.config.providers[0].api_key is not None  # loaded from the store
    async with FakeOpenAI(api_key=KEY) as thief:
        check = await FirstRunAdmin(gateway, []).test_completion(
            provider_section(thief, name="main", api_key=""))
    assert check.failure == "unauthorized"  # it came without the key


# -- remembered, and over the control API --------------------------------------------------


def _yaml_texts(directory: Path) -> list[str]:
    return [p.read_text() for p in directory.glob("*.yaml")]


async def test_skipping_is_remembered_in_the_store_not_the_yaml(
        make_gateway: GatewayFactory, tmp_path: Path, open_store: StoreFactory) -> None:
    gateway = await make_gateway()
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"),
                              local_servers=[], clock=lambda: 1234.5)
    first = await plane.first_run_state()
    assert (first.show, first.has_provider, first.closed) == (True, False, "")
    skipped = await plane.close_first_run("skipped")
    assert (skipped.show, skipped.closed) == (False, "skipped")
    with pytest.raises(ValueError, match="how must be one of skipped, finished"):
        await plane.close_first_run("later")
    assert (await plane.first_run_state()).closed == "skipped"
    finished = await plane.close_first_run("finished")
    assert finished.closed == "finished"
    yaml_texts = _yaml_texts(tmp_path)
    assert yaml_texts and all("first_run" not in text for text in yaml_texts)

    await gateway.stop()
    await gateway.store.close()
    store = await open_store(tmp_path / "data")  # a restart reads it back
    try:
        row = await store.db.fetchone("SELECT value FROM settings WHERE key=?", (CLOSED_KEY,))
        assert row is not None and '"how": "finished"' in row["value"]
    finally:
        await store.close()


async def test_a_configured_provider_means_no_guide(make_gateway: GatewayFactory,
                                                    fake_llm: FakeOpenAI) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)]})
    state = await FirstRunAdmin(gateway, []).state()
    assert (state.show, state.has_provider, state.closed) == (False, True, "")


async def test_the_guide_over_the_control_api(tmp_path: Path, fake_llm: FakeOpenAI,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor token may ask whether the guide is due; probing, testing and closing it
    need the admin token, whose answers arrive as the same rows."""
    monkeypatch.setenv(CANDIDATES_ENV, f"Fake={fake_llm.port},Closed={closed_port()}")
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
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
            assert (await monitor.first_run_state()).show
            for refused in (monitor.find_local_servers(), monitor.close_first_run(),
                            monitor.test_completion(provider_section(fake_llm))):
                with pytest.raises(AdminRequired):
                    await refused
            found = await admin.find_local_servers()
            assert [(s.name, s.models) for s in found] == [("Fake", ("fake-model",))]
            check = await admin.test_completion(provider_section(fake_llm))
            assert check.ok and check.answer == f"Echo: {TEST_PROMPT}"
            assert (await admin.close_first_run("skipped")).closed == "skipped"
            assert not (await monitor.first_run_state()).show
        finally:
            await monitor.close()
            await admin.close()
    finally:
        await host.stop()
