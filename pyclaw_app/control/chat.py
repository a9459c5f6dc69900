"""Ask the assistant through the local chat channel and wait for the whole answer.

For the terminal (``pyclaw chat``) and tests: the message goes through the
journal, lanes, agent and delivery like any other; the answer is read off the
event bus, which is where the gateway says a reply is complete (all its parts)
or why there is none (the notice the sender got instead).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pyclaw_app.errors import ConnectorError
from pyclaw_app.model import EventKind

__all__ = ["ask"]


async def ask(gateway: Any, text: str, *, channel: str = "local", chat: str = "terminal",
              sender: str = "you", timeout: float | None = None) -> str:
    """Post ``text`` on the local channel; returns the reply, or the notice sent instead."""
    rt = gateway.channels.get(channel)
    connector = rt.connector if rt is not None else None
    if connector is None or not hasattr(connector, "post"):
        raise ConnectorError(f"the local chat channel {channel!r} is not running")
    subscription = gateway.bus.subscribe()
    try:
        _, result = await connector.post(text, chat=chat, sender=sender,
                                         platform_id=f"ask-{uuid.uuid4().hex}")
        return await asyncio.wait_for(_answer(subscription, result.journal_id), timeout)
    finally:
        subscription.close()


async def _answer(subscription: Any, journal_id: int) -> str:
    async for event in subscription:
        data = event.data
        if event.kind == EventKind.REPLY_SENT and data.get("reply_to_id") == journal_id:
            return str(data.get("text", ""))
        if event.kind in (EventKind.MESSAGE_FAILED, EventKind.MESSAGE_SKIPPED) \
                and data.get("id") == journal_id:
            return str(data.get("notice") or data.get("error") or data.get("reason") or "")
    raise ConnectorError("the gateway stopped before the reply came")
