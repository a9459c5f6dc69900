"""The local channel has no platform: its "platform side" is the connector's own post()."""

from __future__ import annotations

from typing import Any

from tests.contract.harness import PlatformHarness, SentMessage


class LocalHarness(PlatformHarness):
    type_name = "local"
    max_text = 4000
    supports_rate_limit = False
    supports_drop = False
    supports_failures = False
    supports_groups = False

    def __init__(self) -> None:
        self._connector: Any = None
        self._connectors: list[Any] = []
        self._last: dict[str, tuple[str, str]] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def attach(self, gateway: Any) -> None:
        """Called again after a restart: the new connector's replies join the old ones'."""
        self._connector = gateway.channels["local"].connector
        if self._connector not in self._connectors:
            self._connectors.append(self._connector)

    def channel_config(self) -> dict[str, Any]:
        return {"max_text": self.max_text}

    def chat(self, i: int) -> str:
        return f"chat-{i}"

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        pid, _ = await self._connector.post(text, chat=chat, sender=f"user{sender}")
        self._last[pid] = (chat, text)
        return pid

    async def redeliver(self, platform_id: str) -> None:
        chat, text = self._last[platform_id]
        await self._connector.post(text, chat=chat, platform_id=platform_id)

    async def inject_malformed(self) -> None:
        raise NotImplementedError("the local channel has no wire payloads")

    async def inject_media_only(self, chat: str) -> str:
        pid, _ = await self._connector.post("", chat=chat)
        return pid

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(r.chat, r.text, None, r.reply_to) for c in self._connectors
                for r in c.sent if chat is None or r.chat == chat]

    def rate_limit_next_send(self, retry_after: float) -> None:
        raise NotImplementedError

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return []

    async def drop_connection(self) -> None:
        raise NotImplementedError


HARNESS = LocalHarness
