"""The part of a harness every push-only platform shares (LINE, WhatsApp, Viber, the signed
webhook): the platform signs each event and POSTs it to us, and has no connection to drop.

Ordinary tests hand a signed request to ``gateway.webhook`` (the real routing and the
connector's own signature check; those tests run no HTTP server); ``post_webhook`` POSTs
it to the real webhook server the webhook test starts. The fake's shared controls
(``tests/fakes/platform.py``) script the send failures, on its ``send_method``.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.channels import WebhookRequest
from tests.contract.harness import PlatformHarness
from tests.fakes.platform import FakePlatform

__all__ = ["PushedHarness"]

Signed = tuple[bytes, dict[str, str]]


class PushedHarness(PlatformHarness):
    supports_drop = False
    supports_edit = False
    webhook = True
    accepted = 200
    """What the channel answers a request it journaled."""

    def __init__(self, fake: FakePlatform) -> None:
        self.fake = fake
        self.gateway: Any = None
        self._last_good: tuple[Signed, str] | None = None

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        """A message event signed as the platform signs it (``good``) or with a wrong
        secret, and the message's platform id."""
        raise NotImplementedError

    def attach(self, gateway: Any) -> None:
        self.gateway = gateway

    async def start(self) -> None:
        await self.fake.start()

    async def stop(self) -> None:
        await self.fake.stop()

    def webhook_config(self) -> dict[str, Any]:
        return self.channel_config()

    async def deliver(self, signed: Signed, *, expect: int | None = None) -> None:
        """Route a signed request through the gateway as its webhook server would."""
        body, headers = signed
        response = await self.gateway.webhook(self.type_name, WebhookRequest(
            "POST", body, headers, path=f"/webhook/{self.type_name}"))
        wanted = self.accepted if expect is None else expect
        assert response.status == wanted, (response.status, response.body)

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return list(self.fake.rate_limit_log)

    async def drop_connection(self) -> None:
        raise NotImplementedError(f"{self.type_name} pushes to us: there is no connection "
                                  "to drop")

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next(self.fake.send_method, status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer(self.fake.send_method)

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        """"replayed" sends the last good request again, byte for byte."""
        if signature == "replayed":
            assert self._last_good is not None, "replay needs a good post first"
            signed, pid = self._last_good
        else:
            signed, pid = self.signed_message(chat, text, good=signature == "good")
            if signature == "good":
                self._last_good = (signed, pid)
        status, _ = await self.fake.post_signed(url, *signed)
        return status, pid
