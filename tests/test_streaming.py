"""DraftStream: one draft, ordered edits at most once per interval, never a half-sent draft."""

from __future__ import annotations

import asyncio
import itertools

from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.streaming import DraftStream, EditBudget
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.support import eventually


class Platform:
    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.fail_edit: Exception | None = None

    async def open_draft(self, text: str) -> str:
        await asyncio.sleep(0.01)
        self.log.append(("send", text))
        return "m1"

    async def edit(self, draft: str, text: str) -> None:
        if self.fail_edit is not None:
            error, self.fail_edit = self.fail_edit, None
            raise error
        await asyncio.sleep(0.01)
        self.log.append(("edit", text))


def stream(platform: Platform, **kw: object) -> DraftStream:
    return DraftStream(open_draft=platform.open_draft, edit=platform.edit, limit=50,
                       interval=0.05, **kw)  # type: ignore[arg-type]


async def test_fast_reply_sends_no_draft() -> None:
    platform = Platform()
    s = stream(platform)
    s.feed("quick answer")
    assert await s.finish() is None
    assert platform.log == []


async def test_slow_reply_grows_in_order_within_the_limit() -> None:
    platform = Platform()
    s = stream(platform)
    for word in ("one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight ",
                 "nine ", "ten ", "eleven ", "twelve "):
        s.feed(word)
        await asyncio.sleep(0.03)
    assert await s.finish() == "m1"
    kinds = [k for k, _ in platform.log]
    assert kinds[0] == "send" and set(kinds[1:]) == {"edit"} and len(kinds) >= 3
    texts = [t.removesuffix("…") for _, t in platform.log]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))  # in order
    assert all(len(t) <= 50 for _, t in platform.log)
    assert platform.log[-1][1].endswith("…")  # longer than the limit: cut with an ellipsis


async def test_reset_rate_limit_and_fatal_edit() -> None:
    platform = Platform()
    s = stream(platform)
    s.feed("first attempt ")
    await asyncio.sleep(0.08)
    s.reset()
    platform.fail_edit = RetryableError("slow down", retry_after=0.05)
    s.feed("second")
    await asyncio.sleep(0.2)
    assert platform.log[-1] == ("edit", "second")  # retried after the rate limit
    platform.fail_edit = FatalConnectorError("message to edit not found")
    s.feed(" more")
    await asyncio.sleep(0.15)
    assert await s.finish() is None  # broken: the caller sends the final reply anew
    assert s.broken == "message to edit not found"


async def test_finish_waits_for_a_draft_being_sent() -> None:
    platform = Platform()
    s = stream(platform)
    s.feed("a slow start")
    await asyncio.sleep(0.055)  # the draft send is under way
    assert await s.finish() == "m1"
    assert platform.log == [("send", "a slow start")]


def test_an_edit_budget_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    budget = EditBudget(2.0, burst=3.0, clock=lambda: now[0])
    assert [budget.take() for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert budget.take() == 0.5  # the next token in half a second at 2 a second
    now[0] = 0.5
    assert budget.take() == 0.0
    now[0] = 100.0  # a long quiet spell refills to the burst, not beyond
    assert [budget.take() for _ in range(4)][-1] > 0


async def test_drafts_sharing_a_budget_edit_within_it_and_still_end_in_full() -> None:
    """Ten drafts on one channel whose budget holds one edit (and refills too slowly to
    matter): one edit among them all, where each alone would have edited several times;
    every draft is still open for its final text, which is not a draft edit."""
    platforms = [Platform() for _ in range(10)]
    budget = EditBudget(0.001, burst=1.0)
    streams = [stream(p, budget=budget) for p in platforms]
    for word in ("one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight "):
        for s in streams:
            s.feed(word)
        await asyncio.sleep(0.03)
    assert [await s.finish() for s in streams] == ["m1"] * 10  # opening is not budgeted
    assert sum(k == "edit" for p in platforms for k, _ in p.log) == 1


async def test_telegram_reply_grows_by_edits_and_ends_as_the_full_reply(
        make_gateway) -> None:
    text = " ".join(f"word{i}" for i in range(60))  # ~400 characters, streamed over ~2 s
    async with FakeTelegram() as telegram, FakeOpenAI(chunk_size=8, chunk_delay=0.04,
                                                      responder=lambda m: text) as llm:
        gateway = await make_gateway({
            "providers": [provider_section(llm)],
            "channels": {"tg": {"type": "telegram", "token": telegram.token,
                                "base_url": f"{telegram.url}/bot",
                                "base_file_url": f"{telegram.url}/file/bot",
                                "poll_timeout": 1, "dm_policy": "open"}}})
        gateway.stream_interval = 0.3
        await eventually(lambda: gateway.channels["tg"].state.value == "online")
        telegram.inject_message(1001, "tell me")
        await eventually(lambda: telegram.sent_to(1001), timeout=10)
        draft = telegram.sent_to(1001)[0]
        await gateway.lanes.join()
        edits = telegram.edits(1001, draft.message_id)
        assert len(telegram.sent_to(1001)) == 1  # one message, grown by edits
        assert len(edits) >= 2
        shown = [draft.text, *edits]
        assert all(b.startswith(a) for a, b in itertools.pairwise(shown))  # in order
        assert edits[-1] == text == telegram.text_of(1001, draft.message_id)
        row = (await gateway.store.journal.recent(1))[0]
        assert row.direction == "out" and row.status == "sent" and row.text == text
