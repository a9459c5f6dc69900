"""The two tokens of the Bot Framework: the one every request from Teams carries, and ours.

Inbound (Bot Connector -> bot, "Authentication with the Bot Connector API"): the request
carries ``Authorization: Bearer <JWT>``, signed with a key listed in the JWKS that the
OpenID metadata document (``.../v1/.well-known/openidconfiguration``) points to with
``jwks_uri``. The token must be issued by the metadata's ``issuer``
(``https://api.botframework.com`` in the public cloud), be meant for
our App ID (``aud``), be unexpired (five minutes of clock skew), use an algorithm the
metadata allows, and its ``serviceurl`` claim must equal the activity's ``serviceUrl``:
the activity body is not signed, so that claim is the only proof of where answers may go.
A key's ``endorsements`` list the channels it may sign for (``msteams``).

Keys are fetched asynchronously before the (synchronous) check runs: at most once a day,
or sooner when a token names a key we do not have, but never more than once per
``REFETCH_INTERVAL`` however many such tokens arrive, so forged key ids cannot make us
hammer the metadata host.

Outbound (bot -> Bot Connector): an OAuth 2.0 client-credentials token from Microsoft
Entra ID (scope ``https://api.botframework.com/.default``), cached and renewed
``RENEW_MARGIN`` seconds before it expires. It goes only to service URLs that passed
:func:`service_url_problem`: vouched for by a verified JWT and on an allowlisted host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt

from pyclaw_app.channels import ChannelHttp
from pyclaw_app.errors import ConnectorError, FatalConnectorError

__all__ = [
    "ISSUER",
    "SCOPE",
    "AccessToken",
    "SigningKeys",
    "TokenRejected",
    "Verified",
    "bearer",
    "binding_problem",
    "key_id",
    "service_url_problem",
    "verify_token",
]

ISSUER = "https://api.botframework.com"
SCOPE = "https://api.botframework.com/.default"
CLOCK_SKEW = 300.0
"""Seconds of clock difference accepted on ``exp``/``nbf`` ("industry-standard" five minutes)."""
ALGORITHMS = ("RS256", "RS384", "RS512")
KEYS_MAX_AGE = 24 * 3600.0
REFETCH_INTERVAL = 60.0
"""Least time between two key fetches once keys are known (5 s while none are). The Bot
Framework publishes a new key days before it signs with it, so the daily refresh normally
has it already; this only bounds what tokens naming unknown keys can make us fetch."""
RENEW_MARGIN = 300.0
SERVICE_URL_CLAIM = "serviceurl"

Clock = Callable[[], float]


class TokenRejected(Exception):
    """The request's token is not one the Bot Framework issued for this bot."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Key:
    key: Any
    endorsements: tuple[str, ...] | None  # None: the key names no channels


@dataclass(frozen=True, slots=True)
class Verified:
    """A token whose signature and claims passed; the activity is checked against it next."""

    claims: Mapping[str, Any]
    endorsements: tuple[str, ...] | None


@dataclass
class SigningKeys:
    """The Bot Framework's signing keys, from its OpenID metadata."""

    metadata_url: str
    clock: Clock = time.monotonic
    algorithms: tuple[str, ...] = ("RS256",)
    issuer: str = ISSUER
    """The metadata's ``issuer`` (``https://api.botframework.us`` in US Government clouds)."""
    problem: str = ""
    """Why the last fetch failed ("" after a good one)."""
    _keys: dict[str, _Key] = field(default_factory=dict)
    _fetched: float | None = None
    _tried: float | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def get(self, kid: str) -> _Key | None:
        return self._keys.get(kid)

    async def refresh_for(self, http: ChannelHttp, kid: str | None) -> None:
        """Fetch the keys if they are old, or if ``kid`` is not among them (throttled);
        a failure keeps the old keys and is left in ``problem``."""
        async with self._lock:
            now = self.clock()
            stale = self._fetched is None or now - self._fetched > KEYS_MAX_AGE
            unknown = kid is not None and kid not in self._keys
            wait = REFETCH_INTERVAL if self._keys else 5.0
            if not (stale or unknown) or (self._tried is not None and now - self._tried < wait):
                return
            self._tried = now
            try:
                await self._fetch(http)
            except ConnectorError as exc:
                self.problem = str(exc)
                return
            self._fetched, self.problem = now, ""

    async def load(self, http: ChannelHttp) -> int:
        """Fetch now (start and Test connection); returns how many keys there are."""
        async with self._lock:
            self._tried = self.clock()
            await self._fetch(http)
            self._fetched, self.problem = self._tried, ""
            return len(self._keys)

    async def _fetch(self, http: ChannelHttp) -> None:
        metadata = (await http.call("GET", self.metadata_url)).data
        jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise FatalConnectorError(f"the OpenID metadata at {self.metadata_url} names no "
                                      "jwks_uri; check openid_metadata_url")
        offered = metadata.get("id_token_signing_alg_values_supported")
        algorithms = tuple(a for a in offered if a in ALGORITHMS) if isinstance(
            offered, list) else ("RS256",)
        issuer = metadata.get("issuer")
        document = (await http.call("GET", jwks_uri)).data
        keys = _read_jwks(document)
        if not keys:
            raise FatalConnectorError(f"the key set at {jwks_uri} holds no usable RSA keys")
        self._keys, self.algorithms = keys, algorithms or ("RS256",)
        self.issuer = issuer if isinstance(issuer, str) and issuer else ISSUER


