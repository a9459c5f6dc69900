"""A local-chat message through the whole flow: journal, lane, fake OpenAI, reply, events."""

from __future__ import annotations

from pyclaw_app.control.chat import ask
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import EventKind
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI, Fault
from tests.support import eventually

CONFIG_CHANNELS = {"local": {"type": "local"}}


def local(gateway: Gateway):
    return gateway.channels["local"].connector


async def test_round_trip_reaches_llm_and_both_directions_are_stored(
        fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "agent": {"system_prompt": "Be brief."},
                                  "channels": CONFIG_CHANNELS})
    sub = gateway.bus.subscribe()
    reply = await ask(gateway, "Hello, gateway! 👋 مرحبا", chat="t1", timeout=10)
    assert reply == "Echo: Hello, gateway! 👋 مرحبا"
    await gateway.lanes.join()

    request = fake_llm.requests[-1]
    assert request["model"] == "fake-model" and request["stream"] is True
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}
    assert request["messages"][-1] == {"role": "user", "content": "Hello, gateway! 👋 مرحبا"}

    rows = await gateway.store.db.fetchall(
        "SELECT direction, text, status, reply_to FROM messages ORDER BY id")
    assert [(r["direction"], r["text"], r["status"]) for r in rows] == [
        ("in", "Hello, gateway! 👋 مرحبا", "replied"),
        ("out", "Echo: Hello, gateway! 👋 مرحبا", "sent")]
    calls = await eventually(lambda: gateway.store.db.fetchall("SELECT * FROM llm_calls"))
    assert calls[0]["provider"] == "fake" and calls[0]["output_tokens"] > 0

    kinds = [e.kind for e in await sub.get_batch(1000) if e.kind != EventKind.LOG]
    flow = [k for k in kinds if k in (EventKind.MESSAGE_RECEIVED, EventKind.MESSAGE_PROCESSING,
                                      EventKind.LLM_CALL, EventKind.REPLY_SENT)]
    assert flow == [EventKind.MESSAGE_RECEIVED, EventKind.MESSAGE_PROCESSING,
                    EventKind.LLM_CALL, EventKind.REPLY_SENT]
    assert EventKind.REPLY_DELTA in kinds
    assert kinds.index(EventKind.REPLY_DELTA) < kinds.index(EventKind.REPLY_SENT)


async def test_history_is_sent_to_the_model_in_order(fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "channels": CONFIG_CHANNELS})
    await ask(gateway, "one", chat="h", timeout=10)
    await ask(gateway, "two", chat="h", timeout=10)
    await ask(gateway, "elsewhere", chat="other", timeout=10)
    await ask(gateway, "three", chat="h", timeout=10)
    convo = [(m["role"], m["content"]) for m in fake_llm.requests[-1]["messages"][1:]]
    assert convo == [("user", "one"), ("assistant", "Echo: one"), ("user", "two"),
                     ("assistant", "Echo: two"), ("user", "three")]


async def test_redelivery_gives_one_row_and_one_reply(fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "channels": CONFIG_CHANNELS})
    connector = local(gateway)
    first = await connector.post("same message", chat="r", platform_id="dup-1")
    second = await connector.post("same message", chat="r", platform_id="dup-1")
    assert second[1].duplicate and second[1].journal_id == first[1].journal_id
    await eventually(lambda: len(connector.sent) == 1)
    await gateway.lanes.join()
    third = await connector.post("same message", chat="r", platform_id="dup-1")
    await gateway.lanes.join()
    assert third[1].duplicate
    assert len(connector.sent) == 1 and len(fake_llm.requests) == 1
    rows = await gateway.store.db.fetchall("SELECT direction FROM messages")
    assert sorted(r["direction"] for r in rows) == ["in", "out"]


