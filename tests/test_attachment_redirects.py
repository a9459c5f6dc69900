"""Credentials given for a download stay with the platform's origin across redirects, and a
channel's own certificate authority is trusted for its server.

A channel's credential may be any header (Rocket.Chat's X-Auth-Token, an API key), and
aiohttp itself drops only Authorization and Cookie when a redirect leaves the origin;
``download`` follows redirects itself and drops every header it was given there.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from pyclaw_app.attachments.download import DownloadFailed, download
from pyclaw_app.channels.contract import AttachmentSource
from tests.fakes.tls import self_signed

CREDENTIALS = {"X-Auth-Token": "tok-SECRET", "Authorization": "Bearer SECRET"}


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """``/echo`` answers the credential headers it got; the others redirect to it: on the
    same origin, to another origin (``localhost`` is not ``127.0.0.1``), in a loop, or to a
    scheme that is never fetched."""
    port = 0

    async def echo(request: web.Request) -> web.Response:
        got = {k: request.headers[k] for k in CREDENTIALS if k in request.headers}
        return web.Response(body=json.dumps(got).encode())

    async def same(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    async def other(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://localhost:{port}/echo")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound("file:///etc/passwd")

    app = web.Application()
    for path, handler in (("/echo", echo), ("/same", same), ("/other", other),
                          ("/loop", loop), ("/elsewhere", elsewhere)):
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _headers_seen(url: str) -> dict[str, str]:
    body = await download(AttachmentSource(url=url, headers=dict(CREDENTIALS)), 10_000, 5)
    seen: dict[str, str] = json.loads(body)
    return seen


async def test_the_credentials_go_to_the_platforms_own_origin(server: str) -> None:
    assert await _headers_seen(f"{server}/echo") == CREDENTIALS
    assert await _headers_seen(f"{server}/same") == CREDENTIALS


async def test_no_credential_header_follows_a_redirect_to_another_origin(server: str) -> None:
    assert await _headers_seen(f"{server}/other") == {}


@pytest.mark.parametrize(("path", "says"), [
    ("/loop", "more than 5 redirects"),
    ("/elsewhere", "redirected to an address pyclaw does not fetch"),
])
async def test_endless_and_strange_redirects_are_refused(server: str, path: str,
                                                         says: str) -> None:
    with pytest.raises(DownloadFailed, match=says) as caught:
        await _headers_seen(f"{server}{path}")
    assert caught.value.permanent


@pytest.fixture
async def private_tls(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An HTTPS server whose certificate no system trusts (a self-hosted Rocket.Chat's),
    and the CA file that does."""
    cert = self_signed(tmp_path)

    async def file(request: web.Request) -> web.Response:
        return web.Response(body=b"private bytes")

    app = web.Application()
    app.router.add_get("/file", file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=cert.server_context())
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}/file", cert.cert
    finally:
        await runner.cleanup()


async def test_a_server_with_a_private_ca_is_downloaded_from_with_the_channels_trust(
        private_tls: tuple[str, Path]) -> None:
    url, ca_file = private_tls
    with pytest.raises(DownloadFailed, match="could not be reached"):  # the system's trust
        await download(AttachmentSource(url=url), 10_000, 5)
    trusted = ssl.create_default_context()
    trusted.load_verify_locations(ca_file)
    assert await download(AttachmentSource(url=url, ssl_context=trusted), 10_000, 5) \
        == b"private bytes"
