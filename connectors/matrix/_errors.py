"""The one place Matrix answers and transport failures become pyclaw's errors.

Matrix errors are JSON ``{"errcode", "error"}`` with the HTTP status; nio hands them over
as ``ErrorResponse`` objects (with the status on ``transport_response``) and raises
aiohttp's exceptions for the transport. A refused connection means the request never
left; a connection that died after the request was written may have delivered it.
"""

from __future__ import annotations

import asyncio

import aiohttp
from nio import ErrorResponse

from pyclaw_app.errors import ConnectorError, DeliveryUncertain, FatalConnectorError, RetryableError

__all__ = ["answer_error", "status_error", "transport_error"]

_DEFAULT_RETRY = 5.0
"""Seconds to wait on a 429 that names no ``retry_after_ms``."""


def answer_error(answer: ErrorResponse, what: str, *, room: str = "",
                 user: str = "") -> ConnectorError:
    """An error answer nio parsed (its HTTP status on ``transport_response``)."""
    status = getattr(getattr(answer, "transport_response", None), "status", 0)
    return status_error(status if isinstance(status, int) else 0, answer.status_code or "",
                        answer.message, answer.retry_after_ms, what, room=room, user=user)


def status_error(status: int, code: str, message: str, retry_after_ms: object, what: str, *,
                 room: str = "", user: str = "") -> ConnectorError:
    """A Matrix error answer to ``what`` ("send", "sync", "login"...) in pyclaw's terms."""
    detail = f"{code or status} {message}".strip()
    if code == "M_LIMIT_EXCEEDED" or status == 429:
        retry = retry_after_ms if isinstance(retry_after_ms, int | float) else 0
        seconds = retry / 1000 or _DEFAULT_RETRY
        return RetryableError(f"Matrix rate limit on {what}: retry after {seconds:g}s", seconds)
    if what == "login" and (code in ("M_FORBIDDEN", "M_USER_DEACTIVATED")
                            or status in (401, 403)):
        return FatalConnectorError(f"the homeserver refused the login of {user} ({detail}): "
                                   "check user_id and password")
    if code == "M_UNKNOWN_TOKEN" or status == 401:
        return FatalConnectorError(
            f"the homeserver rejected the access token of {user or 'the bot'} ({detail}): "
            "set a current token, or the password instead")
    if code == "M_FORBIDDEN" and room:
        return FatalConnectorError(
            f"not allowed to post in {room} ({detail}): the bot is not in that room, or its "
            "power level is too low; invite it again")
    if status >= 500 or (status == 0 and not code):
        return RetryableError(f"Matrix {what} failed on the homeserver ({detail})")
    return FatalConnectorError(f"the homeserver refused the {what} ({detail})")


def transport_error(exc: BaseException, what: str, *, sent: bool) -> ConnectorError:
    """A failed request: never sent (refused, DNS) is retryable; one that may have gone out
    is ``DeliveryUncertain`` when ``sent`` (a message), retryable otherwise."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return RetryableError(f"Matrix homeserver unreachable on {what}: {exc}")
    if sent:
        return DeliveryUncertain(f"the homeserver did not answer the {what} ({exc!r}); it may "
                                 "have been delivered, so it is not sent again")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return RetryableError(f"Matrix {what} timed out")
    return RetryableError(f"Matrix connection lost on {what}: {exc!r}")