async def test_empty_message_is_a_logged_skip(fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "channels": CONFIG_CHANNELS})
    _, result = await local(gateway).post("   ", chat="e")
    await gateway.lanes.join()
    row = await gateway.store.journal.get(result.journal_id)
    assert row is not None and row.status == "skipped"
    logs = await eventually(lambda: gateway.store.logs.page(channel="local", search="skipped"))
    assert "empty message" in logs[0]["message"]
    assert fake_llm.requests == []


async def test_global_cap_limits_concurrent_llm_calls(make_gateway) -> None:
    async with FakeOpenAI(latency=0.05) as llm:
        gateway = await make_gateway({"providers": [provider_section(llm)],
                                      "agent": {"max_concurrent_llm": 2},
                                      "channels": CONFIG_CHANNELS})
        connector = local(gateway)
        for i in range(8):
            await connector.post(f"m{i}", chat=f"chat{i}")
        await eventually(lambda: len(connector.sent) == 8)
        assert llm.max_in_flight == 2  # parallel across chats, but never past the cap


async def test_offline_provider_answers_without_configuration(make_gateway) -> None:
    gateway = await make_gateway({})
    reply = await ask(gateway, "anyone there?", timeout=10)
    assert "No language model is configured" in reply
    assert "providers:" in reply and "base_url" in reply


async def test_unreachable_provider_gives_notice_log_and_failed_row_then_retry(
        make_gateway) -> None:
    llm = FakeOpenAI()
    await llm.start()
    port_config = provider_section(llm)
    await llm.stop()  # nothing listens there now
    gateway = await make_gateway({"providers": [port_config], "channels": CONFIG_CHANNELS})
    sub = gateway.bus.subscribe()
    notice = await ask(gateway, "are you there?", chat="u", timeout=10)
    assert notice.startswith("Sorry, I can't answer right now")
    assert "could not be reached" in notice and "saved" in notice
    await gateway.lanes.join()

    row = (await gateway.store.journal.recent(10, conv=local(gateway).address("u").key))[-1]
    assert row.direction == "in" and row.status == "failed"
    assert "unreachable" in (row.error or "")
    logs = await eventually(lambda: gateway.store.logs.page(channel="local", level="error"))
    assert "LLM call failed" in logs[0]["message"] and "unreachable" in logs[0]["message"]
    failed = [e for e in await sub.get_batch(1000) if e.kind == EventKind.MESSAGE_FAILED]
    assert failed and failed[0].data["id"] == row.id

    # The provider comes back: the failed message can be retried and gets exactly one reply.
    revived = FakeOpenAI()
    revived.port = int(port_config["base_url"].rsplit(":", 1)[1].split("/")[0])
    await _start_on(revived)
    try:
        assert await gateway.retry(row.id)
        await eventually(lambda: _replied(gateway, row.id))
        assert len(revived.requests) == 1
        # The failure notice is not fed back to the model as an assistant turn.
        assert [m["role"] for m in revived.requests[0]["messages"]] == ["system", "user"]
    finally:
        await revived.stop()


async def test_provider_errors_429_and_500_fail_cleanly(fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "channels": CONFIG_CHANNELS})
    fake_llm.faults.extend([Fault(status=429, retry_after=1), Fault(status=500)])
    rate_limited = await ask(gateway, "a", chat="f", timeout=10)
    server_error = await ask(gateway, "b", chat="f", timeout=10)
    assert "rate-limiting" in rate_limited
    assert "internal error" in server_error
    ok = await ask(gateway, "c", chat="f", timeout=10)
    assert ok == "Echo: c"


async def _replied(gateway: Gateway, journal_id: int) -> bool:
    row = await gateway.store.journal.get(journal_id)
    return row is not None and row.status == "replied"


async def _start_on(server: FakeOpenAI) -> None:
    """Start ``server`` on the port it was given (to revive a provider at the same URL)."""
    from aiohttp import web

    server.routes(server.app)
    server._runner = web.AppRunner(server.app, handle_signals=False, access_log=None)
    await server._runner.setup()
    await web.TCPSite(server._runner, "127.0.0.1", server.port).start()
