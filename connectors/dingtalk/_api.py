"""DingTalk's REST side in one place: Stream tickets, access tokens, robot sends, session
webhooks, the download URLs of received files, and how each of their answers becomes
pyclaw's errors.

Two API generations answer differently. The OpenAPI (``api.dingtalk.com/v1.0/...``) uses
HTTP statuses with ``{"code", "message", "requestid"}``: a wrong Client ID/Secret is
``authFailed`` (connections/open) or ``invalidClientIdOrSecret`` (accessToken), a stale
token 401 ``InvalidAuthentication``, throttling ``Forbidden.AccessDenied.QpsLimitForApi`` /
``QpsLimitForAppkeyAndApi`` ("sleep 1 second and go on", How to handle API throttling,
open.dingtalk.com/document/development/how-to-process-api-throttling-on-the-dingtalk-server).
The old ``oapi.dingtalk.com`` host, where session webhooks live, answers HTTP 200 with
``{"errcode", "errmsg"}``: 90018/90002 are the same per-second throttles, 130101 the robot's
"send too fast" (20 a minute), -1 "system busy".

A session webhook is a URL from a received message. It is used only on the configured
hosts (``oapi_base``, ``api_base``), carries no credential of ours, and one that DingTalk
no longer knows (``300001``, HTTP 404) raises :class:`SessionGone`: the part is retried
through the robot API.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

from dingtalk_stream.chatbot import ChatbotMessage

from pyclaw_app.channels import ChannelHttp, HttpAnswer
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError

__all__ = ["ROBOT_TOPIC", "DingTalkApi", "SessionGone", "TokenRejected"]

ROBOT_TOPIC: str = ChatbotMessage.TOPIC
"""The robot-message callback topic (``/v1.0/im/bot/messages/get``)."""
QPS_WAIT = 1.0
"""Seconds a per-second throttle lasts (DingTalk: "sleep 1 second, then go on")."""
MINUTE_WAIT = 60.0
"""Seconds to wait on a per-minute limit (the robot's 20 messages a minute)."""
TOKEN_MARGIN = 300.0
"""Seconds before its expiry an access token is replaced (the official SDK keeps 5 min)."""
USER_AGENT = "pyclaw-sdk-python/1.0"
"""``ua`` of connections/open, in the ``name-sdk-lang/version`` form the protocol asks."""

_QPS_CODES = frozenset({"Forbidden.AccessDenied.QpsLimitForApi",
                        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"})
_CREDENTIAL_CODES = frozenset({"authFailed", "invalidClientIdOrSecret",
                               "invalidParameter.appKey.invalid"})
_OAPI_WAITS = {90018: QPS_WAIT, 90002: QPS_WAIT, 90005: MINUTE_WAIT, 90006: MINUTE_WAIT,
               130101: MINUTE_WAIT, 410100: MINUTE_WAIT}
_OAPI_BUSY = frozenset({-1})
_SESSION_GONE = frozenset({300001})


class TokenRejected(RetryableError):
    """The access token was refused (expired early, app secret rotated): get a new one."""


class SessionGone(RetryableError):
    """DingTalk no longer knows the message's session webhook; nothing was sent."""


def _describe(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    if "errcode" in body:
        return f"{body.get('errcode')} {body.get('errmsg', '')}".strip()
    code, message = body.get("code"), body.get("message")
    return f"{code}: {message}" if code and message else str(code or message or "") or None


def _classify(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """DingTalk's own codes first; None leaves the kit's status mapping."""
    body = answer.data if isinstance(answer.data, dict) else {}
    code = str(body.get("code") or "")
    if code in _QPS_CODES or code.startswith("Forbidden.AccessDenied.QpsLimit"):
        return RetryableError(f"DingTalk rate limit ({code}): retry after {QPS_WAIT:g}s",
                              retry_after=QPS_WAIT)
    if code in _CREDENTIAL_CODES:
        return FatalConnectorError(f"DingTalk refused the Client ID / Client Secret ({detail}):"
                                   " copy both again from the app's Credentials page")
    if code == "InvalidAuthentication" or answer.status == 401:
        return TokenRejected(f"{what}: DingTalk refused the access token ({detail}); a new "
                             "one is fetched")
    if code == "Forbidden.AccessDenied.ApiCountLimitForOrg":
        return FatalConnectorError(f"{what}: the organisation's monthly OpenAPI quota is used "
                                   f"up ({detail}); replies within a session webhook's "
                                   "lifetime still go out")
    if code.startswith("Forbidden.AccessDenied") or answer.status == 403:
        return FatalConnectorError(f"{what}: DingTalk does not allow it ({detail}); grant the "
                                   "app the robot send permission (qyapi_robot_sendmsg) and "
                                   "publish the robot")
    return None


def _classify_webhook(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    if answer.status == 404:
        return SessionGone(f"the session webhook is gone ({detail or 'HTTP 404'})")
    return None


def _rate_limit(body: Any) -> float | None:
    """A 429 without Retry-After: DingTalk's throttles last a second."""
    return QPS_WAIT


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in; -1 for a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme, -1)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


class DingTalkApi:
    """The calls the channel makes, each one request (the gateway retries)."""

    def __init__(self, *, api_base: str, oapi_base: str, client_id: str, client_secret: str,
                 robot_code: str) -> None:
        self._http = ChannelHttp(api_base, platform="DingTalk", secrets=[client_secret],
                                 describe=_describe, classify=_classify,
                                 rate_limit=_rate_limit)
        self._hooks = ChannelHttp(oapi_base, platform="DingTalk", describe=_describe,
                                  classify=_classify_webhook, rate_limit=_rate_limit)
        self._client_id = client_id
        self._client_secret = client_secret
        self.robot_code = robot_code
        self._hosts = {_origin(api_base), _origin(oapi_base)}
        self._token = ""
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.close()
        await self._hooks.close()

    # ---- Stream and tokens -----------------------------------------------------------------

    async def open_connection(self) -> tuple[str, str]:
        """A one-time ticket for the robot topic: (endpoint, ticket)."""
        answer = await self._http.call("POST", "/v1.0/gateway/connections/open", json_body={
            "clientId": self._client_id, "clientSecret": self._client_secret,
            "subscriptions": [{"type": "CALLBACK", "topic": ROBOT_TOPIC}],
            "ua": USER_AGENT}, idempotent=True)
        body = answer.data if isinstance(answer.data, dict) else {}
        endpoint, ticket = body.get("endpoint"), body.get("ticket")
        if not isinstance(endpoint, str) or not isinstance(ticket, str) or not ticket:
            raise RetryableError("DingTalk connections/open answered without an endpoint "
                                 "and ticket")
        if urlsplit(endpoint).scheme not in ("ws", "wss"):
            raise FatalConnectorError(f"DingTalk named a Stream endpoint that is not a "
                                      f"WebSocket URL: {endpoint!r}")
        return endpoint, ticket

    async def access_token(self) -> str:
        """The app's access token, fetched again shortly before it expires."""
        async with self._token_lock:
            if self._token and time.monotonic() < self._token_until:
                return self._token
            answer = await self._http.call("POST", "/v1.0/oauth2/accessToken", json_body={
                "appKey": self._client_id, "appSecret": self._client_secret},
                idempotent=True)
            body = answer.data if isinstance(answer.data, dict) else {}
            token, lifetime = body.get("accessToken"), body.get("expireIn")
            if not isinstance(token, str) or not token:
                raise RetryableError("DingTalk accessToken answered without a token")
            seconds = float(lifetime) if isinstance(lifetime, int | float) else 0.0
            self._http.add_secret(token)
            self._token = token
            self._token_until = time.monotonic() + max(seconds - TOKEN_MARGIN, 0.0)
            return token

    def forget_token(self) -> None:
        self._token, self._token_until = "", 0.0

    # ---- sending ---------------------------------------------------------------------------

    def webhook_allowed(self, url: str) -> bool:
        """A session webhook on one of the configured hosts (nothing else is posted to)."""
        return _origin(url) in self._hosts

    async def send_webhook(self, url: str, message: dict[str, Any]) -> None:
        """POST one message to a session webhook (old-API answer: HTTP 200 + errcode)."""
        if not self.webhook_allowed(url):
            raise FatalConnectorError("refused to post to a session webhook outside the "
                                      "configured DingTalk hosts")
        answer = await self._hooks.call("POST", url, json_body=message)
        body = answer.data if isinstance(answer.data, dict) else {}
        code = body.get("errcode", 0)
        if code in (0, None):
            return
        said = f"DingTalk session webhook answered {code} {body.get('errmsg', '')}".strip()
        if code in _OAPI_WAITS:
            wait = _OAPI_WAITS[code]
            raise RetryableError(f"DingTalk rate limit: retry after {wait:g}s ({said})",
                                 retry_after=wait)
        if code in _OAPI_BUSY:
            raise RetryableError(said)
        if code in _SESSION_GONE:
            raise SessionGone(said)
        raise FatalConnectorError(said)

    async def send_robot(self, *, group: bool, target: str, msg_key: str,
                         msg_param: dict[str, str]) -> str:
        """One robot message through the OpenAPI: a group (``openConversationId``) or one
        user (batchSend to a single staff id). Returns DingTalk's ``processQueryKey``."""
        token = await self.access_token()
        body: dict[str, Any] = {"robotCode": self.robot_code, "msgKey": msg_key,
                                "msgParam": json.dumps(msg_param, ensure_ascii=False)}
        if group:
            path = "/v1.0/robot/groupMessages/send"
            body["openConversationId"] = target
        else:
            path = "/v1.0/robot/oToMessages/batchSend"
            body["userIds"] = [target]
        try:
            answer = await self._http.call("POST", path, json_body=body,
                                           headers={"x-acs-dingtalk-access-token": token})
        except TokenRejected:
            self.forget_token()
            raise
        data = answer.data if isinstance(answer.data, dict) else {}
        if target in _strings(data.get("invalidStaffIdList")):
            raise FatalConnectorError(f"DingTalk does not know the user {target!r} "
                                      "(invalidStaffIdList): the robot cannot write to them")
        if target in _strings(data.get("flowControlledStaffIdList")):
            raise RetryableError(f"DingTalk is holding back messages to {target!r} "
                                 "(flowControlledStaffIdList)", retry_after=MINUTE_WAIT)
        return str(data.get("processQueryKey") or "")


    # ---- files ----------------------------------------------------------------------------

    async def download_url(self, download_code: str) -> str:
        """The temporary URL of a file a user sent the robot: ``POST
        /v1.0/robot/messageFiles/download`` with ``{downloadCode, robotCode}`` answers
        ``{downloadUrl}`` ("Download the file content of the robot receiving message",
        open.dingtalk.com/document/orgapp/download-the-file-content-of-the-robot-receiving-
        message). The URL itself is signed, so it is fetched with no token of ours."""
        token = await self.access_token()
        try:
            answer = await self._http.call(
                "POST", "/v1.0/robot/messageFiles/download",
                json_body={"downloadCode": download_code, "robotCode": self.robot_code},
                headers={"x-acs-dingtalk-access-token": token}, idempotent=True)
        except TokenRejected:
            self.forget_token()
            raise
        data = answer.data if isinstance(answer.data, dict) else {}
        url = data.get("downloadUrl")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise FatalConnectorError("DingTalk answered messageFiles/download without a "
                                      "download URL")
        return url


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