def _read_jwks(document: object) -> dict[str, _Key]:
    listed = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str, _Key] = {}
    for raw in listed if isinstance(listed, list) else ():
        if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str):
            continue
        try:
            key = jwt.PyJWK(raw).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        endorsements = raw.get("endorsements")
        keys[raw["kid"]] = _Key(key, tuple(e for e in endorsements if isinstance(e, str))
                                if isinstance(endorsements, list) else None)
    return keys


def bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def key_id(token: str | None) -> str | None:
    """The ``kid`` a token's header names (unverified: only to pick the key)."""
    if not token:
        return None
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def verify_token(token: str, keys: SigningKeys, *, app_id: str) -> Verified:
    """Signature, algorithm, issuer, audience and lifetime; raises TokenRejected."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected(401, "the Authorization header holds no JWT") from None
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in keys.algorithms:
        raise TokenRejected(403, f"signed with {algorithm!r}, not with "
                            f"{', '.join(keys.algorithms)} as the OpenID metadata says")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None and keys.problem:  # 503: the Bot Framework tries the request again
        raise TokenRejected(503, f"the Bot Framework's signing keys could not be fetched "
                            f"({keys.problem}); check openid_metadata_url")
    if key is None:
        raise TokenRejected(403, f"signed with a key the Bot Framework does not list "
                            f"(kid {kid!r})")
    try:
        claims = jwt.decode(token, key.key, algorithms=[algorithm], audience=app_id,
                            issuer=keys.issuer, leeway=CLOCK_SKEW,
                            options={"require": ["exp", "iss", "aud"]})
    except jwt.ExpiredSignatureError:
        raise TokenRejected(403, "the token has expired") from None
    except jwt.InvalidAudienceError:
        raise TokenRejected(403, "the token is for another bot (its audience is not app_id)"
                            ) from None
    except jwt.InvalidIssuerError:
        raise TokenRejected(403, f"the token was not issued by {keys.issuer}") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected(403, "the token's signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(403, f"the token is not valid ({exc})") from None
    return Verified(claims, key.endorsements)


def binding_problem(verified: Verified, activity: object) -> str | None:
    """Why the activity is not the one the token vouches for, or None."""
    if not isinstance(activity, Mapping):
        return "the activity is not a JSON object"
    claimed, said = verified.claims.get(SERVICE_URL_CLAIM), activity.get("serviceUrl")
    if not isinstance(claimed, str) or claimed != said:
        return "the activity's serviceUrl is not the one its token vouches for"
    channel = activity.get("channelId")
    if verified.endorsements is not None and channel not in verified.endorsements:
        return f"the signing key is not endorsed for channel {channel!r}"
    return None


def service_url_problem(url: str, hosts: Iterable[str]) -> str | None:
    """Why our access token must not go to ``url``, or None: HTTPS (plain HTTP only to a
    loopback test server), no credentials in the URL, and a host in ``hosts``
    (``*.example.com`` matches subdomains of example.com)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return f"{url!r} is not a URL"
    if not host or parts.username is not None or parts.password is not None:
        return f"{url!r} is not a plain service URL"
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(host)):
        return f"{url!r} is not HTTPS"
    for pattern in (h.strip().lower() for h in hosts):
        if (pattern.startswith("*.") and host.endswith(pattern[1:])) or host == pattern:
            return None
    return f"the host {host} is not in service_url_hosts"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class AccessToken:
    """Our client-credentials token for the Bot Connector, fetched when first needed and
    renewed before it expires; one fetch at a time however many sends wait for it."""

    token_url: str
    app_id: str
    password: str
    clock: Clock = time.monotonic
    fetched: int = 0
    """How many tokens were fetched (Test connection reports a working fetch)."""
    _token: str | None = None
    _renew_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def header(self, http: ChannelHttp) -> dict[str, str]:
        async with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                await self._fetch(http)
            return {"Authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        """The Bot Connector refused the token: the next call fetches a new one."""
        self._token = None

    async def _fetch(self, http: ChannelHttp) -> None:
        # idempotent: a token request whose answer was lost sent no message; retry it.
        answer = await http.call("POST", self.token_url, idempotent=True, data={
            "grant_type": "client_credentials", "client_id": self.app_id,
            "client_secret": self.password, "scope": SCOPE})
        body = answer.data if isinstance(answer.data, dict) else {}
        token, lifetime = body.get("access_token"), body.get("expires_in")
        try:
            seconds = float(lifetime)  # v2 sends a number, v1 a numeric string
        except (TypeError, ValueError):
            seconds = 0.0
        if not isinstance(token, str) or not token or seconds <= 0:
            raise FatalConnectorError("Microsoft Entra ID answered the token request without "
                                      "an access_token and expires_in; check token_url")
        http.add_secret(token)
        self._token = token
        self._renew_at = self.clock() + max(seconds - RENEW_MARGIN, seconds / 2)
        self.fetched += 1
