"""The contract suite's view of QQ: the OneBot v11 fake bridge (tests/fakes/onebot_server.py).

No OneBot bridge can run here (NapCat needs a logged-in QQNT client, go-cqhttp a QQ account
and Tencent's servers), so the fake plays NapCat: array-format events, a token checked after
the upgrade, heartbeats every 0.5 s. Test chats are private chats with users ``20000+i``;
the group chat is a group the bot is in, where a mention is an ``at`` segment of its number.

The platform's events made real: a dropped connection is every socket cut by the bridge; a
redelivery is the same message event pushed again (the journal recognises its message_id);
a media message is an ``image`` segment alone; a malformed one is a message event whose
``message`` is a number. Failures: a transient one (500) is NapCat's retcode 1200 "发送消息失败"
(sending failed), a refusal (400) a 1400, a lost answer a send carried out and the socket cut
before its answer. OneBot has no rate-limit answer (go-cqhttp's limiter queues calls, it
never refuses them), so the 429 test is off. A bridge keeps nothing for an absent client, so
messages sent while the channel is stopped are lost (``queues_while_down`` off), there is no
cursor, and the user speaks only once the bot is connected (``wait_client``): a person
typing into QQ while the bot is away is unheard, which the platform tests show.
"""

from __future__ import annotations

import uuid
from typing import Any

from connectors.qq.manifest import MAX_TEXT
from pyclaw_app.channels import utf16_len
from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.onebot_server import OneBotServer, at, image
from tests.fakes.onebot_server import text as plain

__all__ = ["HARNESS", "QqHarness"]

GROUP = 700_100_200
USER = 20_000


class QqHarness(PlatformHarness):
    type_name = "qq"
    max_text = MAX_TEXT
    supports_rate_limit = False
    quotes_replies = False  # private chats are answered plainly; groups quote (platform tests)

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.server = OneBotServer(token=self.token, heartbeat_ms=500, groups=(GROUP,))

    def text_length(self, text: str) -> int:
        return utf16_len(text)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    def channel_config(self) -> dict[str, Any]:
        return {"url": self.server.ws_url, "access_token": self.token, "api_timeout": 5.0}

    def chat(self, i: int) -> str:
        return f"private:{USER + i}"

    def group_chat(self) -> str:
        return f"group:{GROUP}"

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        await self.server.wait_client()
        kind, _, target = chat.partition(":")
        if kind == "group":
            return str(await self.server.push_group(int(target), USER + 999,
                                                    [at(self.server.self_id), plain(text)]))
        return str(await self.server.push_private(int(target), [plain(text)]))

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        await self.server.wait_client()
        group = int(chat.partition(":")[2])
        segments = [at(self.server.self_id), plain(f" {text}")] if mention else [plain(text)]
        return str(await self.server.push_group(group, USER + 998, segments, card="Bob"))

    async def redeliver(self, platform_id: str) -> None:
        await self.server.push_again(int(platform_id))

    async def inject_malformed(self) -> None:
        await self.server.wait_client()
        await self.server.push_raw(self.server.event_base("message") | {
            "message_type": "private", "sub_type": "friend", "message_id": 123456,
            "user_id": USER, "message": 42, "raw_message": "", "font": 0, "sender": {}})

    async def inject_media_only(self, chat: str) -> str:
        await self.server.wait_client()
        photo = image("1F3E5C0D.jpg", "https://multimedia.nt.qq.com.cn/download?appid=1406"
                      "&fileid=abc")
        return str(await self.server.push_private(int(chat.partition(":")[2]), [photo]))

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=s.chat, text=s.text, reply_to=s.reply_to, ts=s.ts)
                for s in self.server.sent(chat)]

    def rate_limit_next_send(self, retry_after: float) -> None:
        raise NotImplementedError("OneBot v11 has no rate-limit answer")

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return []

    async def drop_connection(self) -> None:
        await self.server.drop()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.server.fail_next("send", "error" if status >= 500 else "refuse", skip=skip)

    def lose_next_send_answer(self) -> None:
        self.server.fail_next("send", "lose")


HARNESS = QqHarness
