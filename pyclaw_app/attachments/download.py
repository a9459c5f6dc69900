"""One download path for every channel: streamed, capped, and never logging the URL.

A connector says where the bytes are (``Connector.fetch_attachment``); this fetches them
with a hard size cap (a lying ``Content-Length``, or none, is caught while streaming),
a timeout, no redirect to a scheme other than http(s), and no credential header sent on
past a redirect to another origin. Bot API file URLs carry the bot token in their path,
so errors name the host and status only.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urljoin, urlsplit

import aiohttp

from pyclaw_app.attachments.types import human_size
from pyclaw_app.channels.contract import AttachmentSource

__all__ = ["DownloadFailed", "TooBig", "download"]

CHUNK = 64 * 1024
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class DownloadFailed(Exception):
    """The file could not be fetched; the message is for the sender and the channel log."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent
        """Trying again cannot help (gone, refused, too big): remembered for the message."""


class TooBig(DownloadFailed):
    def __init__(self, size: int | None, limit: int) -> None:
        said = f"it is {human_size(size)}" if size is not None else "it is too large"
        super().__init__(f"{said}, over the {human_size(limit)} limit for files",
                         permanent=True)


async def download(source: AttachmentSource, max_bytes: int, timeout: float) -> bytes:
    """The bytes ``source`` points at, at most ``max_bytes`` of them (else :class:`TooBig`)."""
    if source.size is not None and source.size > max_bytes:
        raise TooBig(source.size, max_bytes)
    if source.data is not None:
        if len(source.data) > max_bytes:
            raise TooBig(len(source.data), max_bytes)
        return source.data
    if not source.url:
        raise DownloadFailed("the platform gave no address for the file", permanent=True)
    parts = urlsplit(source.url)
    if parts.scheme not in ("http", "https"):
        raise DownloadFailed("the platform gave an address pyclaw does not fetch",
                             permanent=True)
    host = parts.hostname or "?"
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            return await _follow(session, source.url, dict(source.headers), max_bytes,
                                 source.ssl_context)
    except DownloadFailed:
        raise
    except TimeoutError:
        raise DownloadFailed(f"downloading from {host} took longer than {timeout:g}s",
                             permanent=False) from None
    except (aiohttp.ClientError, asyncio.IncompleteReadError, OSError) as exc:
        # The exception text may hold the URL (and a token in it): name only its kind.
        raise DownloadFailed(f"{host} could not be reached ({type(exc).__name__})",
                             permanent=False) from None


async def _follow(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                  max_bytes: int, context: ssl.SSLContext | None) -> bytes:
    """Redirects are followed here, not by aiohttp: it drops only Authorization and Cookie
    when one leaves the origin, and a channel's credentials may be any header (a
    Rocket.Chat token, a signed key). Leaving the origin drops every header given, and the
    channel's own certificate authority with them."""
    for _ in range(MAX_REDIRECTS + 1):
        host = urlsplit(url).hostname or "?"
        async with session.get(url, headers=headers, allow_redirects=False,
                               ssl=context if context is not None else True) as resp:
            location = resp.headers.get("Location")
            if resp.status in REDIRECTS and location:
                target = urljoin(url, location)
                if urlsplit(target).scheme not in ("http", "https"):
                    raise DownloadFailed(f"{host} redirected to an address pyclaw does not "
                                         "fetch", permanent=True)
                if _origin(target) != _origin(url):
                    headers, context = {}, None  # the channel's own CA is for its server
                url = target
                continue
            if resp.status in (401, 403, 404, 410):
                what = "no longer there" if resp.status in (404, 410) else "not accessible"
                raise DownloadFailed(f"the file is {what} on {host} (HTTP {resp.status})",
                                     permanent=True)
            if resp.status >= 400:
                raise DownloadFailed(f"{host} answered HTTP {resp.status}", permanent=False)
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise TooBig(resp.content_length, max_bytes)
            data = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise TooBig(None, max_bytes)
            return bytes(data)
    raise DownloadFailed(f"more than {MAX_REDIRECTS} redirects", permanent=True)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port
