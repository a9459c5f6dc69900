"""The app's service account: an access token for the Chat REST API, renewed before it ends.

Google's service-account flow is the OAuth 2.0 JWT-bearer grant (RFC 7523): a JWT signed with
the key's private key (``iss`` the account's email, ``scope`` chat.bot, ``aud`` the token
URI, valid for an hour) is POSTed to the key's ``token_uri`` and traded for an access token.
google-auth's ``service_account.Credentials.refresh`` does exactly that, but through a sync
transport; here google-auth does what it does well, parsing the key and signing
(``crypt.RSASigner``, ``jwt.encode``: pure computation), and the one POST goes through the
kit's ``ChannelHttp`` on the loop. The token is shared by every call and renewed five minutes
before it ends; concurrent sends wait for one renewal instead of starting their own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from google.auth import crypt
from google.auth import jwt as google_jwt

from pyclaw_app.channels import ChannelHttp
from pyclaw_app.errors import FatalConnectorError

__all__ = ["GRANT_TYPE", "SCOPE", "ServiceAccount"]

SCOPE = "https://www.googleapis.com/auth/chat.bot"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME = 3600
"""Seconds the signed JWT is valid; Google accepts at most one hour."""
RENEW_BEFORE = 300.0
"""An access token is renewed this many seconds before Google says it ends."""
FRESH = 60.0
"""A token refused sooner than this after it was issued is not merely expired."""


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    issued: float
    expires: float


class ServiceAccount:
    """One service account key (the JSON Google offers for download)."""

    def __init__(self, key_json: str, *, token_uri: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        try:
            info = json.loads(key_json)
        except ValueError:
            raise FatalConnectorError("service_account_key is not JSON: paste the whole key "
                                      "file Google Cloud gave you") from None
        if not isinstance(info, dict) or not all(
                isinstance(info.get(k), str) and info[k] for k in ("client_email",
                                                                   "private_key")):
            raise FatalConnectorError("service_account_key has no client_email and "
                                      "private_key: it must be a service account's JSON key")
        try:
            self._signer = crypt.RSASigner.from_service_account_info(info)
        except (ValueError, TypeError) as exc:
            raise FatalConnectorError(f"the private_key in service_account_key cannot be read "
                                      f"({type(exc).__name__})") from None
        self.email: str = info["client_email"]
        self.token_uri: str = token_uri or str(info.get("token_uri") or DEFAULT_TOKEN_URI)
        self.secrets = (key_json, info["private_key"])
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    def assertion(self) -> str:
        """The signed JWT the token endpoint trades for an access token."""
        now = int(self._clock())
        return google_jwt.encode(self._signer, {
            "iss": self.email, "scope": SCOPE, "aud": self.token_uri,
            "iat": now, "exp": now + ASSERTION_LIFETIME}).decode()

    async def token(self, http: ChannelHttp) -> str:
        """A valid access token: the cached one, or a new one from the token endpoint."""
        held = self._token
        if held is not None and self._clock() < held.expires - RENEW_BEFORE:
            return held.value
        async with self._lock:
            held = self._token
            if held is not None and self._clock() < held.expires - RENEW_BEFORE:
                return held.value
            self._token = held = await self._fetch(http)
            return held.value

    def refused(self, value: str) -> bool:
        """The Chat API refused ``value`` (HTTP 401): forget it. True when it was not brand
        new, so a fresh token may well be accepted (it expired or was revoked early)."""
        held = self._token
        if held is None or held.value != value:
            return True  # already replaced by a newer one
        self._token = None
        return self._clock() - held.issued >= FRESH

    async def _fetch(self, http: ChannelHttp) -> _Token:
        issued = self._clock()
        try:
            answer = await http.call("POST", self.token_uri, data={
                "grant_type": GRANT_TYPE, "assertion": self.assertion()}, idempotent=True)
        except FatalConnectorError as exc:
            raise FatalConnectorError(f"Google refused the service account key for "
                                      f"{self.email} ({exc}); check service_account_key (a "
                                      "deleted or disabled key is refused)") from None
        data = answer.data if isinstance(answer.data, dict) else {}
        value, lifetime = data.get("access_token"), data.get("expires_in")
        if not isinstance(value, str) or not value:
            raise FatalConnectorError(f"{self.token_uri} answered no access_token")
        seconds = float(lifetime) if isinstance(lifetime, int | float) and \
            not isinstance(lifetime, bool) else float(ASSERTION_LIFETIME)
        http.add_secret(value)
        return _Token(value, issued, issued + seconds)
