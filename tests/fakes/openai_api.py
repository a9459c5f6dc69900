"""A fake OpenAI API on 127.0.0.1, following the published Chat Completions reference.

Serves ``POST /v1/chat/completions`` (plain JSON and SSE streaming, with
``stream_options.include_usage``) and ``GET /v1/models``. Errors use the API's
``{"error": {"message", "type", "param", "code"}}`` shape. Tests script it
with a ``responder`` and a queue of faults: 429 with Retry-After, 500, a slow
answer, or a dropped connection.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, json_response

__all__ = ["FakeOpenAI", "Fault"]

Responder = Callable[[list[dict[str, Any]]], str]


@dataclass
class Fault:
    """One scripted misbehaviour for the next request."""

    status: int | None = None  # 429, 500, 503...
    retry_after: float | None = None
    delay: float = 0.0  # seconds before answering (a slow model / a timeout)
    drop: bool = False  # close the connection without an answer


def echo(messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    content = last.get("content", "")
    if isinstance(content, list):  # content parts
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return f"Echo: {content}"


class FakeOpenAI(FakeServer):
    def __init__(self, *, api_key: str | None = None, models: tuple[str, ...] = ("fake-model",),
                 responder: Responder = echo, chunk_size: int = 8, latency: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models
        self.responder = responder
        self.chunk_size = chunk_size
        self.latency = latency
        self.faults: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error",
                          "invalid_api_key")
        return None

    async def _models(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        return json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in self.models]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.",
                          "invalid_request_error", None)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' is a required property", "invalid_request_error",
                          None, param="messages")
        model = body.get("model")
        if model not in self.models:
            return _error(404, f"The model `{model}` does not exist or you do not have access "
                          "to it.", "invalid_request_error", "model_not_found", param="model")
        self.requests.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fault = self.faults.popleft() if self.faults else None
            if self.latency:
                await asyncio.sleep(self.latency)
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.drop:
                    assert request.transport is not None
                    request.transport.close()
                    return web.Response(status=500)
                if fault.status is not None:
                    return _fault_response(fault)
            text = self.responder(messages)
            prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
            completion_tokens = len(text) // 4 + 1
            if body.get("stream"):
                return await self._stream(request, body, model, text, prompt_tokens,
                                          completion_tokens)
            return json_response({
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                "created": int(time.time()), "model": model, "system_fingerprint": None,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                                     "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}})
        finally:
            self.in_flight -= 1

    async def _stream(self, request: web.Request, body: dict[str, Any], model: str, text: str,
                      prompt_tokens: int, completion_tokens: int) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model, "system_fingerprint": None,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                 "finish_reason": finish}]}

        events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        events += [chunk({"content": text[i:i + self.chunk_size]}, None)
                   for i in range(0, len(text), self.chunk_size)]
        events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": None, "choices": [],
                           "usage": {"prompt_tokens": prompt_tokens,
                                     "completion_tokens": completion_tokens,
                                     "total_tokens": prompt_tokens + completion_tokens}})
        payload = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
        await resp.write(payload + b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _error(status: int, message: str, type_: str, code: str | None, *,
           param: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": {"message": message, "type": type_, "param": param,
                                    "code": code}}, status=status, headers=headers)


def _fault_response(fault: Fault) -> web.Response:
    headers = {}
    if fault.retry_after is not None:
        headers["retry-after"] = str(fault.retry_after)
        headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
    if fault.status == 429:
        return _error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                      headers=headers)
    return _error(fault.status or 500, "The server had an error while processing your request.",
                  "server_error", None, headers=headers)
