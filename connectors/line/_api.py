"""The Messaging API calls the channel makes, through line-bot-sdk, in pyclaw's words.

``AsyncApiClient`` owns one aiohttp session for its life (one kept-alive
connection serves every call) and closes it in ``close``; it builds each URL as
``Configuration.host`` + the API path, so ``api_base`` may point at a proxy or
the test fake. Its models build the requests; ``_call`` is the one place where
what can happen becomes pyclaw's error classes:

- ``ApiException`` (any non-2xx): 429 is RetryableError after Retry-After, else
  one second (LINE sends none, and its limits are per second), except LINE's
  "monthly limit", which no wait cures (fatal); 5xx retryable; 401 and 403 fatal
  with what to check; every other status fatal with LINE's ``message`` and
  ``details``, as :class:`LineRefused` (the runtime reads "Invalid reply token"
  from it);
- refused before the request went out (``ClientConnectorError``, a connect
  time-out): RetryableError, nothing was sent;
- any other transport failure (reset, disconnect, read time-out, a redirect
  gone wrong): the request may have been carried out, so DeliveryUncertain for a
  reply or push (never resent) and RetryableError for the idempotent calls;
- a 2xx whose body the SDK's models refuse (a LINE-compatible server answering
  ``{}``): a send was carried out, so it counts as sent with no id (and a
  warning); for bot info it is fatal, the base URL is not a Messaging API.

The channel access token and secret are cut out of every message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiohttp
from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    BotInfoResponse,
    Configuration,
    PushMessageRequest,
    ReplyMessageRequest,
    ShowLoadingAnimationRequest,
    TextMessage,
)
from linebot.v3.messaging.exceptions import ApiException

from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)
from pyclaw_app.retry_after import retry_after

__all__ = ["RATE_LIMIT_WAIT", "REQUEST_TIMEOUT", "LineApi", "LineRefused"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

REQUEST_TIMEOUT = 30.0
"""Seconds one call may take in all (the SDK's own default is five minutes)."""
RATE_LIMIT_WAIT = 1.0
"""LINE's 429 has no Retry-After and its limits are per second: wait one window out."""
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class LineRefused(FatalConnectorError):
    """LINE answered with an error that retrying cannot cure; ``line_message`` is its own
    ``message`` ("Invalid reply token", ...)."""

    def __init__(self, text: str, *, status: int, line_message: str) -> None:
        super().__init__(text)
        self.status = status
        self.line_message = line_message


class LineApi:
    """One channel's client: ``bot_info``, ``reply``, ``push``, ``show_loading``, ``close``.

    ``warn`` receives what the channel log should say about a send LINE took but
    whose answer could not be read.
    """

    def __init__(self, base_url: str, access_token: str, *, secrets: Iterable[str] = (),
                 warn: Callable[[str], None] | None = None) -> None:
        self._client = AsyncApiClient(Configuration(host=base_url.rstrip("/"),
                                                    access_token=access_token))
        self._api = AsyncMessagingApi(self._client)
        self._secrets = [s for s in (access_token, *secrets) if s]
        self._warn = warn or _log.warning

    async def close(self) -> None:
        await self._client.close()

    async def bot_info(self) -> BotInfoResponse:
        info = await self._call("GET /v2/bot/info", self._api.get_bot_info(
            _request_timeout=REQUEST_TIMEOUT), delivers=False)
        if info is None:  # a 2xx the SDK has no model for: not LINE's 200
            raise FatalConnectorError("LINE GET /v2/bot/info answered without the bot's "
                                      "info; check the API base URL")
        return info

    async def reply(self, reply_token: str, message: TextMessage) -> list[str]:
        """The ids LINE gave the sent message (empty when its answer could not be read)."""
        answer = await self._call("POST /v2/bot/message/reply", self._api.reply_message(
            ReplyMessageRequest(reply_token=reply_token, messages=[message]),
            _request_timeout=REQUEST_TIMEOUT), delivers=True)
        return [m.id for m in answer.sent_messages] if answer is not None else []

    async def push(self, to: str, message: TextMessage) -> list[str]:
        answer = await self._call("POST /v2/bot/message/push", self._api.push_message(
            PushMessageRequest(to=to, messages=[message]),
            _request_timeout=REQUEST_TIMEOUT), delivers=True)
        return [m.id for m in answer.sent_messages] if answer is not None else []

    async def show_loading(self, chat: str, seconds: int) -> None:
        await self._call("POST /v2/bot/chat/loading/start", self._api.show_loading_animation(
            ShowLoadingAnimationRequest(chat_id=chat, loading_seconds=seconds),
            _request_timeout=REQUEST_TIMEOUT), delivers=False)

    async def _call(self, what: str, call: Awaitable[T], *, delivers: bool) -> T | None:
        """Await one SDK call; ``delivers``: it shows the user something (not idempotent).
        None when a 2xx has nothing to read: a status the SDK has no model for, or a send's
        answer its models refuse."""
        what = f"LINE {what}"
        try:
            return await call
        except ApiException as exc:
            raise self._refused(what, exc) from None
        except _NOT_SENT as exc:
            raise RetryableError(f"{what}: LINE unreachable, nothing was sent "
                                 f"({self._redact(str(exc))})") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = self._redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
            if not delivers:
                raise RetryableError(f"{what}: no answer ({detail})") from None
            raise DeliveryUncertain(f"{what}: the request was sent but no answer came back "
                                    f"({detail}); it may have been delivered, so it is not "
                                    "sent again") from None
        except Exception as exc:  # noqa: BLE001 - not an ApiException, so a 2xx body the
            # SDK's models refused (pydantic, JSON, charset errors; it has no class of its own)
            detail = self._redact(f"{type(exc).__name__}: {exc}")[:300]
            if not delivers:
                raise FatalConnectorError(f"{what}: the answer is not the Messaging API's "
                                          f"({detail}); check the API base URL") from None
            self._warn(f"{what}: LINE took the message but its answer could not be read "
                       f"({detail}); the message's id is unknown")
            return None

    def _refused(self, what: str, exc: ApiException) -> ConnectorError:
        status = int(exc.status or 0)
        message, detail = _describe(exc.body)
        message, detail = self._redact(message), self._redact(detail)[:300]
        said = f"{what} answered HTTP {status}{f': {detail}' if detail else ''}"
        if status == 429 and "monthly limit" in message:
            return LineRefused(f"{said}; the account's message quota for this month is used "
                               "up: until next month or a bigger plan only the first part of "
                               "a prompt answer (a reply) goes out", status=status,
                               line_message=message)
        if status == 429:
            wait = retry_after({k.lower(): v for k, v in (exc.headers or {}).items()})
            wait = RATE_LIMIT_WAIT if wait is None else wait
            return RetryableError(f"LINE rate limit: retry after {wait:g}s ({said})",
                                  retry_after=wait)
        if status >= 500:
            return RetryableError(said)
        if status == 401:
            advice = ("; check the channel access token in this channel's settings (LINE "
                      "Developers Console, Messaging API tab)")
        elif status == 403:
            advice = "; the channel's plan or permissions do not allow this call"
        elif 300 <= status < 400:
            advice = "; check the API base URL"
        else:
            advice = ""
        return LineRefused(said + advice, status=status, line_message=message)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<secret>")
        return text


def _describe(body: object) -> tuple[str, str]:
    """LINE's ``message`` and the whole of its error body as one line: ``{"message": ...,
    "details": [{"message", "property"}]}``; a body of another shape is quoted as it is."""
    try:
        data: Any = json.loads(body) if isinstance(body, str | bytes) and body else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        return "", text.strip()
    listed = data.get("details")
    details = [f"{d.get('property', '')}: {d.get('message', '')}".strip(": ")
               for d in (listed if isinstance(listed, list) else ()) if isinstance(d, dict)]
    return data["message"], "; ".join([data["message"], *details])
