"""ChannelHttp against a real HTTP server on 127.0.0.1: one outcome mapping for every platform."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from pyclaw_app.channels import ChannelHttp
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from tests.fakes.server import FakeServer, json_response
from tests.fakes.tls import self_signed

TOKEN = "tok-123-secret"


class Api(FakeServer):
    """Answers ``/status/<code>`` with that status; ``/lose`` reads the request, then cuts."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, str | None]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/status/{code}", self._status)
        app.router.add_post("/lose", self._lose)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/half-second", self._half_second)
        app.router.add_post("/moved", self._moved)
        app.router.add_post("/elsewhere", self._elsewhere)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        code = int(request.match_info["code"])
        headers = {"Retry-After": "3"} if code == 429 else None
        return json_response({"ok": code < 400, "error": f"said {code} to {TOKEN}"}, code,
                             headers)

    async def _lose(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen.append(("POST", "/lose", None))
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    async def _moved(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect("/elsewhere")

    async def _elsewhere(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(("POST", "/elsewhere", request.headers.get("Authorization")))
        return json_response({"ok": True})

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response()

    async def _half_second(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return json_response({"ok": True})


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with Api() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def http(api: Api) -> AsyncIterator[ChannelHttp]:
    client = ChannelHttp(api.url, platform="Demo", secrets=[TOKEN], timeout=1.0,
                         auth=lambda: {"Authorization": f"Bearer {TOKEN}"},
                         describe=lambda data: data["error"])
    yield client
    await client.close()


async def test_success_returns_json_and_sends_the_auth_header(api: Api, http: ChannelHttp
                                                              ) -> None:
    answer = await http.call("POST", "/status/200", json_body={"a": 1})
    assert answer.status == 200 and answer.data["ok"] is True
    assert api.seen == [("POST", "/status/200", f"Bearer {TOKEN}")]


async def test_429_is_retryable_with_retry_after(http: ChannelHttp) -> None:
    with pytest.raises(RetryableError) as caught:
        await http.call("POST", "/status/429")
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_5xx_is_retryable(http: ChannelHttp, code: int) -> None:
    with pytest.raises(RetryableError) as caught:
        await http.call("POST", f"/status/{code}")
    assert type(caught.value) is RetryableError


@pytest.mark.parametrize(("code", "advice"), [(401, "check the token"),
                                               (403, "check the bot's permissions")])
async def test_refusals_are_fatal_with_advice_and_no_token(http: ChannelHttp, code: int,
                                                           advice: str) -> None:
    with pytest.raises(FatalConnectorError) as caught:
        await http.call("GET", f"/status/{code}")
    assert advice in str(caught.value)
    assert TOKEN not in str(caught.value) and "<secret>" in str(caught.value)


async def test_a_token_issued_later_is_redacted_too(api: Api) -> None:
    client = ChannelHttp(api.url, platform="Demo", describe=lambda data: data["error"])
    try:
        with pytest.raises(FatalConnectorError) as before:
            await client.call("POST", "/status/400")
        assert TOKEN in str(before.value)  # the error quotes the token it was given
        client.add_secret(TOKEN)  # e.g. an access token fetched from the platform
        with pytest.raises(FatalConnectorError) as after:
            await client.call("POST", "/status/400")
        assert TOKEN not in str(after.value) and "<secret>" in str(after.value)
    finally:
        await client.close()


async def test_other_4xx_is_fatal_naming_the_call(http: ChannelHttp) -> None:
    with pytest.raises(FatalConnectorError) as caught:
        await http.call("POST", "/status/400")
    assert "Demo POST /status/400" in str(caught.value) and TOKEN not in str(caught.value)


async def test_a_lost_answer_to_a_post_is_uncertain(api: Api, http: ChannelHttp) -> None:
    with pytest.raises(DeliveryUncertain):
        await http.call("POST", "/lose", json_body={"text": "hi"})
    assert ("POST", "/lose", None) in api.seen  # it did reach the server


async def test_a_timed_out_get_is_only_retryable(http: ChannelHttp) -> None:
    with pytest.raises(RetryableError) as caught:
        await http.call("GET", "/slow")
    assert not isinstance(caught.value, DeliveryUncertain)


async def test_refused_before_sending_is_retryable_not_uncertain() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChannelHttp(f"http://127.0.0.1:{port}", platform="Demo")
    try:
        with pytest.raises(RetryableError) as caught:
            await client.call("POST", "/x")
        assert not isinstance(caught.value, DeliveryUncertain)
        assert "nothing was sent" in str(caught.value)
    finally:
        await client.close()


async def test_a_redirect_is_not_followed(api: Api, http: ChannelHttp) -> None:
    with pytest.raises(FatalConnectorError, match=r"redirected .*not followed"):
        await http.call("POST", "/moved", json_body={"text": "hi"})
    assert all(path != "/elsewhere" for _, path, _ in api.seen)  # nothing, token included


async def test_a_platform_sorts_its_own_error_codes_first(api: Api) -> None:
    def classify(answer, what: str, detail: str) -> RetryableError | None:
        return RetryableError(f"{what}: throttled", retry_after=6.0) \
            if answer.status == 400 else None

    client = ChannelHttp(api.url, platform="Demo", classify=classify)
    try:
        with pytest.raises(RetryableError) as caught:
            await client.call("POST", "/status/400")
        assert caught.value.retry_after == 6.0
        with pytest.raises(FatalConnectorError):  # None: the usual mapping
            await client.call("POST", "/status/404")
    finally:
        await client.close()


async def test_a_call_may_wait_longer_than_the_clients_timeout(api: Api) -> None:
    """A long poll outwaits the client's send timeout; without the override it times out."""
    client = ChannelHttp(api.url, platform="Demo", timeout=0.1)
    try:
        with pytest.raises(RetryableError, match="no answer"):
            await client.call("GET", "/half-second")
        answer = await client.call("GET", "/half-second", timeout=10)
        assert answer.data == {"ok": True}
    finally:
        await client.close()


async def test_an_untrusted_certificate_is_fatal_and_names_ca_file(tmp_path: Path) -> None:
    """Retrying cannot make a certificate trusted: one clear line, not retries for ever."""
    async def ok(request: web.Request) -> web.Response:
        return json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port,
                       ssl_context=self_signed(tmp_path).server_context())
    await site.start()
    client = ChannelHttp(f"https://127.0.0.1:{port}", platform="Demo", secrets=[TOKEN])
    try:
        with pytest.raises(FatalConnectorError, match=r"TLS refused.*not trusted.*set ca_file"):
            await client.call("GET", "/ok")
    finally:
        await client.close()
        await runner.cleanup()
