"""The bearer token on every request from Google Chat, checked without blocking the loop.

google-auth's ``id_token.verify_token(token, request, audience, certs_url)`` would do it all,
but it fetches the certificates through a sync transport (``requests``) on every call: a
blocking HTTP round trip on the event loop per request, or a thread per request to hide it.
So the work is split where it is cheap to split: :class:`Certificates` fetches Google's
certificates (``{key id: PEM x509 certificate}``) asynchronously through the kit's
``ChannelHttp`` and keeps them as long as Google's ``Cache-Control: max-age`` allows, and
:func:`verify_bearer` hands them to google-auth's ``jwt.decode`` (RS256 signature against the
certificate the token's ``kid`` names, ``iat``/``exp`` with a little clock skew, ``aud``),
which is pure computation (one RSA verification) and runs on the loop. What ``decode`` does
not check, the issuer and (for ID tokens) the email, is checked here.

Two audiences, as the Chat API's Configuration page offers them:

- project number: a JWT issued by ``chat@system.gserviceaccount.com``, audience the project
  number, certificates at that account's x509 metadata URL;
- HTTP endpoint URL: a Google ID token (issuer ``accounts.google.com``) for the endpoint URL,
  whose verified ``email`` is ``chat@system.gserviceaccount.com`` (or, in Google's newer
  wording, the app's per-project ``service-<project number>@gcp-sa-gsuiteaddons`` account),
  certificates at the OAuth2 v1 certs URL.

The token is not bound to the body: a request replayed while its token is valid (about an
hour) passes here, and is recognised by the journal (the message name is its id).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.auth import exceptions as google_errors
from google.auth import jwt as google_jwt

from connectors.googlechat.manifest import CHAT_ISSUER
from pyclaw_app.channels import ChannelHttp, WebhookRejected
from pyclaw_app.errors import RetryableError

__all__ = ["CHAT_CERTS_URL", "ID_TOKEN_CERTS_URL", "Audience", "Certificates", "key_id",
           "verify_bearer"]

CHAT_CERTS_URL = ("https://www.googleapis.com/service_accounts/v1/metadata/x509/"
                  f"{CHAT_ISSUER}")
ID_TOKEN_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
ID_TOKEN_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CLOCK_SKEW = 10
"""Seconds a token's ``iat``/``exp`` may be off from our clock."""
DEFAULT_MAX_AGE = 3600.0
"""How long certificates are kept when Google's answer says nothing (it rotates daily)."""
UNKNOWN_KEY_REFETCH = 30.0
"""A token naming a key we do not have fetches the certificates again (Google rotated
them), but not more often than this: forged tokens must not turn into a fetch each."""
_MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass(frozen=True, slots=True)
class Audience:
    """What a genuine token from Google Chat says, for this channel's settings."""

    project_number: str = ""
    endpoint_url: str = ""
    emails: frozenset[str] = frozenset({CHAT_ISSUER})

    @property
    def value(self) -> str:
        return self.endpoint_url or self.project_number


class Certificates:
    """Google's certificates for one certs URL, fetched on the loop and cached."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._clock = clock
        self._certs: dict[str, str] = {}
        self._fresh_until = -math.inf
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()

    @property
    def current(self) -> Mapping[str, str]:
        return self._certs

    async def ensure(self, http: ChannelHttp, kid: str | None) -> None:
        """Have fresh certificates that include ``kid`` (when the token names one). A failed
        fetch keeps the old ones if there are any; with none it raises RetryableError."""
        if not self._wanted(kid):
            return
        async with self._lock:
            if not self._wanted(kid):  # fetched while we waited for the lock
                return
            self._fetched_at = self._clock()
            try:
                answer = await http.call("GET", self.url)
            except RetryableError:
                if not self._certs:
                    raise
                return  # the old certificates still verify what they verified before
            self._certs = _certificates(answer.data, self.url)
            self._fresh_until = self._fetched_at + _max_age(answer.headers)

    def _wanted(self, kid: str | None) -> bool:
        now = self._clock()
        if now >= self._fresh_until:
            return True
        return kid is not None and kid not in self._certs and \
            now - self._fetched_at >= UNKNOWN_KEY_REFETCH


def key_id(authorization: str | None) -> str | None:
    """The ``kid`` in a bearer token's (unverified) header, to know which certificate it
    needs; None when there is no readable one. Nothing in it is trusted."""
    token = _bearer(authorization)
    if token is None:
        return None
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) and kid else None


def verify_bearer(authorization: str | None, certs: Mapping[str, str],
                  audience: Audience) -> Mapping[str, Any]:
    """The token's claims when Google Chat signed it for us; WebhookRejected(401) otherwise."""
    token = _bearer(authorization)
    if token is None:
        raise WebhookRejected(401, "missing Authorization: Bearer token (requests from "
                              "Google Chat always carry one)")
    try:
        claims = google_jwt.decode(token, certs=dict(certs), audience=audience.value,
                                   clock_skew_in_seconds=CLOCK_SKEW)
    except (google_errors.GoogleAuthError, ValueError, TypeError) as exc:
        raise WebhookRejected(401, f"bearer token refused: {_reason(exc)}") from None
    issuer = claims.get("iss")
    if audience.endpoint_url:
        if issuer not in ID_TOKEN_ISSUERS:
            raise WebhookRejected(401, f"bearer token from {issuer!r}, not a Google ID token")
        if claims.get("email") not in audience.emails or claims.get("email_verified") \
                is not True:
            raise WebhookRejected(401, "bearer token is a Google ID token, but not Google "
                                  "Chat's (email)")
    elif issuer != CHAT_ISSUER:
        raise WebhookRejected(401, f"bearer token from {issuer!r}, not {CHAT_ISSUER}")
    return claims


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _reason(exc: Exception) -> str:
    """google-auth's words, cut short (they never contain the token itself)."""
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def _certificates(data: object, url: str) -> dict[str, str]:
    """``{key id: PEM certificate}``; anything else is the certs URL's fault."""
    if isinstance(data, dict):
        found = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)
                 and "BEGIN CERTIFICATE" in v}
        if found:
            return found
    raise RetryableError(f"{url} answered no x509 certificates ({{key id: PEM}} expected): "
                         "check certs_url")


def _max_age(headers: Mapping[str, str]) -> float:
    control = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
    found = _MAX_AGE.search(control)
    return float(found.group(1)) if found else DEFAULT_MAX_AGE
