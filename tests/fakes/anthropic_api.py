"""A fake Anthropic Messages API on 127.0.0.1, following the published API reference.

Serves ``POST /v1/messages`` (a JSON ``message`` or, with ``stream: true``, the
documented SSE events: ``message_start``, ``ping``, ``content_block_start`` /
``content_block_delta`` (``text_delta``, ``input_json_delta``) /
``content_block_stop``, ``message_delta`` with ``stop_reason`` and cumulative
``usage.output_tokens``, ``message_stop``), ``GET /v1/models`` (paginated with
``has_more``/``first_id``/``last_id``) and ``GET /v1/models/{id}``.

Requests are validated the way the API does it: ``model``, ``max_tokens`` and
a non-empty ``messages`` are required; roles are ``user``/``assistant``, the
first one ``user``; text blocks must be non-empty; every ``tool_use`` of an
assistant turn must be answered by a ``tool_result`` in the next user turn and
no ``tool_result`` may answer an unknown id; tool blocks need ``tools``; an ``image``
block (user turns only) needs a ``base64`` source of a JPEG/PNG/GIF/WebP, and the
decoded pictures are kept in :attr:`FakeAnthropic.images`.
Errors have Anthropic's shape ``{"type": "error", "error": {"type",
"message"}, "request_id"}`` with a ``request-id`` header; 429 and 529 carry
``retry-after``. The key is accepted as ``x-api-key`` or ``Authorization:
Bearer``; ``anthropic-version`` is not checked. Scripted like the OpenAI fake:
a ``responder`` (text or :class:`FakeReply` with tool calls) and ``faults``
(:class:`Fault`; ``cut_after`` streams that many text chunks, then an
``error`` event of the fault's status, or a cut connection without one).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.openai_api import FakeReply, FakeToolCall, Fault, Responder, before_answer
from tests.fakes.server import FakeServer, json_response

__all__ = ["FakeAnthropic", "FakeReply", "FakeToolCall", "Fault"]

_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}
_ERROR_MESSAGES = {
    429: "Number of request tokens has exceeded your per-minute rate limit",
    500: "Internal server error",
    529: "Overloaded",
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def echo(messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return f"Echo: {block_text(last.get('content', ''))}"


def block_text(content: Any) -> str:
    """The text of a message's content: a string or the text blocks of a list."""
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content
                    if isinstance(b, dict) and b.get("type") == "text")


