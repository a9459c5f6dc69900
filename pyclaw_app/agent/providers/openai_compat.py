"""Any OpenAI-compatible chat completions endpoint through the official ``openai`` SDK.

OpenAI itself, Ollama, vLLM, LM Studio, OpenRouter and friends differ only in
``base_url`` and model names. SDK exceptions are mapped here, once, to
:class:`ProviderError` with a retryable flag the agent and failover read.
"""

from __future__ import annotations

import logging
from typing import Any

import openai

from pyclaw_app.agent.providers.base import ChatMessage, Completion, DeltaCallback
from pyclaw_app.errors import ProviderError

__all__ = ["OpenAICompatProvider"]

_log = logging.getLogger(__name__)


class OpenAICompatProvider:
    def __init__(self, *, name: str, model: str, base_url: str | None, api_key: str | None,
                 timeout: float = 60.0, max_retries: int = 2) -> None:
        self.name = name
        self.model = model
        self.base_url = base_url
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout,
            max_retries=max_retries)

    async def complete(self, messages: list[ChatMessage],
                       on_delta: DeltaCallback | None = None) -> Completion:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        try:
            stream = await self._client.chat.completions.create(
                model=self.model, messages=payload,  # type: ignore[arg-type]
                stream=True, stream_options={"include_usage": True})
            parts: list[str] = []
            usage: Any = None
            model = self.model
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    delta = choice.delta.content if choice.delta else None
                    if delta:
                        parts.append(delta)
                        if on_delta is not None:
                            on_delta(delta)
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"{self.name} answered HTTP {exc.status_code}: {_message(exc)}",
                provider=self.name, status=exc.status_code,
                retryable=exc.status_code in (408, 409, 429) or exc.status_code >= 500,
                retry_after=_retry_after(exc)) from exc
        except openai.APITimeoutError as exc:
            raise ProviderError(f"{self.name} timed out", provider=self.name) from exc
        except openai.APIConnectionError as exc:
            where = self.base_url or "api.openai.com"
            raise ProviderError(f"{self.name} is unreachable at {where}: {exc.__cause__ or exc}",
                                provider=self.name) from exc
        except openai.OpenAIError as exc:
            raise ProviderError(f"{self.name} failed: {exc}", provider=self.name) from exc
        text = "".join(parts)
        if usage is not None:
            tokens_in, tokens_out = usage.prompt_tokens, usage.completion_tokens
        else:  # servers that ignore include_usage: estimate, do not invent zero
            tokens_in = sum(len(m.content) for m in messages) // 4
            tokens_out = len(text) // 4
        return Completion(text=text, model=model, input_tokens=tokens_in,
                          output_tokens=tokens_out)

    async def close(self) -> None:
        await self._client.close()


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return exc.message


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None
