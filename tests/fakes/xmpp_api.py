"""The download side of an XMPP HTTP File Upload service (XEP-0363) on 127.0.0.1.

Written from XEP-0363 (xsf/xeps ``xep-0363.xml``): a client asks its server's upload
component for a slot and PUTs the file to the slot's ``put`` URL; the ``get`` URL it
then shares (in the body and a XEP-0066 ``jabber:x:oob`` element) is fetched with a plain
HTTP GET and no authentication, the random path being the only secret. Prosody's
``mod_http_file_share`` answers it with the file's ``Content-Type`` and
``Content-Length``, and 404 for a file it no longer keeps (expired, or never uploaded).

The service is addressed as ``http://localhost:<port>``, as an upload component of the
tests' prosody (domain ``localhost``) would be.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from aiohttp import web

from tests.fakes.server import FakeServer

__all__ = ["UploadService"]


class UploadService(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, tuple[bytes, str]] = {}
        """Slot path -> (bytes, Content-Type) of each file it keeps."""
        self.downloads: list[tuple[str, str | None]] = []
        """(path, the Authorization header) of each GET."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/share/{slot}/{name}", self._get)

    def upload(self, data: bytes, name: str, mime: str) -> str:
        """A file put through a slot; returns its ``get`` URL."""
        path = f"/share/{secrets.token_urlsafe(18)}/{quote(name)}"
        self.files[path] = (data, mime)
        return f"http://localhost:{self.port}{path}"

    def expire(self, url: str) -> None:
        """The service stops keeping the file (its retention passed)."""
        self.files.pop(url.partition(f":{self.port}")[2], None)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self.downloads.append((request.raw_path, request.headers.get("Authorization")))
        found = self.files.get(request.raw_path)
        if found is None:
            return web.Response(status=404, text="Not Found")
        data, mime = found
        return web.Response(body=data, headers={
            "Content-Type": mime, "Content-Length": str(len(data)),
            "Cache-Control": "max-age=31556952, private"})
