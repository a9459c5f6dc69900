"""The connector both Tencent channels are: :class:`TencentConnector`, which the WeChat
Official Account's and the WeCom app's connectors subclass (``connectors.wecom`` imports
it).

The two platforms are one protocol family: the same ``access_token`` life (fetched with
the app's secret, renewed once when refused), the same HTTP-200-with-``errcode`` answers,
the same signed and enveloped XML callbacks that must be answered within five seconds or
come again. So the token, the call wrapper, the sorting of errcodes into retryable and
fatal, the client, the probe and the journaling of a callback are written once here. A
subclass gives what is its platform's own, as class attributes (its name, its errcodes and
what to tell the user about each) and a few methods: how the token is asked for, what the
probe asks, how the URL check and a callback are verified and opened, how a callback's
fields are parsed. Where the two differ for a platform reason (WeChat's three message
modes and plaintext echostr, WeCom's AgentID and per-member pace) it stays in their
runtimes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp

from connectors.wechat._crypto import CryptoError, Envelope, signature_matches
from connectors.wechat._parse import Followed, Ignored, Malformed, Message, Parsed
from connectors.wechat._wire import TokenCache, XmlRefused, errcode, errmsg, read_xml
from pyclaw_app.channels import (
    ChannelConfig,
    ChannelHttp,
    HttpAnswer,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    fresh_timestamp,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)
from pyclaw_app.model import Attachment

__all__ = ["BUSY_WAIT", "MINUTE_WAIT", "TencentConnector", "TencentRefused", "msg_signed",
           "read_or_reject"]

BUSY_WAIT = 1.0
"""Seconds to wait after a "system busy, retry later": Tencent says so without a number."""
MINUTE_WAIT = 60.0
"""Seconds to wait after a per-minute call limit: it resets with the next minute."""
DEFAULT_LIFETIME = 7200.0
"""``expires_in`` both platforms document, for an answer that lacks a usable one."""
_JSON = {"Content-Type": "application/json; charset=utf-8"}
MEDIA_LIMIT = 20 * 2**20
"""Bytes of one temporary media file read at most: both platforms keep files of 10 MB
(WeChat) or 20 MB (WeCom) at most, so more is not a file they serve."""
MEDIA_TIMEOUT = 60.0
ERROR_LIMIT = 64 * 1024
"""Bytes of an error answer read at most (it is a small JSON object)."""
_ERROR_TYPES = ("application/json", "text/plain", "text/html")
"""What an error answer of ``media/get`` comes as (a file never does)."""


class TencentRefused(FatalConnectorError):
    """The platform refused a call with ``errcode``; retrying the same call cannot help."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def msg_signed(token: str, query: Mapping[str, str], value: str) -> bool:
    """Does the query's ``msg_signature`` cover ``value`` (an ``Encrypt`` or an encrypted
    ``echostr``) with ``timestamp`` and ``nonce``, signed with ``token``?"""
    return signature_matches(query.get("msg_signature"), token, query.get("timestamp", ""),
                             query.get("nonce", ""), value)


def read_or_reject(body: bytes, what: str) -> dict[str, str]:
    """The fields of a callback's ``<xml>``; a 400 that says ``what`` it should have been."""
    try:
        return read_xml(body)
    except XmlRefused as exc:
        raise WebhookRejected(400, f"{what}: {exc}", level="error") from None


