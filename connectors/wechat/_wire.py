"""What WeChat Official Accounts and WeCom share on the wire besides the crypto: flat XML
callbacks read safely, ``errcode`` answers, and an ``access_token`` cached until shortly
before it expires. ``connectors.wecom`` imports this module too.

XML: defusedxml is not installed, so :func:`read_xml` refuses what the attacks need
before the standard library's parser sees a byte: a body over the size cap, and any
``<!`` declaration (DOCTYPE, ENTITY: billion laughs, external entities) other than
CDATA sections, which Tencent's messages are full of.
"""

from __future__ import annotations

import asyncio
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["MAX_XML", "TokenCache", "XmlRefused", "errcode", "errmsg", "read_xml"]

MAX_XML = 64 * 1024
"""Bytes a callback may have: Tencent's messages are a few hundred bytes, an encrypted one
a few kilobytes."""
_DECLARATION = re.compile(rb"<!(?!\[CDATA\[)")
RENEW_MARGIN = 300.0
"""Seconds before ``expires_in`` runs out that a token is renewed (Tencent keeps the old
one valid for five minutes after a new one is issued)."""


class XmlRefused(ValueError):
    """A body that is not one flat ``<xml>`` document we are willing to parse."""


def read_xml(body: bytes, *, limit: int = MAX_XML) -> dict[str, str]:
    """``<xml><Name>text</Name>...</xml>`` as ``{"Name": "text"}`` (the children of the root,
    each's own text; nested elements such as ``ScanCodeInfo`` give their own text only)."""
    if len(body) > limit:
        raise XmlRefused(f"the body is {len(body)} bytes, over the {limit}-byte cap")
    if _DECLARATION.search(body):
        raise XmlRefused("the body declares a DOCTYPE or ENTITY; refused unparsed")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise XmlRefused(f"the body is not XML ({exc})") from None
    if root.tag != "xml":
        raise XmlRefused(f"the root element is <{root.tag[:40]}>, not <xml>")
    fields: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str):
            fields.setdefault(child.tag, (child.text or "").strip())
    return fields


def errcode(data: Any) -> int | None:
    """Tencent's ``errcode``: 0 (or absent) is success; None when the answer is not a JSON
    object with a usable code, i.e. not an answer of the API at all."""
    if not isinstance(data, dict):
        return None
    code = data.get("errcode", 0)
    if isinstance(code, str) and code.lstrip("-").isdigit():
        return int(code)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def errmsg(data: Any) -> str:
    message = data.get("errmsg") if isinstance(data, dict) else None
    return message if isinstance(message, str) else str(data)[:200]


class TokenCache:
    """One ``access_token``, fetched on first use, renewed ``RENEW_MARGIN`` before
    ``expires_in`` ends and when the platform calls it invalid; one fetch at a time.

    ``fetch`` returns (token, expires_in seconds) or raises the channel's error.
    """

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float]]], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token = ""
        self._renew_at = 0.0

    @property
    def current(self) -> str:
        """The token held now ("" before the first fetch): for redacting it from errors."""
        return self._token

    async def get(self) -> str:
        if self._token and self._clock() < self._renew_at:
            return self._token
        return await self.renew(self._token)

    async def renew(self, stale: str) -> str:
        """A token other than ``stale``, unless another call already renewed it."""
        async with self._lock:
            if self._token and self._token != stale and self._clock() < self._renew_at:
                return self._token
            token, expires_in = await self._fetch()
            margin = min(RENEW_MARGIN, expires_in / 2)
            self._token, self._renew_at = token, self._clock() + expires_in - margin
            return token
