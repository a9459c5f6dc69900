"""The open platform's REST API as the channel uses it: a tenant token, the bot, and messages.

Every call carries ``Authorization: Bearer <tenant_access_token>``, the token of the custom
app (``POST /open-apis/auth/v3/tenant_access_token/internal`` with ``app_id`` and
``app_secret``; it lives ``expire`` seconds, two hours, and a new one is issued once less
than 30 minutes are left). It is fetched on first use, renewed 30 minutes before it
expires, and fetched again once when Feishu calls it invalid or missing (99991663,
99991661), the refused call then made again: it was not carried out.

Feishu answers errors as ``{"code", "msg"}`` (HTTP 400 for most, 429 for rate limits,
which older endpoints answer with a 400), so :func:`classify` sorts by ``code`` before the
kit's status mapping: 99991400 (or HTTP 429) is its rate limit, waited out for
``x-ogw-ratelimit-reset`` seconds; 230020 the per-chat limit (5 messages a second); codes
a user can act on become a FatalConnectorError that says what to change in the console.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from pyclaw_app.channels import ChannelHttp, HttpAnswer
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError

__all__ = ["FeishuApi", "TargetGone", "TokenRejected", "classify", "data_of"]

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
RENEW_BEFORE = 30 * 60.0
"""Seconds before expiry the token is renewed: from then on Feishu issues a fresh one."""
RATE_LIMIT_WAIT = 1.0
"""When a rate-limit answer names no reset: Feishu's message limits are per second."""
TOKEN_CODES = frozenset({99991661, 99991663})
GONE_CODES = frozenset({230011, 230110})
"""The message replied to was recalled or deleted."""
RATE_LIMIT = 99991400
CHAT_RATE_LIMIT = 230020
ADVICE = {
    10003: "check app_id (the App ID, cli_...)",
    10014: "check app_secret (the App Secret of this app)",
    230002: "the bot is not in this group (was it removed?); add it to the group again",
    230006: "the app has no bot: add the Bot feature in the developer console and publish "
            "a version",
    230013: "the user is outside the app's availability scope: widen it under Version "
            "Management & Release and publish a version",
    230018: "the group's settings block the bot here",
    230025: "the message is longer than Feishu allows (150 KB): lower max_text",
    230027: "the app lacks a permission: grant im:message:send_as_bot (or im:message) and "
            "publish a version",
    230035: "the bot may not send messages in this chat (muted group, or the tenant's "
            "communication permissions)",
    230072: "Feishu allows 20 edits per message and this one has had them",
    230075: "the message is too old to be edited",
    99991672: "the app lacks an API permission: grant im:message:send_as_bot (or "
              "im:message) in the developer console and publish a version",
}


class TokenRejected(RetryableError):
    """Feishu called the tenant token invalid or missing: fetch a new one, then retry."""


class TargetGone(FatalConnectorError):
    """The message a reply quotes was recalled or deleted: nothing to quote any more."""


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def _code(data: Any) -> int | None:
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _reset(answer: HttpAnswer) -> float:
    headers = {k.lower(): v for k, v in answer.headers.items()}
    try:
        return max(0.0, float(headers["x-ogw-ratelimit-reset"]))
    except (KeyError, ValueError):
        return RATE_LIMIT_WAIT


