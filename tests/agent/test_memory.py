"""Memory: the budget keeps the system prompt and the newest turns; overflow is compacted into
a stored summary; /reset clears; system prompts are templated per channel."""

from __future__ import annotations

from typing import Any

from tests.agent.conftest import anthropic_provider, openai_provider
from tests.fakes.anthropic_api import FakeAnthropic, block_text
from tests.fakes.openai_api import FakeOpenAI

PADDING = " lorem ipsum dolor sit amet" * 6  # ~40 tokens a turn


def summarising(messages: list[dict[str, Any]]) -> str:
    """Echo, except for compaction requests, which get a recognisable summary."""
    first = messages[0]
    if first.get("role") == "system" and "memory of a chat" in first["content"]:
        folded = messages[-1]["content"].count("User: ")
        return f"SUMMARY of {folded} user turns"
    last = messages[-1]["content"]
    return f"Echo: {last[:12]}"


async def test_budget_keeps_system_prompt_and_newest_turns(make_agent,
                                                           fake_openai: FakeOpenAI) -> None:
    h = await make_agent([openai_provider(fake_openai)], history_tokens=400, compaction=False,
                         system_prompt="SYSTEM " + "rule " * 40)
    for i in range(12):
        await h.say(f"turn {i}{PADDING}")
    reply, rec = await h.say("the newest question")
    sent = fake_openai.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "SYSTEM " + "rule " * 40}
    assert sent[-1] == {"role": "user", "content": "the newest question"}
    history = [m["content"] for m in sent[1:-1]]
    assert 0 < len(history) < 24  # trimmed, not empty
    assert sent[1]["role"] == "user"  # never starts on an assistant turn
    # what is kept is the newest stretch, in order, ending with the previous answer
    assert history[-2].startswith("turn 11") and history[-1] == "Echo: " + history[-2]
    kept_turns = [int(t.split()[1]) for t in history if t.startswith("turn ")]
    assert kept_turns == list(range(12 - len(kept_turns), 12))
    assert rec.logged("older messages left out of the prompt")
    assert reply.text == "Echo: the newest question"


async def test_context_window_shrinks_the_budget(make_agent, fake_openai: FakeOpenAI) -> None:
    wide = await make_agent([openai_provider(fake_openai)], history_tokens=4000,
                            compaction=False, tools=[])
    for i in range(10):
        await wide.say(f"turn {i}{PADDING}", chat="wide")
    await wide.say("q", chat="wide")
    assert len(fake_openai.requests[-1]["messages"]) == 22
    narrow = await make_agent([openai_provider(fake_openai, context_window=1024,
                                               max_output_tokens=700)],
                              history_tokens=4000, compaction=False, tools=[])
    await narrow.say("q", chat="wide")
    assert 2 < len(fake_openai.requests[-1]["messages"]) < 12


async def test_overflow_is_compacted_into_a_stored_summary(make_agent,
                                                           fake_openai: FakeOpenAI) -> None:
    fake_openai.responder = summarising
    h = await make_agent([openai_provider(fake_openai)], history_tokens=600,
                         system_prompt="Be brief.")
    compactions = 0
    for i in range(14):
        _, rec = await h.say(f"turn {i}{PADDING}")
        compactions += len(rec.logged("compacted"))
    assert 1 <= compactions <= 3  # half the budget is freed each time, not one turn
    row = await h.store.db.fetchone(
        "SELECT summary, summary_until FROM conversations WHERE conv=?", ("local||c1|",))
    assert row is not None and row["summary"].startswith("SUMMARY of ")
    assert row["summary_until"] > 0

    _, rec = await h.say("and now?")
    row = await h.store.db.fetchone(
        "SELECT summary, summary_until FROM conversations WHERE conv=?", ("local||c1|",))
    assert row is not None
    main = fake_openai.requests[-1]["messages"]
    assert main[0]["content"] == ("Be brief.\n\nSummary of the earlier conversation:\n"
                                  f"{row['summary']}")
    assert main[-1] == {"role": "user", "content": "and now?"}
    # every turn past the summary point is in the prompt, none from before it
    after = await h.store.db.fetchall(
        "SELECT text FROM messages WHERE direction='in' AND id > ? ORDER BY id",
        (row["summary_until"],))
    assert [m["content"] for m in main if m["role"] == "user"] == [r["text"] for r in after]
    # compaction calls are accounted like any other
    assert len(await h.llm_calls()) == len(fake_openai.requests)


