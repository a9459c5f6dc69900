"""Delivery: a reply leaves as parts, each journaled before it is sent, retried in one place.

The gateway splits a reply to the channel's ``spec.limits`` and hands the
connector one part at a time (``send_part``). Before a part goes, its custody
row is ``pending``; when the platform took it, ``sent`` with its id. A
retryable failure retries *that part* (the parts before it went out and are
not repeated); a lost answer (``DeliveryUncertain``) marks it ``uncertain`` and
ends the reply, because sending again could show the user the same text twice.
Each attempt uses the channel's *current* connector, so a reply survives the
supervisor restarting the channel underneath it.

A file the assistant sends (``send_file``) is a part of the same reply, under the same
custody: stored and journaled ``pending`` with its reference before the upload, ``sent``
after, ``failed`` or ``uncertain`` (never uploaded again) otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from pyclaw_app.attachments.outbound import OutboundFiles, file_label
from pyclaw_app.backoff import Backoff
from pyclaw_app.channels.contract import Connector, Limits, OutboundFile
from pyclaw_app.channels.text import split_text
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)
from pyclaw_app.model import Address
from pyclaw_app.secrets import redactor
from pyclaw_app.store.journal import Journal
from pyclaw_app.streaming import EditBudget

__all__ = ["Custody", "Delivery", "PartFailed", "reply_parts"]

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


@dataclass
class Custody:
    """A reply's journal row once one exists (a streamed draft or a file sent before the
    answer creates it early), the index its next part gets, and which part is the draft."""

    out_id: int | None = None
    next_idx: int = 0
    draft_idx: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while a part is journaled: a draft opening and a file going out at the same
    time must not both create the reply's row, nor take the same index."""


class Delivery:
    def __init__(self, journal: Journal, current: Callable[[str], Connector | None],
                 log: ChannelLog, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
                 ) -> None:
        self._journal = journal
        self._current = current
        self._log = log
        self._sleep = sleep
        self._budgets: dict[str, EditBudget] = {}

    def edit_budget(self, channel: str, limits: Limits) -> EditBudget | None:
        """The channel's one budget for live-draft edits, if its platform needs one."""
        if limits.edits_per_second is None:
            return None
        budget = self._budgets.get(channel)
        if budget is None or budget.rate != limits.edits_per_second:
            budget = self._budgets[channel] = EditBudget(limits.edits_per_second)
        return budget

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

    async def send_file(self, outbound: OutboundFiles, custody: Custody, inbound_id: int,
                        address: Address, file: OutboundFile, reply_to: str | None) -> str:
        """Send ``file`` as the next part of the reply to ``inbound_id`` (its row is created
        if ``custody`` has none yet); returns its platform id. The file is stored and its
        part ``pending`` before the upload; a failure marks the part ``failed`` (or
        ``uncertain``: never uploaded again) and is raised."""
        staged, reference, written = outbound.stage(address.channel, inbound_id, file)
        label = file_label(file)
        async with custody.lock:
            idx = custody.next_idx
            if custody.out_id is None:
                custody.out_id = await self._journal.add_outbound_file(inbound_id, address,
                                                                       label, reference)
            else:
                await self._journal.begin_file_part(custody.out_id, idx, label, reference)
            custody.next_idx = idx + 1
            out_id = custody.out_id
        if written is not None:
            await outbound.record(out_id, idx, address.channel, staged, written,
                                  len(file.data or b""))
        try:
            pid = await self.retrying(address.channel, "send file",
                                      lambda c: c.send_file(address, staged, reply_to))
        except ConnectorError as exc:
            status = "uncertain" if isinstance(exc, DeliveryUncertain) else "failed"
            await self._journal.part_failed(out_id, idx, status, redactor(str(exc)))
            raise
        except asyncio.CancelledError:  # the tool's time ran out (or the gateway stops)
            await asyncio.shield(self._journal.part_failed(
                out_id, idx, "uncertain", "stopped during the upload; it may have arrived, "
                "so it is not sent again"))
            raise
        await self._journal.part_sent(out_id, (idx, pid))
        return pid

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
