"""Zulip's REST API as this channel uses it, with every answer sorted into pyclaw's errors.

Why not the official ``zulip`` package: it is synchronous (``requests``), owns its own
retry loop around ``call_on_each_event`` and would need a thread per channel; the calls
a bot needs are six form-encoded requests, so they go through the kit's
:class:`ChannelHttp`, which already sorts refused / 429 / 5xx / lost answers the way the
gateway's retry layer reads them. What is Zulip's own is decided here, in one place:

- ``BAD_EVENT_QUEUE_ID`` (400): the event queue was garbage-collected -> :class:`QueueGone`
  (the caller registers a new queue and fetches what it missed);
- ``INVALID_API_KEY``, ``UNAUTHORIZED``, ``USER_DEACTIVATED``, ``REALM_DEACTIVATED`` (401, or
  400 on old servers) -> fatal, naming the email and key to check;
- ``STREAM_DOES_NOT_EXIST`` and "not authorized to send" -> fatal, naming the stream;
- ``RATE_LIMIT_HIT`` (429) -> retryable after the ``Retry-After`` header, or the body's
  ``retry-after`` when a proxy dropped the header.

Requests are ``application/x-www-form-urlencoded`` with JSON-encoded values for lists and
booleans, as the OpenAPI description's ``encoding: contentType: application/json`` says.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from pyclaw_app.channels import ChannelHttp, HttpAnswer
from pyclaw_app.channels.contract import AttachmentUnavailable
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)

__all__ = ["API_TIMEOUT", "QueueGone", "ZulipApi"]

API_TIMEOUT = 30.0
"""Seconds an ordinary call may take."""
_POLL_MARGIN = 10.0
"""Seconds beyond the server's long-poll timeout before a silent poll counts as dead."""
DEFAULT_LONGPOLL = 90.0
"""``event_queue_longpoll_timeout_seconds`` for servers that do not send it (before 7.0)."""
_CREDENTIALS = frozenset({"INVALID_API_KEY", "UNAUTHORIZED", "USER_DEACTIVATED",
                          "REALM_DEACTIVATED", "INVALID_API_KEY_FORMAT"})


class QueueGone(RetryableError):
    """The event queue no longer exists on the server (``BAD_EVENT_QUEUE_ID``)."""


def _body(data: Any) -> Mapping[str, Any]:
    return data if isinstance(data, dict) else {}


def _describe(data: Any) -> str | None:
    msg = _body(data).get("msg")
    return msg if isinstance(msg, str) and msg else None


def _rate_limit(data: Any) -> float | None:
    wait = _body(data).get("retry-after")
    return float(wait) if isinstance(wait, int | float) and not isinstance(wait, bool) else None