async def test_a_model_that_echoes_its_prompt_cannot_grow_the_summary(
        make_agent, fake_openai: FakeOpenAI) -> None:
    """The fake's default echo answers a summary request with the whole request, the old
    summary included: the summary must stay clipped to a quarter of the budget, so
    compaction still runs once per stretch of conversation, not on every message."""
    h = await make_agent([openai_provider(fake_openai)], history_tokens=600, tools=[])
    compactions = 0
    for i in range(30):
        _, rec = await h.say(f"turn {i}{PADDING}")
        compactions += len(rec.logged("compacted"))
    row = await h.store.db.fetchone(
        "SELECT summary FROM conversations WHERE conv=?", ("local||c1|",))
    assert row is not None and row["summary"].startswith("Echo: ")
    assert len(row["summary"]) <= 600 // 4 * 4
    assert 2 <= compactions <= 10


async def test_compaction_failure_still_answers(make_agent,
                                                fake_anthropic: FakeAnthropic) -> None:
    def responder(messages: list[dict[str, Any]]) -> str:
        return "" if "Updated summary" in block_text(messages[-1]["content"]) else "ok"

    fake_anthropic.responder = responder
    h = await make_agent([anthropic_provider(fake_anthropic)], history_tokens=300)
    for i in range(8):
        reply, rec = await h.say(f"turn {i}{PADDING}")
        assert reply.text == "ok"
    assert rec.logged("could not summarise older messages")
    row = await h.store.db.fetchone("SELECT summary FROM conversations WHERE conv=?",
                                    ("local||c1|",))
    assert row is None or row["summary"] is None


async def test_reset_clears_history_and_summary(make_agent, fake_openai: FakeOpenAI) -> None:
    fake_openai.responder = summarising
    h = await make_agent([openai_provider(fake_openai)], history_tokens=500)
    for i in range(10):
        await h.say(f"turn {i}{PADDING}")
    reply, _ = await h.say("/reset")
    assert reply.provider == "command" and "forgotten" in reply.text
    row = await h.store.db.fetchone("SELECT summary FROM conversations WHERE conv=?",
                                    ("local||c1|",))
    assert row is not None and row["summary"] is None
    await h.say("fresh start")
    sent = fake_openai.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert "Summary" not in sent[0]["content"]


async def test_commands_are_not_part_of_the_history(make_agent, fake_openai: FakeOpenAI) -> None:
    h = await make_agent([openai_provider(fake_openai)])
    await h.say("first")
    await h.say("/status")
    await h.say("/help@pyclaw_bot")
    await h.say("second")
    convo = [(m["role"], m["content"]) for m in fake_openai.requests[-1]["messages"][1:]]
    assert convo == [("user", "first"), ("assistant", "Echo: first"), ("user", "second")]


async def test_system_prompt_templates_per_channel(make_agent,
                                                   fake_anthropic: FakeAnthropic) -> None:
    h = await make_agent([anthropic_provider(fake_anthropic)],
                         system_prompt="Default for {user}.",
                         system_prompts={"work": "You help {user} on {channel}. Today is "
                                         "{date}, {time}. Keep {braces} as they are."})
    await h.say("hi", channel="work", name="Bob")
    assert fake_anthropic.requests[-1]["system"] == (
        "You help Bob on work. Today is Friday, 2025-03-14, 15:09. Keep {braces} as they are.")
    await h.say("hi", channel="local", name="")
    assert fake_anthropic.requests[-1]["system"] == "Default for u1."
