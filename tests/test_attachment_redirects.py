"""Credentials given for a download stay with the platform's origin across redirects.

A channel's credential may be any header (Rocket.Chat's X-Auth-Token, an API key), and
aiohttp itself drops only Authorization and Cookie when a redirect leaves the origin;
``download`` follows redirects itself and drops every header it was given there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from pyclaw_app.attachments.download import DownloadFailed, download
from pyclaw_app.channels.contract import AttachmentSource

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