def _classify(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    code = _body(answer.data).get("code")
    if "/user_uploads/" in what and answer.status in (403, 404):
        # serve_file answers these two in HTML, with no error code to read.
        return AttachmentUnavailable(
            "Zulip no longer has the file (deleted, or not uploaded to this organization)"
            if answer.status == 404 else "Zulip does not let the bot see that file (it was "
            "shared where the bot is not)")
    if code == "BAD_EVENT_QUEUE_ID":
        return QueueGone(f"{what}: the event queue expired ({detail})")
    if code in _CREDENTIALS or answer.status == 401:
        return FatalConnectorError(
            f"Zulip refused the bot's credentials ({code or answer.status}: {detail}); check "
            "the email and api_key in this channel's settings (the bot's zuliprc file)")
    if code == "STREAM_DOES_NOT_EXIST":
        return FatalConnectorError(f"{what}: {detail}; the stream was deleted or renamed")
    if answer.status == 400 and "not authorized to send" in detail.lower():
        return FatalConnectorError(f"{what}: {detail}; subscribe the bot to that stream")
    return None


def _form(values: Mapping[str, Any]) -> dict[str, str]:
    """Form fields: strings as they are, everything else JSON-encoded."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


class ZulipApi:
    """One bot's calls: ``calls`` for ordinary requests, ``poll`` for the long poll, whose
    timeout follows what the server says at ``register``."""

    def __init__(self, site: str, email: str, api_key: str) -> None:
        self._base = f"{site}/api/v1"
        token = base64.b64encode(f"{email}:{api_key}".encode()).decode()
        self._auth = {"Authorization": f"Basic {token}"}
        self._secrets = (api_key, token)
        self.calls = self._client(API_TIMEOUT)
        self.poll = self._client(DEFAULT_LONGPOLL + _POLL_MARGIN)

    def _client(self, timeout: float) -> ChannelHttp:
        return ChannelHttp(self._base, platform="Zulip", auth=lambda: self._auth,
                           secrets=self._secrets, timeout=timeout, describe=_describe,
                           rate_limit=_rate_limit, classify=_classify)

    async def close(self) -> None:
        await self.calls.close()
        await self.poll.close()

    async def me(self) -> Mapping[str, Any]:
        return _body((await self.calls.call("GET", "/users/me")).data)

    async def register(self) -> Mapping[str, Any]:
        """A queue for new messages only, raw Markdown; ``realm`` for the length limits and
        the long-poll timeout, ``message`` for the newest message id at this moment."""
        answer = _body((await self.calls.call("POST", "/register", data=_form({
            "event_types": ["message"], "fetch_event_types": ["message", "realm"],
            "apply_markdown": False, "client_gravatar": True,
        }))).data)
        longpoll = answer.get("event_queue_longpoll_timeout_seconds")
        if isinstance(longpoll, int | float) and not isinstance(longpoll, bool) and longpoll > 0:
            await self.poll.close()
            self.poll = self._client(float(longpoll) + _POLL_MARGIN)
        return answer

    async def events(self, queue_id: str, last_event_id: int) -> list[Any]:
        answer = await self.poll.call("GET", "/events", params={
            "queue_id": queue_id, "last_event_id": str(last_event_id)})
        events = _body(answer.data).get("events")
        return events if isinstance(events, list) else []

    async def delete_queue(self, queue_id: str) -> None:
        await self.calls.call("DELETE", "/events", data={"queue_id": queue_id})

    async def messages(self, anchor: int | str, *, before: int, after: int) -> Mapping[str, Any]:
        """A window of the bot's message history around ``anchor`` (an id or ``newest``)."""
        return _body((await self.calls.call("GET", "/messages", params={
            "anchor": str(anchor), "num_before": str(before), "num_after": str(after),
            "narrow": "[]", "apply_markdown": "false", "client_gravatar": "true",
        })).data)

    async def send(self, fields: Mapping[str, Any]) -> int:
        answer = _body((await self.calls.call("POST", "/messages", data=_form(fields))).data)
        message_id = answer.get("id")
        if not isinstance(message_id, int):
            raise DeliveryUncertain(f"Zulip answered a send without a message id ({answer!r}); "
                                    "it may have been delivered, so it is not sent again")
        return message_id

    async def edit(self, message_id: int, content: str) -> None:
        """An edit that arrives twice changes nothing more: safe to retry."""
        await self.calls.call("PATCH", f"/messages/{message_id}",
                              data={"content": content}, idempotent=True)

    async def upload_url(self, path_id: str) -> str:
        """A temporary address of an upload (``GET /user_uploads/{realm_id_str}/{filename}``,
        the spec's ``get-file-temporary-url``): it needs no credentials and lives 60
        seconds, so the API key never travels with a download."""
        url = _body((await self.calls.call("GET", f"/user_uploads/{path_id}")).data).get("url")
        if not isinstance(url, str) or not url.startswith("/user_uploads/"):
            raise AttachmentUnavailable("Zulip did not say where the file is")
        return url

    async def typing(self, fields: Mapping[str, Any]) -> None:
        await self.calls.call("POST", "/typing", data=_form(fields), idempotent=True)
