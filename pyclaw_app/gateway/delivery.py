"""Delivery: a reply leaves as parts, each journaled before it is sent, retried in one place.

The gateway splits a reply to the channel's ``spec.limits`` and hands the
connector one part at a time (``send_part``). Before a part goes, its custody
row is ``pending``; when the platform took it, ``sent`` with its id. A
retryable failure retries *that part* (the parts before it went out and are
not repeated); a lost answer (``DeliveryUncertain``) marks it ``uncertain`` and
ends the reply, because sending again could show the user the same text twice.
Each attempt uses the channel's *current* connector, so a reply survives the
supervisor restarting the channel underneath it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from pyclaw_app.backoff import Backoff
from pyclaw_app.channels.contract import Connector, Limits
from pyclaw_app.channels.text import split_text
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)
from pyclaw_app.model import Address
from pyclaw_app.store.journal import Journal

__all__ = ["Delivery", "PartFailed", "reply_parts"]

T = TypeVar("T")
SEND_ATTEMPTS = 4


class ChannelLog(Protocol):
    def __call__(self, channel: str, level: str, message: str, **data: object) -> None: ...


def reply_parts(text: str, limits: Limits) -> list[str]:
    """The parts a reply goes out as; parts of nothing but whitespace are left out (most
    platforms refuse an empty message)."""
    parts = [p for p in split_text(text, limits.max_text, limits.text_length) if p.strip()]
    return parts or [text]


class PartFailed(ConnectorError):
    """Part ``index`` of a reply did not (or may not have) gone out; ``sent`` went before it."""

    def __init__(self, index: int, sent: list[str], cause: ConnectorError) -> None:
        super().__init__(str(cause))
        self.index = index
        self.sent = sent
        self.cause = cause

    @property
    def uncertain(self) -> bool:
        return isinstance(self.cause, DeliveryUncertain)


class Delivery:
    def __init__(self, journal: Journal, current: Callable[[str], Connector | None],
                 log: ChannelLog, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
                 ) -> None:
        self._journal = journal
        self._current = current
        self._log = log
        self._sleep = sleep

    async def send_parts(self, out_id: int, address: Address, parts: list[str],
                         reply_to: str | None, *, first_idx: int = 0) -> list[str]:
        """Send ``parts`` in order as the reply's parts ``first_idx``, ``first_idx + 1``...;
        the first must already be ``pending`` in the journal. Returns their platform ids;
        the last part's ``sent`` is left for the caller to write with the reply's own
        (one transaction). Raises PartFailed; ``reply_to`` quotes with the first part."""
        ids: list[str] = []
        for index, text in enumerate(parts):
            quote = reply_to if index == 0 else None
            try:
                pid = await self.retrying(address.channel, "send",
                                          lambda c, t=text, q=quote: c.send_part(address, t, q))
            except ConnectorError as exc:
                raise PartFailed(first_idx + index, ids, exc) from exc
            ids.append(pid)
            if index + 1 < len(parts):
                await self._journal.part_sent(
                    out_id, (first_idx + index, pid),
                    next_part=(first_idx + index + 1, parts[index + 1]))
        return ids

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        await self.retrying(address.channel, "edit",
                            lambda c: c.edit(address, platform_id, text))

    async def retrying(self, channel: str, what: str,
                       action: Callable[[Connector], Awaitable[T]]) -> T:
        """The one retry layer: transient failures are retried with backoff (Retry-After
        honoured); fatal and uncertain ones, and the last transient one, are raised."""
        backoff = Backoff(base=0.5, cap=30)
        for attempt in range(1, SEND_ATTEMPTS + 1):
            current = self._current(channel)
            try:
                if current is None:
                    raise RetryableError(f"channel {channel} is restarting")
                return await action(current)
            except (FatalConnectorError, DeliveryUncertain):
                raise
            except RetryableError as exc:
                if attempt == SEND_ATTEMPTS:
                    raise
                delay = backoff.next_delay(exc.retry_after or 0.0)
                self._log(channel, "warning", f"{what} failed ({exc}); retrying in "
                          f"{delay:.1f}s")
                await self._sleep(delay)
            except ConnectorError:
                raise
            except NotImplementedError:
                raise
            except Exception as exc:
                raise ConnectorError(f"{type(exc).__name__}: {exc}") from exc
        raise ConnectorError(f"{what} failed")  # unreachable: the loop returns or raises
