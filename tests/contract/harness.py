"""What each platform's fake must offer so one contract suite can run against every connector.

A harness owns the fake platform (started on 127.0.0.1) and speaks to it as the
*platform* would: it injects user messages the way the platform delivers them
(update queue, gateway dispatch, Socket Mode envelope...) and reads back what
the connector sent through the platform's real send API. It never calls the
connector directly. One harness module per channel type: ``harness_<type>.py``
exporting ``HARNESS`` (a subclass of :class:`PlatformHarness`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

__all__ = ["PlatformHarness", "SentMessage"]


@dataclass(frozen=True)
class SentMessage:
    """One message the connector delivered to the fake platform."""

    chat: str
    text: str
    thread: str | None = None
    reply_to: str | None = None  # the platform id of the message it quotes/answers, if any
    ts: float = 0.0  # time.monotonic() when the fake accepted it


class PlatformHarness(abc.ABC):
    type_name: str
    """Connector type in connectors.registry (``"telegram"``)."""
    max_text: int
    """The platform's per-message limit, in the unit the platform counts."""

    supports_rate_limit: bool = True
    """False where the platform has no rate-limit answer (the local channel)."""
    supports_drop: bool = True
    """False where there is no connection to drop (the local channel)."""

    def text_length(self, text: str) -> int:
        return len(text)

    def thread_target(self) -> tuple[str, str] | None:
        """(chat, thread) where an injected message is answered in that thread, or None if the
        platform has no threads. The harness makes such a message one the bot answers (e.g. a
        mention in a group)."""
        return None

    def attach(self, gateway: Any) -> None:  # noqa: B027 - optional hook
        """Called with the running gateway; only harnesses without a platform need it."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the fake(s) and apply any SDK module overrides (restored in ``stop``)."""

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    def channel_config(self) -> dict[str, Any]:
        """The channel's config section (no ``type``), secrets included, pointing at the fake."""

    @abc.abstractmethod
    def chat(self, i: int) -> str:
        """The chat id (as the connector puts it in ``Address.chat``) of test conversation ``i``."""

    @abc.abstractmethod
    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        """Deliver a user's text message; returns the id the connector will use as
        ``Inbound.platform_id``."""

    @abc.abstractmethod
    async def redeliver(self, platform_id: str) -> None:
        """Deliver an already-injected message again, exactly as the platform redelivers it."""

    @abc.abstractmethod
    async def inject_malformed(self) -> None:
        """Deliver a payload the platform could plausibly send but that is broken/unexpected."""

    @abc.abstractmethod
    async def inject_media_only(self, chat: str) -> str:
        """Deliver a message with an attachment and no text; returns its platform id."""

    @abc.abstractmethod
    def sent(self, chat: str | None = None) -> list[SentMessage]:
        """Messages the connector delivered, oldest first, optionally for one chat."""

    @abc.abstractmethod
    def rate_limit_next_send(self, retry_after: float) -> None:
        """Answer the next send call with the platform's 429 and this Retry-After."""

    @abc.abstractmethod
    def rate_limit_log(self) -> list[tuple[float, float]]:
        """(monotonic time the 429 was answered, time the next send call arrived) per 429."""

    @abc.abstractmethod
    async def drop_connection(self) -> None:
        """Cut the live connection (long poll, websocket) the way a network fault would."""
