"""The contract suite's view of a WeChat Official Account: the fake API, and callbacks signed
(and, in safe mode, encrypted) as WeChat makes them. What it shares with WeCom (the
signature in the query, the callbacks, no groups, no 429) is
``tests/contract/tencent_harness.py``. The channel runs in safe mode, the default and
the recommended one.

Test chats are followers ``o6_bmjrPTlm6_2sgVt7hMZ000001``...; an Official Account has no
group chats and no quoting. Every injected message opens its user's 48-hour window and
quota in the fake, as a real one does. The quota is five customer-service messages per
user message; the suite's 10,000-character reply goes out as seven 2,048-byte parts, so
the harness's fake allows twenty (the per-channel tests check the real five and the
message a user sees when it runs out).
"""

from __future__ import annotations

from typing import Any

from tests.contract.tencent_harness import TencentHarness
from tests.fakes.wechat_api import MAX_BYTES, WeChatFake

__all__ = ["HARNESS", "WeChatHarness"]

CONTRACT_QUOTA = 20


class WeChatHarness(TencentHarness):
    type_name = "wechat"
    max_text = MAX_BYTES
    ack = "success"

    def __init__(self) -> None:
        super().__init__(WeChatFake())
        self.fake: WeChatFake
        self.fake.reply_quota = CONTRACT_QUOTA

    def channel_config(self) -> dict[str, Any]:
        return {"app_id": self.fake.app_id, "app_secret": self.fake.app_secret,
                "token": self.fake.token, "encoding_aes_key": self.fake.encoding_aes_key,
                "encryption": "safe", "api_base": self.fake.url}

    def chat(self, i: int) -> str:
        return f"o6_bmjrPTlm6_2sgVt7hMZ{i:06d}"


HARNESS = WeChatHarness
