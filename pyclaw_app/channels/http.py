"""The HTTP client for channels without an SDK: one mapping of outcomes for every platform.

A REST channel gives a base URL and an auth hook and gets back JSON; what
can go wrong is sorted the same way everywhere, because the gateway's single
retry layer reads only these classes:

- refused before anything was sent (DNS, connection refused) -> RetryableError, not sent
- the server's TLS certificate refused -> FatalConnectorError naming ``ca_file``: retrying
  cannot make an untrusted certificate trusted, and a channel that retried for ever would
  only look slow
- 429 -> RetryableError with the server's Retry-After
- 5xx -> RetryableError
- 401 -> FatalConnectorError: check the token; 403 -> FatalConnectorError: check the
  bot's permissions (the platform's own words included)
- other 4xx -> FatalConnectorError naming the call and the platform's own words
- the request went out and the answer was lost (reset, timed out) -> DeliveryUncertain
  for calls that are not idempotent, RetryableError for the rest
- a redirect -> FatalConnectorError, not followed (the auth headers and the body must not go
  to a host the answer names)

Every secret the client knows is cut out of every error message.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)
from pyclaw_app.retry_after import retry_after

__all__ = ["ChannelHttp", "HttpAnswer"]

DEFAULT_TIMEOUT = 30.0
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    data: Any
    """Decoded JSON, or the text when the answer is not JSON."""


ISSUED_KEPT = 8
"""Issued access tokens a client redacts: tokens live an hour or two, so eight cover any
error that could still quote one."""


class ChannelHttp:
    """One platform's REST API: ``await http.call("POST", "/v2/bot/message/push", json=...)``.

    ``auth`` returns the headers that authenticate a request (``{"Authorization":
    "Bearer ..."}``); ``secrets`` are the values to redact; ``describe`` pulls the
    platform's error text out of an error answer's JSON; ``rate_limit`` reads a
    platform-specific wait (seconds) from a 429's JSON when it has no Retry-After;
    ``classify`` sorts a platform's own error codes first (Graph API puts throttling in a
    400): given the error answer, the call's name and the redacted detail, it returns the
    error to raise, or None for the mapping above.
    """

    def __init__(self, base_url: str, *, platform: str,
                 auth: Callable[[], Mapping[str, str]] | None = None,
                 secrets: Iterable[str] = (), timeout: float = DEFAULT_TIMEOUT,
                 describe: Callable[[Any], str | None] | None = None,
                 rate_limit: Callable[[Any], float | None] | None = None,
                 classify: Callable[[HttpAnswer, str, str], ConnectorError | None] | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.platform = platform
        self._auth = auth
        self._secrets = [s for s in secrets if s]
        self._issued: deque[str] = deque(maxlen=ISSUED_KEPT)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._describe = describe
        self._rate_limit = rate_limit
        self._classify = classify
        self._session = session
        self._owns_session = session is None

    async def call(self, method: str, path: str, *, json_body: Any = None,
                   params: Mapping[str, str] | None = None, data: Any = None,
                   headers: Mapping[str, str] | None = None,
                   idempotent: bool | None = None, timeout: float | None = None) -> HttpAnswer:
        """Make one request (no retries: the caller's retry layer decides); returns the 2xx
        answer or raises one of pyclaw's errors as the module docstring sorts them.
        ``timeout`` overrides the client's for this call (a long poll waits longer than a
        send)."""
        method = method.upper()
        safe = method in _IDEMPOTENT if idempotent is None else idempotent
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/" \
            f"{path.lstrip('/')}"
        what = f"{self.platform} {method} {self._redact(path.split('?')[0])}"
        send_headers = {**(self._auth() if self._auth else {}), **(headers or {})}
        session = self._ensure_session()
        # No timeout argument at all means the session's (None would mean none).
        limits = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}
        try:
            async with session.request(method, url, json=json_body, params=params, data=data,
                                       headers=send_headers, allow_redirects=False,
                                       **limits) as response:
                raw = await response.read()
                answer = HttpAnswer(response.status, response.headers, _decode(raw))
        except aiohttp.ClientConnectorCertificateError as exc:
            raise FatalConnectorError(
                f"{what}: TLS refused, {self.platform}'s certificate is not trusted "
                f"({self._redact(str(exc.certificate_error))}); if the server uses a private "
                "CA, set ca_file in this channel's settings") from None
        except aiohttp.ClientConnectorError as exc:
            raise RetryableError(f"{what}: {self.platform} unreachable, nothing was sent "
                                 f"({self._redact(str(exc))})") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                aiohttp.ClientOSError, TimeoutError) as exc:
            detail = self._redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
            if safe:
                raise RetryableError(f"{what}: no answer ({detail})") from None
            raise DeliveryUncertain(f"{what}: the request was sent but no answer came back "
                                    f"({detail}); it may have been carried out") from None
        except aiohttp.ClientError as exc:
            raise RetryableError(f"{what}: {self._redact(str(exc))}") from None
        return self._judge(answer, what)

    def _judge(self, answer: HttpAnswer, what: str) -> HttpAnswer:
        status = answer.status
        if status < 300:
            return answer
        if status < 400:  # never followed: credentials must not go where a 3xx points
            where = self._redact(str(answer.headers.get("Location", "elsewhere")))
            raise FatalConnectorError(f"{what} was redirected (HTTP {status}) to {where}; "
                                      "redirects are not followed: check the base URL")
        detail = self._detail(answer)
        if self._classify is not None:
            error = self._classify(answer, what, detail)
            if error is not None:
                raise error
        said = f"{what} answered HTTP {status}{f': {detail}' if detail else ''}"
        if status == 429:
            wait = retry_after({k.lower(): v for k, v in answer.headers.items()})
            if wait is None and self._rate_limit is not None:
                wait = self._rate_limit(answer.data)
            after = f": retry after {wait:g}s" if wait is not None else ""
            raise RetryableError(f"{self.platform} rate limit{after} ({said})", retry_after=wait)
        if status >= 500:
            raise RetryableError(said)
        if status == 401:
            raise FatalConnectorError(f"{self.platform} refused our credentials (HTTP 401"
                                      f"{f': {detail}' if detail else ''}); check the token "
                                      "in this channel's settings")
        if status == 403:
            raise FatalConnectorError(f"{self.platform} does not allow this ({said}); check "
                                      "the bot's permissions there")
        raise FatalConnectorError(said)

    def _detail(self, answer: HttpAnswer) -> str:
        text: str | None = None
        if self._describe is not None:
            try:
                text = self._describe(answer.data)
            except (KeyError, TypeError, AttributeError, ValueError):
                text = None
        if text is None:
            text = answer.data if isinstance(answer.data, str) else json.dumps(answer.data)
        return self._redact(str(text))[:300]

    def add_secret(self, value: str) -> None:
        """Redact ``value`` too: an access token the platform issued after the client was
        made (it rotates, so only the latest few are kept)."""
        if value and value not in self._issued:
            self._issued.append(value)

    def _redact(self, text: str) -> str:
        for secret in (*self._secrets, *self._issued):
            text = text.replace(secret, "<secret>")
        return text

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=False)
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")
