"""The OpenAI-compatible API connector: a chat completion request is an inbound message, and
its HTTP response is the reply.

The request is held open from before ``ctx.submit`` (the reply may be quicker than the
submit's return) until the reply's one part reaches ``send_part``, which hands it to
the waiting request instead of a platform; the journal keeps custody as on any
channel. With ``stream: true`` the answer is server-sent events: the model's text as it
is written (``reply_delta``), then whatever of the final reply the stream has not
shown, then ``[DONE]``. Text already streamed cannot be taken back, so when the model
starts over (a failover) the stream waits and the final reply follows what was shown.
A client that stops waiting (timeout, disconnect) leaves no one to hand the reply to:
``send_part`` then fails it, so the journal never calls it delivered.

Pictures, audio and files come inline in the request (``_parse``); their bytes are held
in memory while the request waits for its answer, which is when the gateway reads them
(``fetch_attachment``), and let go with the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from connectors.openai_api import keys
from connectors.openai_api._parse import (
    ChatRequest,
    Malformed,
    conversation_name,
    parse_chat_request,
)
from connectors.openai_api.manifest import SPEC, OpenAIApiConfig
from pyclaw_app.channels import (
    ConnectorBase,
    ProbeResult,
    Recent,
    WebhookRequest,
    WebhookResponse,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import FatalConnectorError, PyclawError
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["OpenAIApiConnector"]

KEEPALIVE = 15.0
"""Seconds between SSE comments while the model thinks, so proxies keep the stream open."""
KEPT = 1000
CONVERSATION_HEADER = "X-Pyclaw-Conversation"


@dataclass(slots=True)
class _Held:
    """A request waiting for its reply: what the gateway has said about it, in order."""

    events: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    files: tuple[str, ...] = ()
    """Ids of the inline files the request carried (``OpenAIApiConnector._inline``)."""


class OpenAIApiConnector(ConnectorBase):
    spec = SPEC
    config: OpenAIApiConfig
    rejected_noun = ("an", "API request")

    def __init__(self, name: str, config: OpenAIApiConfig) -> None:
        super().__init__(name, config)
        self._held: dict[tuple[str, str], _Held] = {}
        self._answers: Recent[str, str] = Recent(KEPT)
        """request id -> its reply, so a retried request (same Idempotency-Key) gets it."""
        self._inline: dict[str, bytes] = {}
        """The bytes of the inline files of the requests now waiting, by platform id."""

    async def open(self) -> None:
        count = len(await keys.clients(self.ctx.state))
        self.went_online(f"ready: {count} client key(s); serving /webhook/{self.name}/v1")

    async def close(self) -> None:
        for held in self._held.values():
            held.events.put_nowait(("closed", ""))
        self._held.clear()
        self._inline.clear()

    async def probe(self) -> ProbeResult:
        if not self.running:
            return ProbeResult(True, f"serves /webhook/{self.name}/v1 once started")
        count = len(await keys.clients(self.ctx.state))
        if not count:
            return ProbeResult(False, f"no client keys yet: issue one with `pyclaw api-key "
                               f"issue {self.name} <client name>`")
        return ProbeResult(True, f"serving /webhook/{self.name}/v1 to {count} client(s)")

    # ---- the reply ------------------------------------------------------------------------

    def reply_delta(self, address: Address, reply_to: str, delta: str) -> None:
        held = self._held.get((address.chat, reply_to))
        if held is not None:
            held.events.put_nowait(("delta", delta))

    def reply_reset(self, address: Address, reply_to: str) -> None:
        held = self._held.get((address.chat, reply_to))
        if held is not None:
            held.events.put_nowait(("reset", ""))

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        held = self._held.pop((address.chat, reply_to), None) if reply_to else None
        if held is None:
            raise FatalConnectorError("the API client is no longer waiting for this reply "
                                      "(it timed out or disconnected); it is kept in the log")
        held.events.put_nowait(("final", text))
        self._answers.remember(reply_to or "", text)
        return f"{reply_to}:reply"

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        data = self._inline.get(attachment.platform_id or "")
        if data is None:
            raise AttachmentUnavailable("the request that carried it has ended (files sent "
                                        "inline are held only while their request waits "
                                        "for the answer); send it again")
        return AttachmentSource(data=data, size=len(data))

    # ---- requests -------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        if not self.running:
            return _error(503, "the channel is not running", "server_error")
        ctx = self.ctx
        route = request.path.rstrip("/")
        if not route.endswith(("/chat/completions", "/models")):
            return _error(404, f"unknown endpoint {request.method} {request.path}",
                          "invalid_request_error", code="unknown_url")
        client = await self._client(request)
        if client is None:
            self.log_rejection(request, "missing or unknown API key")
            return _error(401, "Incorrect API key provided. Keys are issued with `pyclaw "
                          "api-key issue`.", "invalid_request_error", code="invalid_api_key")
        ctx.heartbeat()
        if route.endswith("/models"):
            if request.method != "GET":
                return _error(405, "use GET for /models", "invalid_request_error")
            return _json(200, {"object": "list", "data": [self._model_entry()]})
        if request.method != "POST":
            return _error(405, "use POST for /chat/completions", "invalid_request_error")
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            ctx.log("warning", f"refused a chat completion request from {client}: the body "
                    "is not valid JSON")
            return _error(400, "the body is not valid JSON", "invalid_request_error")
        parsed = parse_chat_request(body, conversation=request.header(CONVERSATION_HEADER))
        if isinstance(parsed, Malformed):
            ctx.log("warning", f"refused a chat completion request from {client}: "
                    f"{parsed.reason}")
            return _error(400, parsed.reason, "invalid_request_error", param=parsed.param)
        return await self._complete(client, parsed, request.header("Idempotency-Key"))

    async def _client(self, request: WebhookRequest) -> str | None:
        scheme, _, key = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return await keys.client_for(self.ctx.state, key.strip())

    async def _complete(self, client: str, req: ChatRequest, idempotency: str | None
                        ) -> WebhookResponse:
        chat = f"{client}/{req.user}" if req.user else client
        pid = f"idem-{conversation_name(idempotency)}" if conversation_name(idempotency) \
            else f"req-{uuid.uuid4().hex}"
        key = (chat, pid)
        if key in self._held:
            return _error(409, "a request with this Idempotency-Key is still being answered",
                          "invalid_request_error", code="conflict")
        held = _Held(files=tuple(req.files))
        self._held[key] = held  # before submit: the reply may be quicker than our return
        self._inline.update(req.files)
        try:
            result = await self.ctx.submit(Inbound(
                Address(self.name, chat), pid, req.text, sender_id=client, sender_name=client,
                attachments=req.attachments))
        except PyclawError as exc:
            self._forget(key, held)
            self.ctx.log("error", f"could not journal a request from {client}: {exc}")
            return _error(500, "the gateway could not store the message; try again",
                          "server_error")
        if result.quarantined:
            self._forget(key, held)
            return _error(422, "the message could not be stored, so it will not be answered; "
                          "it is kept as a dead letter in the gateway", "invalid_request_error",
                          code="unstorable_message")
        if result.duplicate or result.ignored:
            self._forget(key, held)
            answered = self._answers.get(pid)
            if answered is not None and not req.stream:
                return _json(200, self._completion(pid, req.model, answered))
            return _error(409, "this Idempotency-Key was already answered",
                          "invalid_request_error", code="duplicate_request")
        if req.stream:
            return WebhookResponse(200, content_type="text/event-stream",
                                   stream=self._stream(key, held, pid, req.model))
        try:
            text = await self._final(held)
        finally:
            self._forget(key, held)
        if text is None:
            return _error(504, f"no reply within {self.config.reply_timeout:g}s; it will be in "
                          "the channel log", "server_error", code="timeout")
        return _json(200, self._completion(pid, req.model, text))

    async def _final(self, held: _Held) -> str | None:
        """The reply's text; None when it did not come in time or the channel stopped."""
        deadline = asyncio.get_running_loop().time() + self.config.reply_timeout
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                kind, text = await asyncio.wait_for(held.events.get(), left)
            except TimeoutError:
                return None
            if kind == "final":
                return text
            if kind == "closed":
                return None
        return None

    async def _stream(self, key: tuple[str, str], held: _Held, pid: str, model: str
                      ) -> AsyncGenerator[bytes, None]:
        chunk = _Chunks(_completion_id(pid), model, int(time.time()))
        shown = ""
        diverged = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.reply_timeout
        try:
            yield chunk.delta({"role": "assistant", "content": ""})
            while (left := deadline - loop.time()) > 0:
                try:
                    kind, text = await asyncio.wait_for(held.events.get(),
                                                        min(KEEPALIVE, left))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if kind == "delta" and not diverged:
                    shown += text
                    yield chunk.delta({"content": text})
                elif kind == "reset":
                    diverged = diverged or bool(shown)
                elif kind == "final":
                    rest = text[len(shown):] if text.startswith(shown) else \
                        f"\n\n{text}" if shown else text
                    if rest:
                        yield chunk.delta({"content": rest})
                    yield chunk.finish()
                    yield b"data: [DONE]\n\n"
                    return
                elif kind == "closed":
                    break
            reason = "the channel stopped" if loop.time() < deadline else \
                f"no reply within {self.config.reply_timeout:g}s"
            yield _sse({"error": {"message": f"{reason}; the reply will be in the channel "
                                  "log", "type": "server_error", "code": "timeout"}})
        finally:
            self._forget(key, held)

    def _forget(self, key: tuple[str, str], held: _Held) -> None:
        """The request is answered or given up: its slot and its inline files go."""
        if self._held.get(key) is held:
            del self._held[key]
        for file in held.files:
            self._inline.pop(file, None)

    def _model_entry(self) -> dict[str, Any]:
        return {"id": self.config.model_name, "object": "model", "created": 0,
                "owned_by": "pyclaw"}

    def _completion(self, pid: str, model: str, text: str) -> dict[str, Any]:
        # No "usage": the tokens are counted per provider call, in Usage, not per request.
        return {"id": _completion_id(pid), "object": "chat.completion",
                "created": int(time.time()), "model": model, "system_fingerprint": None,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": text,
                                         "refusal": None}}]}


@dataclass(frozen=True, slots=True)
class _Chunks:
    """The ``chat.completion.chunk`` events of one streamed answer."""

    id: str
    model: str
    created: int

    def _event(self, delta: dict[str, Any], finish: str | None) -> bytes:
        return _sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                     "model": self.model, "system_fingerprint": None,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish}]})

    def delta(self, delta: dict[str, Any]) -> bytes:
        return self._event(delta, None)

    def finish(self) -> bytes:
        return self._event({}, "stop")


def _completion_id(pid: str) -> str:
    return "chatcmpl-" + hashlib.sha256(pid.encode()).hexdigest()[:24]


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _json(status: int, data: dict[str, Any]) -> WebhookResponse:
    return WebhookResponse(status, json.dumps(data, ensure_ascii=False),
                           content_type="application/json")


def _error(status: int, message: str, kind: str, *, code: str | None = None,
           param: str | None = None) -> WebhookResponse:
    """OpenAI's error body, so client libraries raise their usual typed errors."""
    return _json(status, {"error": {"message": message, "type": kind, "param": param,
                                    "code": code}})


CONNECTOR = OpenAIApiConnector