class FakeAnthropic(FakeServer):
    def __init__(self, *, api_key: str | None = None,
                 models: tuple[str, ...] = ("claude-fake",), responder: Responder = echo,
                 chunk_size: int = 8, latency: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models
        self.responder = responder
        self.chunk_size = chunk_size
        self.latency = latency
        self.faults: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.images: list[tuple[str, bytes]] = []
        """(media type, bytes) of every base64 ``image`` block requests carried, in order."""
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        """What ``AsyncAnthropic(base_url=...)`` takes: the SDK adds ``/v1/messages``."""
        return self.url

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model_id}", self._model)

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        given = request.headers.get("x-api-key") or request.headers.get(
            "Authorization", "").removeprefix("Bearer ")
        if given != self.api_key:
            return _error(401, "invalid x-api-key")
        return None

    async def _models(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            limit = min(max(int(request.query.get("limit", "20")), 1), 1000)
        except ValueError:
            return _error(400, "limit: Input should be a valid integer")
        ids = list(self.models)
        after = request.query.get("after_id")
        if after in ids:
            ids = ids[ids.index(after) + 1:]
        page = ids[:limit]
        return json_response({
            "data": [_model_object(m) for m in page], "has_more": len(ids) > limit,
            "first_id": page[0] if page else None, "last_id": page[-1] if page else None})

    async def _model(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        model_id = request.match_info["model_id"]
        if model_id not in self.models:
            return _error(404, f"model: {model_id}")
        return json_response(_model_object(model_id))

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "There was an issue with the format of your JSON request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        problem = _validate(body)
        if problem is not None:
            return _error(400, problem)
        model = body["model"]
        if model not in self.models:
            return _error(404, f"model: {model}")
        self.requests.append(body)
        self.images += [(b["source"]["media_type"], base64.b64decode(b["source"]["data"]))
                        for m in body["messages"] if isinstance(m.get("content"), list)
                        for b in m["content"] if b.get("type") == "image"
                        and b["source"]["type"] == "base64"]
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fault, early = await before_answer(request, self.faults, self.latency,
                                               _fault_response)
            if early is not None:
                return early
            answer = self.responder(body["messages"])
            reply = answer if isinstance(answer, FakeReply) else FakeReply(answer)
            tool_choice = (body.get("tool_choice") or {}).get("type")
            if reply.tool_calls and (tool_choice == "none" or not body.get("tools")):
                reply = FakeReply(reply.text or "(answered without tools)")
            input_tokens = len(json.dumps(body["messages"]) + str(body.get("system", ""))) // 4
            if body.get("stream"):
                return await self._stream(request, model, reply, input_tokens, fault)
            content = _content_blocks(reply)
            return json_response({
                "id": _msg_id(), "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens,
                          "output_tokens": len(json.dumps(content)) // 4 + 1}})
        finally:
            self.in_flight -= 1

    async def _stream(self, request: web.Request, model: str, reply: FakeReply,
                      input_tokens: int, fault: Fault | None) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "request-id": _request_id()})
        await resp.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        await send("message_start", {"type": "message_start", "message": {
            "id": _msg_id(), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
        await send("ping", {"type": "ping"})
        index = 0
        output = 1
        text = reply.text
        if text:
            await send("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": {"type": "text", "text": ""}})
            pieces = [text[i:i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
            for n, piece in enumerate(pieces):
                if fault is not None and fault.cut_after is not None and n >= fault.cut_after:
                    return await self._cut(request, resp, send, fault)
                await send("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}})
                output += len(piece) // 4 + 1
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        if fault is not None and fault.cut_after is not None:
            return await self._cut(request, resp, send, fault)
        for call in reply.tool_calls:
            raw = call.raw_arguments if call.raw_arguments is not None \
                else json.dumps(call.arguments)
            await send("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": _tool_id(), "name": call.name,
                                  "input": {}}})
            for i in range(0, len(raw), self.chunk_size):
                await send("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta",
                              "partial_json": raw[i:i + self.chunk_size]}})
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
            output += len(raw) // 4 + 1
            index += 1
        await send("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                      "stop_sequence": None},
            "usage": {"output_tokens": output}})
        await send("message_stop", {"type": "message_stop"})
        await resp.write_eof()
        return resp

    @staticmethod
    async def _cut(request: web.Request, resp: web.StreamResponse, send: Any,
                   fault: Fault) -> web.StreamResponse:
        """End a stream badly: an ``error`` event when the fault has a status, else a cut."""
        if fault.status is not None:
            status = fault.status
            await send("error", {"type": "error", "error": {
                "type": _ERROR_TYPES.get(status, "api_error"),
                "message": _ERROR_MESSAGES.get(status, "Internal server error")}})
            await resp.write_eof()
            return resp
        assert request.transport is not None
        request.transport.close()
        return resp


_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _image_problem(block: dict[str, Any], role: str, where: str) -> str | None:
    """What the Messages API says of a bad ``image`` block (vision guide: a ``base64`` source
    with ``media_type`` and ``data``, or a ``url`` source; user turns only)."""
    if role != "user":
        return f"{where}: image blocks are only allowed in user messages"
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        return f"{where}.source: Input tag does not match any of the expected tags: " \
               "'base64', 'url'"
    if source["type"] == "url":
        return None if isinstance(source.get("url"), str) else f"{where}.source.url: " \
            "Field required"
    if source.get("media_type") not in _IMAGE_TYPES:
        return f"{where}.source.base64.media_type: Input should be 'image/jpeg', " \
               "'image/png', 'image/gif' or 'image/webp'"
    try:
        base64.b64decode(str(source.get("data", "")), validate=True)
    except binascii.Error:
        return f"{where}.source.base64.data: The image data is not valid base64"
    return None


def _validate(body: dict[str, Any]) -> str | None:
    """The first problem the real API would report for ``body``, in its words."""
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required" if max_tokens is None \
            else "max_tokens: Input should be greater than or equal to 1"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not _TOOL_NAME.match(str(tool.get("name", ""))):
                return f"tools.{i}.custom.name: String should match pattern " \
                       "'^[a-zA-Z0-9_-]{1,64}$'"
            if not isinstance(tool.get("input_schema"), dict):
                return f"tools.{i}.custom.input_schema: Field required"
    first = messages[0]
    if not isinstance(first, dict) or first.get("role") != "user":
        return "messages: first message must use the \"user\" role"
    pending: set[str] = set()
    uses_tools = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            return f"messages.{i}.content: Input should be a valid list"
        answered: set[str] = set()
        for j, block in enumerate(blocks):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and not block.get("text"):
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
            if kind == "image":
                problem = _image_problem(block, message["role"], f"messages.{i}.content.{j}")
                if problem is not None:
                    return problem
            if kind == "tool_use":
                uses_tools = True
                if message["role"] != "assistant":
                    return f"messages.{i}.content.{j}: tool_use blocks are only allowed in " \
                           "assistant messages"
            if kind == "tool_result":
                uses_tools = True
                if block.get("tool_use_id") not in pending:
                    return (f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                            "`tool_result` blocks: " f"{block.get('tool_use_id')}. Each "
                            "`tool_result` block must have a corresponding `tool_use` block "
                            "in the previous message.")
                answered.add(block["tool_use_id"])
        if pending and pending - answered:
            return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(pending - answered))}. Each "
                    "`tool_use` block must have a corresponding `tool_result` block in the "
                    "next message.")
        pending = {b["id"] for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"}
    if pending:
        return "messages: the final assistant message has unanswered `tool_use` blocks"
    if uses_tools and not tools:
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    return None


def _content_blocks(reply: FakeReply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    for call in reply.tool_calls:
        blocks.append({"type": "tool_use", "id": _tool_id(), "name": call.name,
                       "input": call.arguments})
    return blocks


def _model_object(model_id: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id.replace("-", " ").title(),
            "created_at": "2025-01-01T00:00:00Z"}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    request_id = _request_id()
    return json_response({"type": "error", "error": {
        "type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": request_id}, status=status,
        headers={"request-id": request_id, **(headers or {})})


def _fault_response(fault: Fault) -> web.Response:
    status = fault.status or 500
    headers = {}
    if fault.retry_after is not None:
        headers["retry-after"] = str(fault.retry_after)
    return _error(status, _ERROR_MESSAGES.get(status, "Internal server error"), headers)


def _msg_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def _tool_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"
