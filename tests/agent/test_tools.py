"""Tool round trips on both providers, the built-in tools, and the guard rails around them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyclaw_app.agent.tools import CalculatorError, calculate
from tests.agent.conftest import anthropic_provider, openai_provider
from tests.fakes.anthropic_api import FakeAnthropic, block_text
from tests.fakes.openai_api import FakeOpenAI, FakeReply, FakeToolCall


def openai_tool_results(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m.get("role") == "tool"]


def anthropic_tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for m in messages if isinstance(m["content"], list) for b in m["content"]
            if b.get("type") == "tool_result"]


async def test_openai_tool_round_trip(make_agent, fake_openai: FakeOpenAI) -> None:
    def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
        results = openai_tool_results(messages)
        if not results:
            return FakeReply("Let me compute. ",
                             [FakeToolCall("calculate", {"expression": "6 * (3 + 4)"})])
        return f"The answer is {results[-1]}."

    fake_openai.responder = responder
    h = await make_agent([openai_provider(fake_openai)])
    reply, rec = await h.say("what is 6*(3+4)?")
    assert reply.text == "The answer is 42."
    assert rec.screen == reply.text and rec.restarts == 1  # the preamble was withdrawn
    first, second = fake_openai.requests
    assert {t["function"]["name"] for t in first["tools"]} >= {
        "calculate", "current_time", "save_note", "recall_notes", "channel_info"}
    call = second["messages"][-2]
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == \
        "calculate"
    assert second["messages"][-1] == {"role": "tool",
                                      "tool_call_id": call["tool_calls"][0]["id"],
                                      "content": "42"}
    assert rec.logged('tool calculate({"expression": "6 * (3 + 4)"}) -> 42')
    assert len(rec.calls) == 2 and len(await h.llm_calls()) == 2
    assert reply.input_tokens == sum(c.input_tokens for c in rec.calls)


async def test_anthropic_tool_round_trip_with_notes_in_sqlite(
        make_agent, fake_anthropic: FakeAnthropic) -> None:
    def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
        results = anthropic_tool_results(messages)
        question = block_text(messages[-1]["content"]) if not results else ""
        if not results and question.startswith("remember"):
            return FakeReply(tool_calls=[FakeToolCall("save_note",
                                                      {"text": question[9:]})])
        if not results:
            return FakeReply(tool_calls=[FakeToolCall("recall_notes", {"query": "cat"})])
        return "Tool said: " + results[-1]["content"]

    fake_anthropic.responder = responder
    h = await make_agent([anthropic_provider(fake_anthropic)])
    saved, _ = await h.say("remember my cat is called Miso")
    assert saved.text.startswith("Tool said: saved as note")
    recalled, rec = await h.say("what is my cat called?")
    notes = json.loads(recalled.text.removeprefix("Tool said: "))
    assert [n["text"] for n in notes] == ["my cat is called Miso"]
    rows = await h.store.db.fetchall("SELECT channel, user_id, text FROM notes")
    assert [tuple(r) for r in rows] == [("local", "u1", "my cat is called Miso")]
    # the tool_use went out as the documented blocks, its result came back as tool_result
    request = fake_anthropic.requests[-1]
    tool_use = request["messages"][-2]["content"][-1]
    assert tool_use["type"] == "tool_use" and tool_use["input"] == {"query": "cat"}
    assert request["messages"][-1]["content"][0]["tool_use_id"] == tool_use["id"]
    assert {t["name"] for t in request["tools"]} >= {"save_note", "recall_notes"}
    assert rec.logged("tool recall_notes")
    # another user on the same channel sees none of Ann's notes
    other, _ = await h.say("what is my cat called?", sender="u2")
    assert other.text == "Tool said: no notes found"


async def test_tool_errors_go_back_to_the_model_and_the_turn_survives(
        make_agent, fake_anthropic: FakeAnthropic) -> None:
    def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
        results = anthropic_tool_results(messages)
        if not results:
            return FakeReply(tool_calls=[
                FakeToolCall("calculate", raw_arguments='{"expression": '),
                FakeToolCall("calculate", {"expression": "__import__('os')"}),
                FakeToolCall("no_such_tool", {})])
        return " | ".join(f"{r.get('is_error', False)}:{r['content']}" for r in results)

    fake_anthropic.responder = responder
    h = await make_agent([anthropic_provider(fake_anthropic)])
    reply, rec = await h.say("break things")
    parts = reply.text.split(" | ")
    assert parts[0].startswith("True:error: arguments are not valid JSON")
    assert parts[1] == "True:error: unknown function '__import__'"
    assert parts[2] == "True:error: there is no tool named 'no_such_tool'"
    assert len(rec.logged("tool ")) == 3


async def test_iteration_cap_forces_a_text_answer(make_agent, fake_openai: FakeOpenAI) -> None:
    fake_openai.responder = lambda messages: FakeReply(
        tool_calls=[FakeToolCall("current_time", {})])
    h = await make_agent([openai_provider(fake_openai)], max_tool_rounds=2)
    reply, rec = await h.say("loop forever")
    assert len(fake_openai.requests) == 3
    assert [r.get("tool_choice") for r in fake_openai.requests] == [None, None, "none"]
    assert reply.text == "(answered without tools)" == rec.screen
    assert len(rec.logged("tool current_time")) == 2


async def test_time_and_channel_info_tools(make_agent, fake_openai: FakeOpenAI) -> None:
    def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
        results = openai_tool_results(messages)
        if not results:
            return FakeReply(tool_calls=[FakeToolCall("current_time",
                                                      {"timezone": "Asia/Tokyo"}),
                                         FakeToolCall("channel_info", {})])
        return "\n".join(results)

    fake_openai.responder = responder
    h = await make_agent([openai_provider(fake_openai)])
    reply, _ = await h.say("when and where?", chat="room-9", name="Ann")
    now, where = (json.loads(line) for line in reply.text.split("\n"))
    assert now["iso"] == "2025-03-14T23:09:26+09:00" and now["weekday"] == "Friday"
    assert where == {"channel": "local", "chat": "room-9", "thread": None, "is_group": False,
                     "user_id": "u1", "user_name": "Ann"}


async def test_tools_can_be_limited_or_switched_off(make_agent, fake_openai: FakeOpenAI,
                                                    fake_anthropic: FakeAnthropic) -> None:
    h = await make_agent([openai_provider(fake_openai)], tools=["calculate"])
    await h.say("hi")
    assert [t["function"]["name"] for t in fake_openai.requests[-1]["tools"]] == ["calculate"]
    h2 = await make_agent([anthropic_provider(fake_anthropic, tools=False)])
    await h2.say("hi")
    assert "tools" not in fake_anthropic.requests[-1]


@pytest.mark.parametrize(("expression", "value"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("2 ** 10", 1024), ("2^8", 256), ("7 // 2", 3),
    ("-7 % 3", 2), ("10 / 4", 2.5), ("sqrt(16) + abs(-2)", 6.0), ("round(pi, 2)", 3.14),
    ("max(1, 5, 3)", 5), ("factorial(5)", 120), ("1e3 + 1", 1001.0),
])
def test_calculator_computes(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')", "open('/etc/passwd')", "().__class__", "x + 1",
    "lambda: 1", "[1, 2]", "'a' * 3", "9 ** 9 ** 9", "10 ** 100000", "factorial(100000)",
    "1 / 0", "(-8) ** 0.5", "True + 1", "", "1 +", "2 " + "* 2 " * 400,
])
def test_calculator_refuses(expression: str) -> None:
    with pytest.raises(CalculatorError):
        calculate(expression)