def _json(body: dict[str, Any]) -> bytes:
    """UTF-8 JSON, not ``\\u`` escapes: some of Tencent's APIs show escaped characters
    literally, so every client sends the text as it is."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class TencentConnector(RestConnector):
    """A Tencent channel; a subclass sets the class attributes and the methods that raise
    NotImplementedError, and ``make_http`` as ``self._client(<its api_base>)``."""

    platform: ClassVar[str]
    """The name the user knows it by, in every error and log line ("WeChat", "WeCom")."""
    url_name: ClassVar[str]
    """What the platform's console calls the callback URL."""
    secret_field: ClassVar[str]
    """The config field of the secret the access_token is asked for with."""
    receive_id_field: ClassVar[str]
    """The config field the envelope's receive id is (named when one does not open)."""
    token_codes: ClassVar[frozenset[int]]
    """errcodes that mean the access_token is invalid or expired: renew it once."""
    busy_codes: ClassVar[frozenset[int]]
    """errcodes that mean "busy, retry later": RetryableError after ``BUSY_WAIT``."""
    minute_codes: ClassVar[frozenset[int]]
    """errcodes of a per-minute limit: RetryableError after ``MINUTE_WAIT``."""
    advice: ClassVar[Mapping[int, str]]
    """What the user should know or do about an errcode, said with the refusal."""
    token_advice: ClassVar[Mapping[int, str]] = {}
    """Codes that mean something else when the token itself is asked for."""
    follow_words: ClassVar[tuple[str, str]]
    """What the channel log says a user did: (started following, stopped)."""
    ack: ClassVar[str]
    """The body the platform wants for a callback it should not send again."""

    def __init__(self, name: str, config: ChannelConfig) -> None:
        super().__init__(name, config)
        self._tokens: TokenCache | None = None
        self._envelope: Envelope | None = None

    @classmethod
    def refusal(cls, code: int, message: str, what: str,
                advice: Mapping[int, str] | None = None) -> ConnectorError:
        """The error for ``errcode`` ``code`` of ``what``: busy and per-minute limits are
        retryable, anything else is a :class:`TencentRefused` with its advice."""
        said = f"{what}: errcode {code} ({message})"
        if code in cls.busy_codes:
            return RetryableError(f"{cls.platform} is busy ({said}); retrying",
                                  retry_after=BUSY_WAIT)
        if code in cls.minute_codes:
            return RetryableError(f"{cls.platform} rate limit ({said})",
                                  retry_after=MINUTE_WAIT)
        hint = (cls.advice if advice is None else advice).get(code)
        return TencentRefused(f"{cls.platform} refused {said}{f': {hint}' if hint else ''}",
                              code)

    def _make_envelope(self, receive_id: str, where: str) -> None:
        """The envelope callbacks are opened with; FatalConnectorError naming ``where`` the
        key is copied from when it cannot be one."""
        try:
            self._envelope = Envelope(self.secret("encoding_aes_key"), receive_id)
        except CryptoError as exc:
            raise FatalConnectorError(f"the {self.platform} encoding_aes_key is not usable: "
                                      f"{exc}; copy it from {where}") from None

    # ---- calling the API ------------------------------------------------------------------

    async def _api(self, verb: str, method: str, body: dict[str, Any] | None = None, *,
                   what: str, params: dict[str, str] | None = None,
                   idempotent: bool | None = None) -> HttpAnswer:
        """One call of the running channel, with its cached token."""
        http, tokens = self.http, self._tokens
        if tokens is None:
            raise RetryableError(f"the {self.platform} channel has no access_token yet")
        return await self._call(http, tokens, verb, method, body, what=what, params=params,
                                idempotent=idempotent)

    async def _call(self, http: ChannelHttp, tokens: TokenCache, verb: str, method: str,
                    body: dict[str, Any] | None, *, what: str,
                    params: dict[str, str] | None = None,
                    idempotent: bool | None = None) -> HttpAnswer:
        """``<verb> /cgi-bin/<method>`` with the token, renewed once if the platform calls it
        invalid (the call was refused, so making it again is safe). ``idempotent`` (a GET
        is) decides whether an answer that is not the API's is retryable or uncertain."""
        safe = verb == "GET" if idempotent is None else idempotent
        token = await tokens.get()
        for renewed in (False, True):
            answer = await http.call(
                verb, f"/cgi-bin/{method}", params={**(params or {}), "access_token": token},
                data=None if body is None else _json(body),
                headers=None if body is None else _JSON, idempotent=safe)
            code = errcode(answer.data)
            if code == 0:
                return answer
            if code is None:
                detail = f"{what}: {self.platform} answered something that is not its JSON"
                raise RetryableError(detail) if safe else DeliveryUncertain(
                    f"{detail}; it may have been carried out")
            if code in self.token_codes and not renewed:
                self.log.info("access_token refused (%s); renewing it", code)
                token = await tokens.renew(token)
                continue
            raise self.refusal(code, errmsg(answer.data).replace(token, "<access_token>"),
                               what)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    # ---- attachments ----------------------------------------------------------------------

    media_advice: ClassVar[Mapping[int, str]] = {}
    """What to tell the sender about an errcode of ``media/get``."""

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """``GET /cgi-bin/media/get?access_token=&media_id=`` (get temporary media) on the
        configured API base, the token renewed once when refused. Both platforms answer a
        refusal as HTTP 200 with a JSON ``errcode`` in place of the file, which only this
        channel can tell from a file, so the connector reads the answer itself (at most
        :data:`MEDIA_LIMIT`, the platforms' own limit) and hands over the bytes."""
        media_id = attachment.platform_id
        tokens = self._tokens
        if not media_id:
            raise AttachmentUnavailable(f"{self.platform} gave no media id for it")
        if tokens is None:
            raise RetryableError(f"the {self.platform} channel has no access_token yet")
        url = f"{self.http.base_url}/cgi-bin/media/get"
        token = await tokens.get()
        async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(
                total=MEDIA_TIMEOUT)) as session:
            for renewed in (False, True):
                code, said, data = await self._read_media(session, url, token, media_id)
                if data is not None:
                    return AttachmentSource(data=data, size=len(data))
                if code in self.token_codes and not renewed:
                    token = await tokens.renew(token)
                    continue
                hint = self.media_advice.get(code) if code is not None else None
                raise AttachmentUnavailable(f"{self.platform} would not hand the file over "
                                            f"(errcode {code}: {said.replace(token, '<token>')})"
                                            f"{f'; {hint}' if hint else ''}")
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _read_media(self, session: aiohttp.ClientSession, url: str, token: str,
                          media_id: str) -> tuple[int | None, str, bytes | None]:
        """One ``media/get``: (None, "", the bytes) for a file, (errcode, errmsg, None) for
        a refusal. The URL holds the token, so errors name the platform only."""
        try:
            async with session.get(url, params={"access_token": token, "media_id": media_id},
                                   allow_redirects=False) as answer:
                if answer.status >= 500 or answer.status == 429:
                    raise RetryableError(f"{self.platform} answered HTTP {answer.status} to "
                                         "media/get")
                refused = answer.status != 200 or answer.content_type in _ERROR_TYPES
                limit = ERROR_LIMIT if refused else MEDIA_LIMIT
                body = bytearray()
                async for chunk in answer.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        break
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableError(f"{self.platform} media/get failed ({type(exc).__name__})"
                                 ) from None
        if not refused:
            if len(body) > MEDIA_LIMIT:
                raise AttachmentUnavailable(f"{self.platform} served more than "
                                            f"{MEDIA_LIMIT // 2**20} MB for one file")
            return None, "", bytes(body)
        try:
            data = json.loads(body[:ERROR_LIMIT])
        except ValueError:
            data = None
        code = errcode(data)
        return (code if code is not None else answer.status,
                errmsg(data) if isinstance(data, dict) else f"HTTP {answer.status}", None)

    # ---- the token ------------------------------------------------------------------------

    async def _request_token(self, http: ChannelHttp, secret: str) -> HttpAnswer:
        """The platform's access_token request, made with ``secret``."""
        raise NotImplementedError

    async def _fetch_token(self, http: ChannelHttp) -> tuple[str, float]:
        secret = self.secret(self.secret_field)
        answer = await self._request_token(http, secret)
        data, code = answer.data, errcode(answer.data)
        if code:
            raise self.refusal(code, errmsg(data).replace(secret, "<secret>"),
                               "the access_token request", {**self.advice, **self.token_advice})
        token = data.get("access_token") if isinstance(data, dict) else None
        expires = data.get("expires_in") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise RetryableError(f"{self.platform} answered the access_token request without "
                                 "a token")
        http.add_secret(token)
        valid = isinstance(expires, int) and not isinstance(expires, bool) and expires > 0
        return token, float(expires) if valid else DEFAULT_LIFETIME

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        if request.method == "GET":
            return await self.receive(request, self._verify_url_check, self._echo,
                                      parse=lambda r: r.query.get("echostr", ""))
        return await self.receive(request, self._verify_post, self._deliver, parse=self._open)

    def _verify_url_check(self, request: WebhookRequest) -> None:
        """Refuse a URL check (the GET with ``echostr``) the platform did not sign."""
        raise NotImplementedError

    def _verify(self, request: WebhookRequest) -> None:
        """Refuse a callback POST the platform did not sign, before it is parsed."""
        raise NotImplementedError

    async def _echo(self, echostr: str) -> WebhookResponse:
        """The answer to a verified URL check."""
        raise NotImplementedError

    def _open(self, request: WebhookRequest) -> dict[str, str]:
        """The fields of a verified callback's message."""
        raise NotImplementedError

    def _parse(self, fields: dict[str, str]) -> Parsed:
        """What the callback's fields are, for this channel."""
        raise NotImplementedError

    def _verify_post(self, request: WebhookRequest) -> None:
        if request.method != "POST":
            raise WebhookRejected(405, f"{self.platform} calls the {self.url_name} with GET "
                                  "and POST only")
        self._verify(request)

    def _fresh(self, request: WebhookRequest) -> None:
        """A signed timestamp over five minutes from our clock is a replay."""
        stamp = request.query.get("timestamp", "")
        if not fresh_timestamp(stamp):
            raise WebhookRejected(401, f"a signed request from timestamp {stamp[:12]!r}, "
                                  "over five minutes from our clock: a replay, or this "
                                  "server's clock is wrong")

    def _opened(self, encrypted: str) -> bytes:
        assert self._envelope is not None  # check_config made it before a callback is opened
        try:
            return self._envelope.open(encrypted)
        except CryptoError as exc:
            raise WebhookRejected(400, f"the encrypted message does not open: {exc} (check "
                                  f"encoding_aes_key and {self.receive_id_field})",
                                  level="error") from None

    async def _deliver(self, fields: dict[str, str]) -> WebhookResponse:
        """Journal a message, then ``ack``; anything else is acknowledged too, so the
        platform does not send it three more times."""
        ctx = self.ctx
        parsed = self._parse(fields)
        if isinstance(parsed, Message):
            result = await ctx.submit(parsed.inbound)
            if result.duplicate:
                self.log.debug("%s retried %s", self.platform, parsed.inbound.platform_id)
        elif isinstance(parsed, Followed):
            started, stopped = self.follow_words
            ctx.log("info", f"{parsed.user} {started if parsed.following else stopped}")
        elif isinstance(parsed, Malformed):
            ctx.log("error", f"skipped a malformed {self.platform} callback: {parsed.reason}",
                    msg_type=fields.get("MsgType", "")[:40])
        elif isinstance(parsed, Ignored):
            self.log.debug("ignored: %s", parsed.reason)
        return WebhookResponse(200, self.ack)

    # ---- the client -----------------------------------------------------------------------

    def _client(self, api_base: str) -> ChannelHttp:
        """The client, with every secret redacted from what it raises (and, once fetched,
        the access_token) and the platform's ``errmsg`` as the description of an error."""
        return ChannelHttp(api_base, platform=self.platform,
                           secrets=[self.secret(self.secret_field),
                                    self.secret_or_none("token") or "",
                                    self.secret_or_none("encoding_aes_key") or ""],
                           describe=lambda body: errmsg(body) if isinstance(body, dict)
                           else None)

    async def _identify(self, http: ChannelHttp, tokens: TokenCache) -> str:
        """What the probe asks with a fresh token cache; the name to show."""
        raise NotImplementedError

    async def whoami(self, http: ChannelHttp) -> str:
        """The credentials' check; the running channel keeps the token it got."""
        tokens = TokenCache(lambda: self._fetch_token(http))
        name = await self._identify(http, tokens)
        if http is self._http:
            self._tokens = tokens
        return name

    async def close(self) -> None:
        self._tokens = None
        await super().close()
