"""Mattermost's REST API v4 over the kit's ``ChannelHttp``, with its error shapes mapped once.

Errors are ``{id, message, detailed_error, request_id, status_code}`` (the ``errors`` tag of
api/v4/source/introduction.yaml). The rate limiter (server/channels/app/ratelimit.go)
answers 429 with the text ``limit exceeded`` and ``X-RateLimit-Limit``, ``-Remaining``,
``-Reset`` (seconds until the window resets) and ``Retry-After`` (seconds), so the kit's
Retry-After reading applies; ``X-RateLimit-Reset`` is the fallback for a proxy that drops
Retry-After.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from pyclaw_app.channels import ChannelHttp, HttpAnswer
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError

__all__ = ["describe", "make_http", "ws_url"]

_CREATE_POST = "POST /api/v4/posts"


def describe(body: Any) -> str | None:
    """The server's own words for an error answer: ``message`` (``id``)."""
    if not isinstance(body, dict):
        return None
    message, error_id = body.get("message"), body.get("id")
    if not isinstance(message, str) or not message:
        return error_id if isinstance(error_id, str) and error_id else None
    return f"{message} ({error_id})" if isinstance(error_id, str) and error_id else message


def _reset_after(answer: HttpAnswer) -> float | None:
    value = next((v for k, v in answer.headers.items() if k.lower() == "x-ratelimit-reset"),
                 None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _classify(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    headers = {k.lower() for k in answer.headers}
    if answer.status == 429 and "retry-after" not in headers:
        wait = _reset_after(answer)
        if wait is not None:
            return RetryableError(f"Mattermost rate limit: retry after {wait:g}s ({what})",
                                  retry_after=wait)
    if answer.status == 403 and what.endswith(_CREATE_POST):
        return FatalConnectorError(
            f"Mattermost refused the post (HTTP 403: {detail}): the bot is not a member of "
            "that channel or may not post there; add it to the channel (/invite @bot) or "
            "give it the permission")
    return None


def make_http(base_url: str, token: str, session: aiohttp.ClientSession | None = None
              ) -> ChannelHttp:
    """The client for ``{base_url}/api/v4``; the token goes only to that server."""
    return ChannelHttp(base_url, platform="Mattermost",
                       auth=lambda: {"Authorization": f"Bearer {token}"}, secrets=[token],
                       describe=describe, classify=_classify, session=session)


def ws_url(base_url: str) -> str:
    """The WebSocket endpoint of the same server (``ws``/``wss`` for ``http``/``https``)."""
    scheme, rest = base_url.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/v4/websocket"
