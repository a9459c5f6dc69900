"""The controls every fake platform shares, so a new fake is only its platform's wire format.

A fake subclasses :class:`FakePlatform` and, in each API handler, asks
``await self.before(method)`` first (latency, scripted failures: answer with the
response it returns) and ``self.after(method, request)`` once it carried the
call out (a scripted lost answer cuts the connection there, *after* the platform
acted, which is the case ``DeliveryUncertain`` exists for). What a failure looks
like on the wire (status, body, headers) is the subclass's :meth:`error_response`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.server import FakeServer

__all__ = ["Failure", "FakePlatform"]


@dataclass
class _Rule:
    """Something scripted for the next ``count`` calls of ``method``, after ``skip`` good ones."""

    method: str
    count: int = 1
    skip: int = 0


@dataclass
class Failure(_Rule):
    status: int = 500
    retry_after: float | None = None


def _take(rules: list[Any], method: str) -> Any | None:
    """The rule that applies to this call of ``method`` (used up as it applies), if any."""
    for rule in rules:
        if rule.method != method:
            continue
        if rule.skip:
            rule.skip -= 1
            return None
        rule.count -= 1
        if rule.count <= 0:
            rules.remove(rule)
        return rule
    return None


@dataclass
class _Controls:
    failures: list[Failure] = field(default_factory=list)
    losses: list[_Rule] = field(default_factory=list)
    rate_limit_log: list[tuple[float, float]] = field(default_factory=list)
    pending_429: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


class FakePlatform(FakeServer):
    send_method: str = "send"
    """The platform's name for "post a message" (``sendMessage``, ``chat.postMessage``)."""

    def __init__(self) -> None:
        super().__init__()
        self.latency = 0.0
        """Seconds every API call waits before it is answered."""
        self._controls = _Controls()

    # ---- controls (the same for every fake) ---------------------------------------------------
    def fail_next(self, method: str, status: int, *, retry_after: float | None = None,
                  count: int = 1, skip: int = 0) -> None:
        """Answer the next ``count`` calls of ``method`` (after ``skip`` good ones) with
        ``status`` in the platform's own error format; nothing is carried out."""
        self._controls.failures.append(Failure(method, count, skip, status, retry_after))

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fail_next(self.send_method, 429, retry_after=retry_after)

    def lose_next_answer(self, method: str, *, count: int = 1, skip: int = 0) -> None:
        """Carry out the next ``count`` calls of ``method``, then cut the connection instead
        of answering: the client cannot know the call succeeded."""
        self._controls.losses.append(_Rule(method, count, skip))

    @property
    def rate_limit_log(self) -> list[tuple[float, float]]:
        """(when a 429 was answered, when the next call of that method came), per 429."""
        return self._controls.rate_limit_log

    def calls(self, method: str) -> int:
        return self._controls.calls.get(method, 0)

    async def post_signed(self, url: str, body: bytes, headers: dict[str, str]
                          ) -> tuple[int, str]:
        """POST a request the platform signed to the gateway's webhook URL, as the platform
        delivers it; returns the status and body of the answer."""
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body, headers=headers) as resp:
            return resp.status, await resp.text()

    async def drop_connection(self) -> None:
        """Cut the live connection (long poll, websocket) as a network fault would."""
        raise NotImplementedError

    # ---- for the subclass's handlers ----------------------------------------------------------
    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.StreamResponse:
        """The platform's error answer for ``status`` (429 carrying ``retry_after``)."""
        raise NotImplementedError

    async def before(self, method: str) -> web.StreamResponse | None:
        """Latency, then a scripted failure for this call if there is one."""
        c = self._controls
        c.calls[method] = c.calls.get(method, 0) + 1
        if self.latency:
            await asyncio.sleep(self.latency)
        now = time.monotonic()
        answered = c.pending_429.pop(method, None)
        if answered is not None:
            c.rate_limit_log.append((answered, now))
        failure: Failure | None = _take(c.failures, method)
        if failure is None:
            return None
        if failure.status == 429:
            c.pending_429[method] = now
        return self.error_response(method, failure.status, failure.retry_after)

    def after(self, method: str, request: web.Request) -> bool:
        """Call once the call was carried out; True when its answer must be lost (the
        connection is already cut: return any response, it never arrives)."""
        if _take(self._controls.losses, method) is None:
            return False
        if request.transport is not None:
            request.transport.abort()
        return True
