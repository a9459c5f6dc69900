"""A reply whose answer is lost on the way back is flagged, never sent a second time.

Telegram carries out a sendMessage and the connection drops before its answer
arrives: the gateway cannot know the user got the reply, and Telegram has no way
to ask. Sending again would double it, so the reply is marked ``uncertain`` in the
journal and the channel log, and the next message is answered normally.
"""

from __future__ import annotations

from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState, Event, EventKind
from tests.conftest import provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually


async def test_lost_answer_marks_the_reply_uncertain_and_sends_it_once(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway: Gateway = await make_gateway({
        "providers": [provider_section(fake_llm)],
        "channels": {"telegram": {"type": "telegram", "dm_policy": "open",
                                  "rate_limit_per_minute": 0, **telegram.channel_config()}}})
    telegram.attach(gateway)
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE)
    events = gateway.bus.subscribe()
    chat = telegram.chat(1)

    telegram.fake.lose_next_answer("sendMessage")
    await telegram.inject_message(chat, "first")
    seen: list[Event] = []

    async def failures() -> list[Event]:
        seen.extend(await events.get_batch(1000, timeout=0.05))
        return [e for e in seen if e.kind == EventKind.MESSAGE_FAILED]

    failed = await eventually(failures)
    assert failed[0].data["error"].startswith("uncertain: ")
    await telegram.inject_message(chat, "second")
    await eventually(lambda: len(telegram.sent(chat)) == 2)
    await gateway.lanes.join()

    assert [m.text for m in telegram.sent(chat)] == ["Echo: first", "Echo: second"]
    rows = await gateway.store.db.fetchall(
        "SELECT direction, text, status, error FROM messages ORDER BY id")
    assert [(r["direction"], r["status"]) for r in rows] == [
        ("in", "failed"), ("out", "failed"), ("in", "replied"), ("out", "sent")]
    assert rows[1]["error"].startswith("uncertain: ") and "not sent again" in rows[1]["error"]
    logs = await gateway.store.logs.page(channel="telegram", level="warning")
    assert any("may have been delivered" in line["message"] for line in logs)
