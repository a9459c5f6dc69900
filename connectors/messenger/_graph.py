"""The Graph API's answers sorted into pyclaw's errors, for the Messenger Send API.

ChannelHttp sorts answers by HTTP status; the Graph API puts its throttling, its
messaging-window rule and its bad-token answers in HTTP 400s told apart only by
``error.code`` (and ``error_subcode``), so :func:`graph_error` (ChannelHttp's
``classify`` hook) reads those first:

- 4, 17, 32, 613 (app, user, Page and custom call limits) and 80001 / 80006 (the Pages and
  Messenger business-use-case limits a Page token is counted against) -> RetryableError,
  nothing was sent. The wait is ``estimated_time_to_regain_access`` (minutes) from the
  ``X-Business-Use-Case-Usage`` or ``X-Page-Usage`` header when Meta gives one, else one
  second: the Send API's own limits are per second (300 text calls per Page).
- 1200 ("Temporary send message failure") and 2 ("retry your request later") ->
  RetryableError.
- 190 (the token is invalid, expired or revoked) -> FatalConnectorError naming the field;
  100 on a node of type User -> the token is a user token, not a Page token; 100 about
  ``appsecret_proof`` -> app_secret is not this app's secret.
- 10 with subcode 2018278 / 2018065 ("sent outside of allowed window"): the person last
  wrote more than 24 hours ago -> :class:`OutsideWindow`, which the connector may answer
  with the configured message tag.
- 551 ("This person isn't available right now": they blocked the Page or left) and other
  10 / 200 permission errors -> FatalConnectorError with Meta's words and what to check.
- everything else as ChannelHttp sorts it (5xx retryable, a lost answer to a send
  DeliveryUncertain, other 4xx fatal with Meta's own words).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pyclaw_app.channels import HttpAnswer
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError

__all__ = ["OutsideWindow", "describe", "graph_error"]

RATE_LIMITS = frozenset({4, 17, 32, 613, 80001, 80006})
RETRY_LATER = frozenset({1200, 2})
BAD_TOKEN = 190
PERMISSION = frozenset({10, 200})
WINDOW_SUBCODES = frozenset({2018278, 2018065})
UNAVAILABLE = 551
DEFAULT_WAIT = 1.0
_BUC = "X-Business-Use-Case-Usage"
_USAGE_HEADERS = (_BUC, "X-Page-Usage")


class OutsideWindow(FatalConnectorError):
    """Messenger refused a standard reply: the person last wrote over 24 hours ago."""


def graph_error(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """Graph API errors sorted by ``error.code`` before the HTTP status (ChannelHttp's hook)."""
    error = answer.data.get("error") if isinstance(answer.data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    subcode = error.get("error_subcode")
    message = str(error.get("message", ""))
    if code in RATE_LIMITS:
        wait = regain_access(answer.headers) or DEFAULT_WAIT
        return RetryableError(f"Messenger rate limit: retry after {wait:g}s ({what} answered "
                              f"HTTP {answer.status}: {detail})", retry_after=wait)
    if code in RETRY_LATER:
        return RetryableError(f"{what}: Messenger could not take it now ({detail})")
    if code == BAD_TOKEN:
        return FatalConnectorError(
            f"Messenger refused the Page access token ({detail}); check page_access_token "
            "in this channel's settings (a Page token expires or is revoked when the "
            "admin who made it loses the Page role or changes their password)")
    if code == 100 and "node type (User)" in message:
        return FatalConnectorError(
            f"page_access_token is a user access token, not a Page token ({detail}); "
            "generate the Page's token under Messenger API Settings > Access tokens")
    if code == 100 and "appsecret_proof" in message:
        return FatalConnectorError(
            f"Meta refused the appsecret_proof made with app_secret ({detail}); check "
            "app_secret: it must be the secret of the app the Page token was made for")
    if code == 10 and (subcode in WINDOW_SUBCODES or "allowed window" in message):
        return OutsideWindow(detail)
    if code == UNAVAILABLE:
        return FatalConnectorError(
            f"Messenger cannot deliver to this person ({detail}): they may have blocked the "
            "Page, turned off its messages or deactivated their account; nothing reaches "
            "them until they write to the Page again")
    if code in PERMISSION:
        return FatalConnectorError(
            f"Messenger does not allow this ({detail}); check that the token has the "
            "pages_messaging permission and, while the app is in development mode, that the "
            "person has a role on the app")
    return None


def regain_access(headers: Mapping[str, str]) -> float | None:
    """Seconds until Meta lifts a throttle: the largest ``estimated_time_to_regain_access``
    (minutes) in the usage headers, or None when they give none."""
    minutes: list[float] = []
    for name in _USAGE_HEADERS:
        raw = headers.get(name)
        try:
            usage = json.loads(raw) if raw else None
        except ValueError:
            continue
        if name == _BUC and isinstance(usage, dict):  # {"<business id>": [{...}, ...]}
            entries = [e for group in usage.values() if isinstance(group, list) for e in group]
        else:  # X-Page-Usage: one flat object
            entries = [usage]
        for entry in entries:
            value = entry.get("estimated_time_to_regain_access") \
                if isinstance(entry, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                minutes.append(float(value))
    return max(minutes) * 60 if minutes else None


def describe(body: Any) -> str | None:
    """The Graph API error: ``{"error": {"message", "type", "code", "error_subcode",
    "error_user_msg"?, "fbtrace_id"}}`` as one line."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    code, subcode = error.get("code"), error.get("error_subcode")
    said = error["message"]
    if isinstance(code, int):
        said += f" (error {code}{f'/{subcode}' if isinstance(subcode, int) else ''})"
    user = error.get("error_user_msg")
    return f"{said}: {user}" if isinstance(user, str) and user else said
