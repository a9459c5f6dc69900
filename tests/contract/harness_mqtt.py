"""The contract suite's view of MQTT: a real mosquitto, a real client (aiomqtt) as the device.

The connector reaches the broker through :class:`MqttProxy` (drops, refused and
unanswered publishes); the device connects to the broker directly, publishes JSON
``{"id", "text", "sender"}`` to ``<prefix>/in/<conversation>`` and records what arrives on
``<prefix>/out/#``. Each harness has its own prefix, so runs never see each other's
messages. The thread case is a message naming ``reply_topic`` ``<prefix>/out/<chat>/<thread>``.

Flags off, and why: MQTT has no rate-limit answer with a delay (MQTT 5's PUBACK 0x97 Quota
exceeded carries no Retry-After), so ``rate_limit_next_send`` cannot be honoured; there are
no group chats (a topic is one conversation, its senders self-declared) and no edits.
``fail_next_send`` is an MQTT 5 PUBACK refusal (0x97 for a transient, 0x87 Not authorized,
which mosquitto itself sends when its ACL denies a publish); ``lose_next_send_answer``
forwards the publish and cuts the connection before its PUBACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import aiomqtt

from tests.contract.harness import PlatformHarness, SentMessage
from tests.servers.mosquitto import USERS, MqttProxy, shared_broker

__all__ = ["HARNESS", "MqttHarness"]

class MqttHarness(PlatformHarness):
    type_name = "mqtt"
    max_text = 4000
    supports_rate_limit = False
    supports_groups = False
    quotes_replies = True
    cursor_key = "client_id"
    queues_while_down = True

    def __init__(self) -> None:
        self.prefix = f"pyclaw/c{uuid.uuid4().hex[:8]}"
        self.proxy: MqttProxy | None = None
        self._device: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sent: list[SentMessage] = []
        self._published: dict[str, tuple[str, bytes]] = {}
        self._n = 0

    def text_length(self, text: str) -> int:
        return len(text.encode("utf-8"))

    async def start(self) -> None:
        broker = await shared_broker()
        self.proxy = MqttProxy(broker.port)
        await self.proxy.start()
        self._device = aiomqtt.Client("127.0.0.1", broker.port, username="device",
                                      password=USERS["device"],
                                      protocol=aiomqtt.ProtocolVersion.V5)
        await self._device.__aenter__()
        await self._device.subscribe(f"{self.prefix}/out/#", qos=1)
        self._reader = asyncio.create_task(self._read(self._device))

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._reader
        if self._device is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._device.__aexit__(None, None, None)
        if self.proxy is not None:
            await self.proxy.stop()

    async def _read(self, device: aiomqtt.Client) -> None:
        async for message in device.messages:
            topic = str(message.topic)
            body = json.loads(bytes(message.payload).decode("utf-8")) if isinstance(
                message.payload, bytes | bytearray) else {}
            chat = str(body.get("conversation", ""))
            head = f"{self.prefix}/out/{chat}"
            thread = topic[len(head) + 1:] if topic.startswith(head + "/") else None
            reply_to = body.get("reply_to")
            self._sent.append(SentMessage(
                chat=chat, text=str(body.get("text", "")), thread=thread,
                reply_to=f"{chat}/{reply_to}" if reply_to else None, ts=time.monotonic()))

    def channel_config(self) -> dict[str, Any]:
        assert self.proxy is not None
        return {"host": "127.0.0.1", "port": self.proxy.port, "username": "pyclaw",
                "password": USERS["pyclaw"], "topic_prefix": self.prefix,
                "max_text": self.max_text}

    def chat(self, i: int) -> str:
        return f"device{i}"

    def thread_target(self) -> tuple[str, str]:
        return self.chat(30), "speaker"

    async def _publish(self, chat: str, payload: bytes) -> None:
        assert self._device is not None
        await self._device.publish(f"{self.prefix}/in/{chat}", payload, qos=1)

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        self._n += 1
        message_id = f"m{self._n}"
        body: dict[str, Any] = {"id": message_id, "text": text, "sender": f"sender{sender}"}
        if thread is not None:
            body["reply_topic"] = f"{self.prefix}/out/{chat}/{thread}"
        payload = json.dumps(body).encode()  # ASCII escapes carry even a lone surrogate
        await self._publish(chat, payload)
        pid = f"{chat}/{message_id}"
        self._published[pid] = (chat, payload)
        return pid

    async def redeliver(self, platform_id: str) -> None:
        """The device publishes the same message again, as it does when its PUBACK was lost
        (the broker forwards a QoS 1 resend as a new message)."""
        chat, payload = self._published[platform_id]
        await self._publish(chat, payload)

    async def inject_malformed(self) -> None:
        """JSON whose text is a number: the parser skips it with a log line."""
        await self._publish(self.chat(0), b'{"id": "bad-1", "text": 42}')

    async def inject_media_only(self, chat: str) -> str:
        """A doorbell camera's JSON: a snapshot's metadata and URL, no text (a bare binary
        payload has an id made from its broker packet id: the platform tests cover it)."""
        self._n += 1
        message_id = f"m{self._n}"
        body = {"id": message_id, "sender": "doorbell", "attachments": [
            {"kind": "image", "name": "snapshot.jpg", "mime": "image/jpeg", "size": 48213,
             "url": f"http://camera.local/{chat}/snapshot.jpg"}]}
        await self._publish(chat, json.dumps(body).encode())
        return f"{chat}/{message_id}"

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [m for m in self._sent if chat is None or m.chat == chat]

    def rate_limit_next_send(self, retry_after: float) -> None:
        raise NotImplementedError("MQTT has no rate-limit answer with a delay")

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return []

    async def drop_connection(self) -> None:
        assert self.proxy is not None
        await self.proxy.drop()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        assert self.proxy is not None
        self.proxy.fail_next_publish(f"{self.prefix}/out/", 0x97 if status >= 500 else 0x87,
                                     skip=skip)

    def lose_next_send_answer(self) -> None:
        assert self.proxy is not None
        self.proxy.lose_next_publish(f"{self.prefix}/out/")


HARNESS = MqttHarness