def classify(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """Feishu's error codes before the HTTP status (ChannelHttp's ``classify`` hook)."""
    code = _code(answer.data)
    if code in TOKEN_CODES:
        return TokenRejected(f"{what}: Feishu refused the tenant_access_token ({detail})")
    if code == RATE_LIMIT or answer.status == 429:
        wait = _reset(answer)
        return RetryableError(f"Feishu rate limit: retry after {wait:g}s ({what}: {detail})",
                              retry_after=wait)
    if code == CHAT_RATE_LIMIT:
        return RetryableError(f"Feishu's per-chat rate limit ({what}: {detail})",
                              retry_after=RATE_LIMIT_WAIT)
    if code in GONE_CODES:
        return TargetGone(f"{what}: {detail}")
    if code in ADVICE:
        return FatalConnectorError(f"{what} refused: {detail}; {ADVICE[code]}")
    return None


def _describe(body: Any) -> str | None:
    """``{"code": 230002, "msg": "Bot/User can NOT be out of the chat."}`` -> its words."""
    code = _code(body)
    if code is None:
        return None
    msg = body.get("msg")
    return f"{msg if isinstance(msg, str) and msg else 'error'} (code {code})"


class FeishuApi:
    """The calls the channel makes; one per :meth:`call`, the token renewed as it must be."""

    def __init__(self, base_url: str, app_id: str, app_secret: str, *,
                 secrets: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._http = ChannelHttp(base_url, platform="Feishu", secrets=[app_secret, *secrets],
                                 describe=_describe, classify=classify)
        self._app_id = app_id
        self._app_secret = app_secret
        self._clock = clock
        self._token = ""
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def call(self, method: str, path: str, *, json_body: Any = None,
                   params: dict[str, str] | None = None, idempotent: bool | None = None,
                   ) -> dict[str, Any]:
        """The answer's JSON object (``{"code": 0, "data": ...}``); pyclaw's errors else."""
        token = await self._tenant_token()
        try:
            return await self._once(method, path, token, json_body, params, idempotent)
        except TokenRejected:
            self._forget(token)  # revoked or expired early: one new token, one more try
        token = await self._tenant_token()
        try:
            return await self._once(method, path, token, json_body, params, idempotent)
        except TokenRejected as exc:
            self._forget(token)
            raise FatalConnectorError(f"{exc}, also right after renewing it: check app_id "
                                      "and app_secret") from None

    async def _once(self, method: str, path: str, token: str, json_body: Any,
                    params: dict[str, str] | None, idempotent: bool | None) -> dict[str, Any]:
        answer = await self._http.call(method, path, json_body=json_body, params=params,
                                       idempotent=idempotent,
                                       headers={"Authorization": f"Bearer {token}"})
        return self._body(answer, f"Feishu {method} {path.split('?')[0]}")

    async def close(self) -> None:
        await self._http.close()

    def _body(self, answer: HttpAnswer, what: str) -> dict[str, Any]:
        """A nonzero ``code`` is an error whatever the HTTP status said."""
        code = _code(answer.data)
        if code:
            detail = _describe(answer.data) or f"code {code}"
            raise classify(answer, what, detail) or FatalConnectorError(
                f"{what} answered {detail}")
        return answer.data if isinstance(answer.data, dict) else {}

    async def _tenant_token(self) -> str:
        if self._token and self._clock() < self._renew_at:
            return self._token
        async with self._lock:  # one renewal at a time; the others use its token
            if self._token and self._clock() < self._renew_at:
                return self._token
            answer = await self._http.call("POST", TOKEN_PATH, json_body={
                "app_id": self._app_id, "app_secret": self._app_secret}, idempotent=True)
            body = answer.data if isinstance(answer.data, dict) else {}
            token, expire = body.get("tenant_access_token"), body.get("expire")
            if _code(body) or not isinstance(token, str) or not token:
                raise FatalConnectorError(
                    f"Feishu gave no tenant_access_token ({_describe(body) or 'no token'}); "
                    "check app_id and app_secret")
            lifetime = expire if isinstance(expire, int | float) and expire > 0 else 7200
            self._http.add_secret(token)
            self._token = token
            self._renew_at = self._clock() + max(0.0, math.floor(lifetime - RENEW_BEFORE))
            return token

    async def auth_headers(self) -> dict[str, str]:
        """The headers a download from the open platform needs (a fresh tenant token)."""
        return {"Authorization": f"Bearer {await self._tenant_token()}"}

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token, self._renew_at = "", 0.0
