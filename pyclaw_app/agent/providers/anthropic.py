"""Anthropic's Messages API through the official ``anthropic`` SDK, streamed.

The stream is read event by event (``message_start`` gives input tokens,
``content_block_*`` carry text and ``tool_use`` blocks whose input arrives as
``input_json_delta`` pieces, ``message_delta`` the stop reason and output
tokens). SDK retries are off, as for OpenAI: our failover owns them. An
``error`` event in the middle of a stream surfaces as a status error on the
stream's own 200 response, so its status is read from the error type.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2

from pyclaw_app.agent.providers._pool import POOL_LIMITS
from pyclaw_app.agent.providers._tool_args import parse_tool_call
from pyclaw_app.agent.providers.base import (
    ChatMessage,
    Completion,
    DeltaCallback,
    ToolSpec,
    sized,
    with_notes,
)
from pyclaw_app.errors import ProviderError
from pyclaw_app.retry_after import retry_after

__all__ = ["AnthropicProvider", "to_anthropic_messages"]

_log = logging.getLogger(__name__)

IMAGE_LIMIT = 5 * 1024 * 1024
"""The Messages API's largest image (5 MB); a bigger one is described instead of failing
the call."""

# Anthropic's documented error types and the HTTP status each one comes with.
_ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}


@dataclass
class _Block:
    kind: str
    id: str = ""
    name: str = ""
    json: list[str] = field(default_factory=list)


class AnthropicProvider:
    def __init__(self, *, name: str, model: str, base_url: str | None, api_key: str | None,
                 timeout: float = 60.0, max_output_tokens: int = 1024,
                 vision: bool = True) -> None:
        self.name = name
        self.vision = vision
        """Pictures go as ``image`` blocks (base64 source); without vision, as their notes."""
        self.model = model
        self.base_url = base_url
        self.max_output_tokens = max_output_tokens
        self._told_temperature = False
        # api_key is always passed: without one, the 2.x SDK goes looking for credential
        # profiles on disk, which a gateway must not do behind the user's back.
        # aiohttp under the SDK (its documented `anthropic[aiohttp]` option), as for
        # OpenAI: much less CPU per request than httpx2/httpcore2 (bench/RESULTS.md).
        self._client = anthropic.AsyncAnthropic(
            base_url=base_url, api_key=api_key or "not-configured", timeout=timeout,
            max_retries=0,
            http_client=anthropic.DefaultAioHttpClient(timeout=timeout, limits=POOL_LIMITS))

    async def complete(self, messages: Sequence[ChatMessage],
                       on_delta: DeltaCallback | None = None, *, model: str | None = None,
                       tools: Sequence[ToolSpec] = (), allow_tools: bool = True,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        model = model or self.model
        system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
        extra: dict[str, Any] = {}
        if system:
            extra["system"] = system
        if tools:
            extra["tools"] = [{"name": t.name, "description": t.description,
                               "input_schema": t.parameters} for t in tools]
            if not allow_tools:
                extra["tool_choice"] = {"type": "none"}
        if temperature is not None and not self._told_temperature:
            # The API version the SDK speaks (2026-10-21) refuses every sampling parameter
            # with a 400, even temperature 1.0, and SDK 2.x has none: sending it would fail
            # every turn, so it is left out and said once.
            self._told_temperature = True
            _log.warning("%s: temperature is not sent: Anthropic's Messages API takes none "
                         "since version 2026-10-21", self.name)
        parts: list[str] = []
        blocks: dict[int, _Block] = {}
        tokens_in = tokens_out = 0
        stop_reason = "end_turn"
        answered_by = model
        try:
            stream = await self._client.messages.create(
                model=model, max_tokens=max_tokens or self.max_output_tokens,
                messages=to_anthropic_messages(  # type: ignore[arg-type]
                    messages, vision=self.vision),
                stream=True, **extra)
            async for event in stream:
                if event.type == "message_start":
                    answered_by = event.message.model or answered_by
                    usage = event.message.usage
                    tokens_in = (usage.input_tokens + (usage.cache_creation_input_tokens or 0)
                                 + (usage.cache_read_input_tokens or 0))
                    tokens_out = usage.output_tokens
                elif event.type == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        blocks[event.index] = _Block("tool_use", block.id, block.name)
                    else:
                        blocks[event.index] = _Block(block.type)
                        text = getattr(block, "text", "")
                        if block.type == "text" and text:
                            parts.append(text)
                            if on_delta is not None:
                                on_delta(text)
                elif event.type == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        parts.append(delta.text)
                        if on_delta is not None:
                            on_delta(delta.text)
                    elif delta.type == "input_json_delta" and event.index in blocks:
                        blocks[event.index].json.append(delta.partial_json)
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    tokens_out = event.usage.output_tokens
                    if event.usage.input_tokens is not None:
                        tokens_in = max(tokens_in, event.usage.input_tokens)
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise ProviderError(f"{self.name} timed out", provider=self.name) from exc
        except anthropic.APIConnectionError as exc:
            where = self.base_url or "api.anthropic.com"
            raise ProviderError(f"{self.name} is unreachable at {where}: {exc.__cause__ or exc}",
                                provider=self.name) from exc
        except anthropic.AnthropicError as exc:
            raise ProviderError(f"{self.name} failed: {exc}", provider=self.name) from exc
        except httpx2.TransportError as exc:
            # A stream cut mid-answer surfaces from iteration as the transport's own error,
            # not as an AnthropicError; it is a connection failure like any other.
            raise ProviderError(f"{self.name}: the answer was cut off: {exc or type(exc).__name__}",
                                provider=self.name) from exc
        tool_calls = tuple(parse_tool_call(b.id, b.name, "".join(b.json))
                           for _, b in sorted(blocks.items()) if b.kind == "tool_use")
        return Completion(text="".join(parts), model=answered_by, input_tokens=tokens_in,
                          output_tokens=tokens_out, tool_calls=tool_calls,
                          stop_reason=stop_reason)

    def _status_error(self, exc: anthropic.APIStatusError) -> ProviderError:
        kind, message = _error_body(exc.body)
        status = exc.status_code
        if status < 400:  # an `event: error` inside a 200 stream
            status = _ERROR_STATUS.get(kind, 500)
        return ProviderError(
            f"{self.name} answered HTTP {status} {kind}: {message or exc.message}",
            provider=self.name, status=status,
            retryable=status in (408, 409, 429) or status >= 500,
            retry_after=retry_after(exc.response.headers))

    async def list_models(self) -> list[str]:
        try:
            return sorted([m.id async for m in self._client.models.list(limit=100)])
        except anthropic.APIStatusError as exc:
            raise ProviderError(f"{self.name} cannot list models: HTTP {exc.status_code}",
                                provider=self.name, status=exc.status_code,
                                retryable=False) from exc
        except anthropic.AnthropicError as exc:
            raise ProviderError(f"{self.name} cannot list models: {exc}",
                                provider=self.name) from exc

    async def close(self) -> None:
        await self._client.close()


def to_anthropic_messages(messages: Sequence[ChatMessage], *, vision: bool = True
                          ) -> list[dict[str, Any]]:
    """Messages API turns: tool results ride in user turns, consecutive roles are merged;
    pictures are ``image`` blocks before the text (the documented order), or their notes.

    System messages are left out (they go to the ``system`` parameter); empty text
    blocks are dropped because the API rejects them.
    """
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        blocks: list[dict[str, Any]] = []
        role = "assistant" if m.role == "assistant" else "user"
        if m.role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id,
                                      "content": m.content}
            if m.is_error:
                result["is_error"] = True
            blocks.append(result)
        elif m.images and vision:
            text, shown = sized(m, IMAGE_LIMIT)
            blocks += [{"type": "image", "source": {
                "type": "base64", "media_type": i.mime,
                "data": base64.b64encode(i.data).decode()}} for i in shown]
            if text:
                blocks.append({"type": "text", "text": text})
        elif m.images or m.content:
            blocks.append({"type": "text", "text": with_notes(m)})
        blocks.extend({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                      for c in m.tool_calls)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _error_body(body: object) -> tuple[str, str]:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("type", "")), str(err.get("message", ""))
    return "", ""
