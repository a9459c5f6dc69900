"""The contract suite's view of the OpenAI-compatible API: the "platform" is an API client.

Each injected message is a chat completion request a client makes (bearer key issued
for it, its ``Idempotency-Key`` the message's id), handed to ``gateway.webhook`` in a
background task as the webhook server would; what the client got back is what was
"sent". A retried request gets the same completion (same id) again, which is the same
message, so ``sent`` lists each completion once. There is one HTTP response per
request, so no split replies, no sends to fail, no rate limits, no groups, no
connection to drop and no edits (streaming is tested in test_openai_api.py). The
webhook test POSTs over HTTP: a wrong key is 401, and a replayed request (same
Idempotency-Key) is a duplicate answered with the same completion.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import aiohttp

from connectors.openai_api import keys
from connectors.openai_api.manifest import MAX_TEXT
from pyclaw_app.channels import WebhookRequest
from tests.contract.harness import PlatformHarness, SentMessage
from tests.test_attachments import PNG

__all__ = ["HARNESS", "OpenAIApiHarness"]

CLIENT = "contract-client"


class OpenAIApiHarness(PlatformHarness):
    type_name = "openai_api"
    max_text = MAX_TEXT
    splits_replies = False
    supports_rate_limit = False
    supports_drop = False
    supports_failures = False
    supports_groups = False
    webhook = True

    def __init__(self) -> None:
        self.gateway: Any = None
        self._key: str | None = None
        self._requests: dict[str, tuple[str, dict[str, Any]]] = {}
        self._answers: dict[str, SentMessage] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def attach(self, gateway: Any) -> None:
        self.gateway = gateway

    def channel_config(self) -> dict[str, Any]:
        return {}

    def chat(self, i: int) -> str:
        return f"{CLIENT}/conversation-{i}"

    async def _key_for_client(self) -> str:
        if self._key is None:
            self._key = await keys.issue(self.gateway.store.channel_state.of(self.type_name),
                                         CLIENT)
        return self._key

    async def _request(self, body: dict[str, Any] | bytes, idempotency: str | None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {await self._key_for_client()}",
                   "Content-Type": "application/json"}
        if idempotency is not None:
            headers["Idempotency-Key"] = idempotency
        request = WebhookRequest("POST", raw, headers,
                                 path=f"/webhook/{self.type_name}/v1/chat/completions")

        async def call() -> None:
            response = await self.gateway.webhook(self.type_name, request)
            if response.status == 200 and isinstance(body, dict):
                self._got(body, response.body)

        task = asyncio.create_task(call())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.sleep(0)  # the request is under way when this returns

    def _got(self, body: dict[str, Any], answer: str | bytes) -> None:
        completion = json.loads(answer)
        self._answers.setdefault(completion["id"], SentMessage(
            chat=f"{CLIENT}/{body['user']}", text=completion["choices"][0]["message"]["content"],
            ts=time.monotonic()))

    def webhook_config(self) -> dict[str, Any]:
        return {}

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        if signature == "replayed":
            pid = next(reversed(self._requests))
            idempotency, body = self._requests[pid]
        else:
            idempotency, body = uuid.uuid4().hex, self._body(chat, text)
            pid = f"idem-{idempotency}"
            if signature == "good":
                self._requests[pid] = (idempotency, body)
        key = await self._key_for_client() if signature != "bad" else "pck-not-issued"
        async with aiohttp.ClientSession() as session, session.post(
                f"{url}/v1/chat/completions", json=body, headers={
                    "Authorization": f"Bearer {key}", "Idempotency-Key": idempotency}) as resp:
            answer = await resp.read()
            if resp.status == 200:
                self._got(body, answer)
            return resp.status, pid

    def _body(self, chat: str, content: Any) -> dict[str, Any]:
        return {"model": "pyclaw", "user": chat.removeprefix(f"{CLIENT}/"),
                "messages": [{"role": "system", "content": "ignored: the gateway has its own"},
                             {"role": "user", "content": content}]}

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        idempotency = uuid.uuid4().hex
        body = self._body(chat, text)
        self._requests[f"idem-{idempotency}"] = (idempotency, body)
        await self._request(body, idempotency)
        return f"idem-{idempotency}"

    async def redeliver(self, platform_id: str) -> None:
        idempotency, body = self._requests[platform_id]
        await self._request(body, idempotency)

    async def inject_malformed(self) -> None:
        await self._request(b"{not json", None)
        await self._request({"model": "pyclaw", "messages": "not a list"}, None)

    async def inject_media_only(self, chat: str) -> str:
        idempotency = uuid.uuid4().hex
        await self._request(self._body(chat, [{"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}]), idempotency)
        return f"idem-{idempotency}"

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return sorted((m for m in self._answers.values() if chat is None or m.chat == chat),
                      key=lambda m: m.ts)

    def rate_limit_next_send(self, retry_after: float) -> None:
        raise NotImplementedError("a reply is the HTTP response: there is no rate limit")

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return []

    async def drop_connection(self) -> None:
        raise NotImplementedError("clients connect to us: there is no connection to drop")


HARNESS = OpenAIApiHarness
