"""Any OpenAI-compatible chat completions endpoint through the official ``openai`` SDK.

OpenAI itself, Ollama, vLLM, LM Studio, OpenRouter and friends differ only in
``base_url`` and model names. SDK exceptions are mapped here, once, to
:class:`ProviderError` with a retryable flag the failover reads. The SDK's own
retries are off (``max_retries=0``): retries, backoff and failover belong to
:mod:`pyclaw_app.agent.failover`, which sees every attempt.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
from openai.types.chat import ChatCompletion

from pyclaw_app.agent.providers._pool import POOL_LIMITS
from pyclaw_app.agent.providers._tool_args import parse_tool_call
from pyclaw_app.agent.providers.base import (
    ChatMessage,
    Completion,
    DeltaCallback,
    ToolCall,
    ToolSpec,
    sized,
    with_notes,
)
from pyclaw_app.agent.tokens import estimate_tokens
from pyclaw_app.errors import ProviderError
from pyclaw_app.retry_after import retry_after

__all__ = ["OpenAICompatProvider", "to_openai_messages"]

_log = logging.getLogger(__name__)

IMAGE_LIMIT = 20 * 1024 * 1024
"""OpenAI's largest image input; a bigger one is described instead of failing the call."""


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAICompatProvider:
    def __init__(self, *, name: str, model: str, base_url: str | None, api_key: str | None,
                 timeout: float = 60.0, vision: bool = False) -> None:
        self.name = name
        self.vision = vision
        """Pictures go as ``image_url`` parts; without vision, as their notes."""
        self.model = model
        self.base_url = base_url
        # aiohttp under the SDK (its documented `openai[aiohttp]` option): the default
        # httpx2/httpcore2 stack cost ~1.5 ms of CPU per request under load
        # (bench/RESULTS.md, section 4).
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=timeout, limits=POOL_LIMITS))

    async def complete(self, messages: Sequence[ChatMessage],
                       on_delta: DeltaCallback | None = None, *, model: str | None = None,
                       tools: Sequence[ToolSpec] = (), allow_tools: bool = True,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        model = model or self.model
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in tools]
            if not allow_tools:
                extra["tool_choice"] = "none"
        if max_tokens is not None:
            extra["max_tokens"] = max_tokens
        if temperature is not None:
            extra["temperature"] = temperature
        parts: list[str] = []
        calls: dict[int, _PendingCall] = {}
        usage: Any = None
        finish = "stop"
        answered_by = model
        try:
            # The generic post() sends the same documented body as chat.completions.create
            # but skips the SDK's per-call walk over every message and tool schema, which
            # was 40 % of the gateway's CPU under load (bench/RESULTS.md). Chunks come as
            # the decoded JSON (AsyncStream[object]): building a pydantic ChatCompletionChunk
            # per token was the next 15 % (bench/RESULTS.md, section 3).
            stream = await self._client.post(
                "/chat/completions",
                body={"model": model, "messages": to_openai_messages(messages, vision=self.vision),
                      "stream": True,
                      "stream_options": {"include_usage": True}, **extra},
                cast_to=ChatCompletion, stream=True, stream_cls=openai.AsyncStream[object])
            async for chunk in stream:
                if not isinstance(chunk, dict):
                    continue
                answered_by = chunk.get("model") or answered_by
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                    delta = choice.get("delta")
                    if not delta:
                        continue
                    content = delta.get("content")
                    if content:
                        parts.append(content)
                        if on_delta is not None:
                            on_delta(content)
                    for piece in delta.get("tool_calls") or ():
                        pending = calls.setdefault(piece.get("index", 0), _PendingCall())
                        pending.id = piece.get("id") or pending.id
                        function = piece.get("function")
                        if function:
                            pending.name = function.get("name") or pending.name
                            if function.get("arguments"):
                                pending.arguments.append(function["arguments"])
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"{self.name} answered HTTP {exc.status_code}: {_message(exc)}",
                provider=self.name, status=exc.status_code,
                retryable=exc.status_code in (408, 409, 429) or exc.status_code >= 500,
                retry_after=retry_after(exc.response.headers),
            ) from exc
        except openai.APIConnectionError as exc:  # APITimeoutError included
            raise self._connection_error(exc) from exc
        except openai.OpenAIError as exc:
            raise ProviderError(f"{self.name} failed: {exc}", provider=self.name) from exc
        text = "".join(parts)
        tool_calls = tuple(
            parse_tool_call(p.id or f"call_{index}", p.name, "".join(p.arguments))
            for index, p in sorted(calls.items()) if p.name)
        if usage is not None:
            tokens_in = int(usage.get("prompt_tokens") or 0)
            tokens_out = int(usage.get("completion_tokens") or 0)
        else:  # servers that ignore include_usage: estimate, do not invent zero
            tokens_in = sum(estimate_tokens(m.content) for m in messages)
            tokens_out = estimate_tokens(text) if text else 0
        return Completion(text=text, model=answered_by, input_tokens=tokens_in,
                          output_tokens=tokens_out, tool_calls=tool_calls, stop_reason=finish)

    async def list_models(self) -> list[str]:
        try:
            page = await self._client.models.list()
            return sorted([m.id async for m in page])
        except openai.APIStatusError as exc:
            raise ProviderError(f"{self.name} cannot list models: HTTP {exc.status_code}",
                                provider=self.name, status=exc.status_code,
                                retryable=False) from exc
        except openai.OpenAIError as exc:
            raise ProviderError(f"{self.name} cannot list models: {exc}",
                                provider=self.name) from exc

    async def close(self) -> None:
        await self._client.close()

    def _connection_error(self, exc: openai.APIConnectionError) -> ProviderError:
        """Timed out or unreachable, told apart by the aiohttp error underneath.

        The SDK's vendored aiohttp transport maps every ``ClientConnectionError``,
        a refused connection included, to httpx's ``ConnectTimeout`` (its error map
        is checked in order and that entry comes first), so the SDK's own class says
        "timed out" when nothing listens. The cause chain still has the truth.
        """
        refused = _connection_failure(exc)
        if isinstance(exc, openai.APITimeoutError) and refused is None:
            return ProviderError(f"{self.name} timed out", provider=self.name)
        where = self.base_url or "api.openai.com"
        return ProviderError(
            f"{self.name} is unreachable at {where}: {refused or exc.__cause__ or exc}",
            provider=self.name)


def _connection_failure(exc: BaseException) -> aiohttp.ClientConnectionError | None:
    """The aiohttp connection error (not a timeout) behind ``exc``, if there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if (isinstance(seen, aiohttp.ClientConnectionError)
                and not isinstance(seen, TimeoutError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def to_openai_messages(messages: Sequence[ChatMessage], *, vision: bool = False
                       ) -> list[dict[str, Any]]:
    """Chat Completions messages: tool calls on the assistant turn, results as ``role: tool``,
    pictures as ``image_url`` content parts with a data URL (or their notes, no ``vision``)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.images and vision:
            text, shown = sized(m, IMAGE_LIMIT)
            parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
            parts += [{"type": "image_url", "image_url": {
                "url": f"data:{i.mime};base64,{base64.b64encode(i.data).decode()}"}}
                for i in shown]
            out.append({"role": m.role, "content": parts if shown else text})
        elif m.images:
            out.append({"role": m.role, "content": with_notes(m)})
        elif m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None,
                        "tool_calls": [_wire_call(c) for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _wire_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return exc.message
