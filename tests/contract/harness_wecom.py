"""The contract suite's view of a WeCom app: the fake server API, and the encrypted callbacks
WeCom makes. What it shares with the Official Account (the signature in the query, the
callbacks, no groups, no 429) is ``tests/contract/tencent_harness.py``. Every callback
is encrypted; the channel answers an empty 200.

Test chats are members ``pyclaw_user_000001``...; an app's callbacks come from one-on-one
conversations with it (group robots are another product), and nothing is quoted. A
member who writes to the app is in its visible range in the fake.
"""

from __future__ import annotations

from typing import Any

from tests.contract.tencent_harness import TencentHarness
from tests.fakes.wecom_api import MAX_BYTES, WeComFake

__all__ = ["HARNESS", "WeComHarness"]


class WeComHarness(TencentHarness):
    type_name = "wecom"
    max_text = MAX_BYTES
    ack = ""

    def __init__(self) -> None:
        super().__init__(WeComFake())
        self.fake: WeComFake

    def channel_config(self) -> dict[str, Any]:
        return {"corp_id": self.fake.corp_id, "agent_id": self.fake.agent_id,
                "corp_secret": self.fake.corp_secret, "token": self.fake.token,
                "encoding_aes_key": self.fake.encoding_aes_key, "api_base": self.fake.url}

    def chat(self, i: int) -> str:
        return f"pyclaw_user_{i:06d}"


HARNESS = WeComHarness
