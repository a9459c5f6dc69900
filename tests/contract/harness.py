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
    supports_failures: bool = True
    """False where sends cannot fail (the local channel has no platform to refuse them)."""
    supports_groups: bool = True
    """False where there are no group chats (the local channel)."""
    splits_replies: bool = True
    """A long reply goes out as several messages; False where each request is answered by
    one HTTP response, which has no message limit (the OpenAI-compatible API)."""
    supports_edit: bool = False
    """The platform can edit a sent message (streamed replies); see ``visible``/``edits``."""
    quotes_replies: bool = False
    """The first part of a reply quotes (or threads under) the message it answers."""
    webhook: bool = False
    """The channel has a webhook mode (``webhook_config``, ``post_webhook``)."""
    replay_rejected: bool = False
    """A replayed webhook request is refused by signature (a signed timestamp), not only
    recognised as a duplicate by the journal."""
    cursor_key: str | None = None
    """The ``ctx.state`` key where the channel keeps its resume cursor, if it keeps one."""
    queues_while_down: bool = False
    """Messages sent while the channel is stopped are delivered when it starts again."""

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

    # ---- optional: the harness says which it supports through the flags above ---------------
    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        """Answer the send call after the next ``skip`` ones with the platform's ``status``
        (500: a transient failure; 400: a refusal retrying cannot fix)."""
        raise NotImplementedError

    def lose_next_send_answer(self) -> None:
        """Carry out the next send, then cut the connection before answering it."""
        raise NotImplementedError

    def visible(self, chat: str) -> list[str]:
        """The texts of the messages in ``chat`` as a reader sees them now (after edits)."""
        raise NotImplementedError

    def edits(self, chat: str) -> int:
        """How many edits the connector made to messages in ``chat``."""
        raise NotImplementedError

    def group_chat(self) -> str:
        """A group chat the bot is in (``Address.chat``)."""
        raise NotImplementedError

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        """A group message that @mentions the bot or not; returns its platform id."""
        raise NotImplementedError

    def webhook_config(self) -> dict[str, Any]:
        """``channel_config()`` for webhook mode, receiving at our webhook server."""
        raise NotImplementedError

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        """POST one message event to ``url`` as the platform does; ``signature`` is "good",
        "bad" (wrong secret) or "replayed" (the request of the last "good" post, sent again
        later). Returns the HTTP status and the message's platform id."""
        raise NotImplementedError
