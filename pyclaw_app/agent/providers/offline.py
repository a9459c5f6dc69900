"""The provider used when none is configured: the app works, and says how to make it smart."""

from __future__ import annotations

from collections.abc import Sequence

from pyclaw_app.agent.providers.base import ChatMessage, Completion, DeltaCallback, ToolSpec

__all__ = ["OfflineProvider"]

NOTICE = (
    "No language model is configured yet, so I can only echo you.\n\n"
    "To connect one, open Settings in the pyclaw app, or add a provider to your config "
    "file ({config}):\n\n"
    "providers:\n"
    "  - name: ollama\n"
    "    base_url: http://localhost:11434/v1\n"
    "    model: llama3.2\n\n"
    "Any OpenAI-compatible server works (OpenAI, Ollama, vLLM, LM Studio); put the API key "
    "in the keyring with `pyclaw secret set providers.NAME.api_key` or the environment "
    "variable PYCLAW_NAME_API_KEY."
)


class OfflineProvider:
    name = "offline"
    model = "none"

    def __init__(self, config_path: str = "pyclaw.yaml") -> None:
        self._config_path = config_path

    async def complete(self, messages: Sequence[ChatMessage],
                       on_delta: DeltaCallback | None = None, *, model: str | None = None,
                       tools: Sequence[ToolSpec] = (), allow_tools: bool = True,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        text = f"You said: {last}\n\n" + NOTICE.format(config=self._config_path)
        if on_delta is not None:
            on_delta(text)
        return Completion(text=text, model=self.model, input_tokens=0, output_tokens=0)

    async def list_models(self) -> list[str]:
        return [self.model]

    async def close(self) -> None:
        return None
