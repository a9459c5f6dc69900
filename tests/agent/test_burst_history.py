"""A burst to one chat through Telegram, answered by a slow model: every prompt the model gets
is the conversation as the user saw it, each earlier question followed by the reply it got.

Messages are journaled as they arrive, so in a burst the replies to earlier messages are
journaled after later questions; cutting history at the inbound row's id showed the model
"user, user, ..." and each reply answered every earlier message again (issue 17, item 7).
The real python-telegram-bot polls the fake Bot API; the fake OpenAI answers after
``LATENCY`` seconds, long enough for the whole burst to be journaled while the first
message is still being answered.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Address, ChannelState, Inbound
from pyclaw_app.store import Store
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI, Fault, echo
from tests.fakes.telegram_api import FakeTelegram
from tests.support import eventually

LATENCY = 0.2
PADDING = " lorem ipsum dolor sit amet" * 6  # ~40 tokens, so a small budget overflows
SUMMARY_MARK = "memory of a chat"

Turn = dict[str, str]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
async def slow_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(latency=LATENCY) as server:
        yield server  # type: ignore[misc]


async def start(make_gateway: Any, telegram: FakeTelegram, llm: FakeOpenAI,
                **agent: Any) -> Gateway:
    channel = {"type": "telegram", "token": telegram.token, "base_url": f"{telegram.url}/bot",
               "base_file_url": f"{telegram.url}/file/bot", "poll_timeout": 1,
               "dm_policy": "open", "rate_limit_per_minute": 0}
    gateway: Gateway = await make_gateway({"providers": [provider_section(llm)],
                                           "agent": {"max_concurrent_llm": 8, **agent},
                                           "channels": {"tg": channel}})
    await eventually(lambda: gateway.channels["tg"].state == ChannelState.ONLINE)
    return gateway


async def burst(gateway: Gateway, telegram: FakeTelegram, chat: int,
                texts: list[str]) -> list[Turn | None]:
    """Send ``texts`` at once, wait until each is closed, and return the conversation as the
    user saw it: per message its question and the reply it got (None: no reply)."""
    newest = await gateway.store.db.fetchone("SELECT COALESCE(MAX(id), 0) AS id FROM messages")
    assert newest is not None
    for text in texts:
        telegram.inject_message(chat, text)

    async def closed() -> list[Any] | None:
        rows = await gateway.store.db.fetchall(
            "SELECT id, text, status FROM messages WHERE direction='in' AND chat=? AND id > ?"
            " ORDER BY id", (str(chat), newest["id"]))
        done = [r for r in rows if r["status"] in ("replied", "failed", "skipped")]
        return rows if len(done) == len(texts) else None

    rows = await eventually(closed, timeout=60)
    await gateway.lanes.join()
    assert [r["text"] for r in rows] == texts
    answers: list[Turn | None] = []
    for row in rows:
        reply = await gateway.store.journal.reply_of(row["id"])
        answered = row["status"] == "replied" and reply is not None
        answers.append({"role": "assistant", "content": reply.text} if answered and reply
                       else None)
    return answers


def user(text: str) -> Turn:
    return {"role": "user", "content": text}


def conversation(texts: list[str], answers: list[Turn | None], upto: int,
                 start: int = 0) -> list[Turn]:
    """Questions ``start..upto-1`` with their replies (unanswered ones left out), then
    question ``upto``: the prompt message ``upto`` should get."""
    turns: list[Turn] = []
    for text, answer in zip(texts[start:upto], answers[start:upto], strict=True):
        if answer is not None:
            turns += [user(text), answer]
    return [*turns, user(texts[upto])]


def prompts_for(llm: FakeOpenAI, text: str) -> list[list[Turn]]:
    """The chat prompts (not summary requests) whose new message is ``text``, minus the
    system prompt."""
    return [body["messages"][1:] for body in llm.requests
            if body["messages"][-1]["content"] == text
            and SUMMARY_MARK not in body["messages"][0]["content"]]


async def test_every_prompt_of_a_burst_is_the_conversation_so_far(
        make_gateway: Any, telegram: FakeTelegram, slow_llm: FakeOpenAI) -> None:
    gateway = await start(make_gateway, telegram, slow_llm)
    chats = {1001: [f"chat 1001 message {n}" for n in range(1, 11)],
             1002: [f"chat 1002 message {n}" for n in range(1, 6)]}
    for chat, texts in chats.items():
        answers = await burst(gateway, telegram, chat, texts)
        assert all(a is not None for a in answers)
        for k, text in enumerate(texts):
            assert prompts_for(slow_llm, text) == [conversation(texts, answers, k)], text
        # the user saw each message answered once, by its own answer
        assert [a["content"] for a in answers if a] == [f"Echo: {t}" for t in texts]
        # and it was a burst: every question was journaled before the first reply
        order = await gateway.store.db.fetchone(
            "SELECT MAX(CASE WHEN direction='in' THEN id END) AS last_question,"
            " MIN(CASE WHEN direction='out' THEN id END) AS first_reply"
            " FROM messages WHERE chat=?", (str(chat),))
        assert order is not None and order["last_question"] < order["first_reply"]


async def test_unanswered_messages_are_left_out_until_they_are_answered(
        make_gateway: Any, telegram: FakeTelegram, slow_llm: FakeOpenAI) -> None:
    """A message whose answer failed (the user got a notice) is not in later prompts: shown
    alone it would be answered again by the next reply. Retried, it is answered from the
    conversation before it, and from then on sits in its place with its reply."""
    gateway = await start(make_gateway, telegram, slow_llm)
    slow_llm.faults.extend([None, Fault(status=500)])  # type: ignore[list-item]
    texts = ["first", "second fails", "third", "fourth"]
    answers = await burst(gateway, telegram, 2001, texts)
    assert answers[1] is None and all(answers[i] for i in (0, 2, 3))
    for k in (0, 2, 3):
        assert prompts_for(slow_llm, texts[k])[-1] == conversation(texts, answers, k)

    row = await gateway.store.db.fetchone(
        "SELECT id FROM messages WHERE direction='in' AND text='second fails'")
    assert row is not None and await gateway.retry(row["id"])
    await eventually(lambda: _replied(gateway, row["id"]), timeout=30)
    assert prompts_for(slow_llm, "second fails")[-1] == conversation(texts, answers, 1)

    texts.append("fifth")
    await burst(gateway, telegram, 2001, texts[-1:])
    full = await _conversation_of(gateway, 2001)
    assert prompts_for(slow_llm, "fifth") == [
        [*[turn for q, a in full[:-1] for turn in (user(q), a)], user("fifth")]]
    assert [q for q, _ in full] == texts


async def test_reset_inside_a_burst_forgets_only_what_came_before_it(
        make_gateway: Any, telegram: FakeTelegram, slow_llm: FakeOpenAI) -> None:
    gateway = await start(make_gateway, telegram, slow_llm)
    texts = ["my name is Ann", "/reset", "my name is Bob", "what is my name?"]
    answers = await burst(gateway, telegram, 3001, texts)
    assert answers[1] is not None and "forgotten" in answers[1]["content"]
    assert prompts_for(slow_llm, texts[0]) == [[user(texts[0])]]
    assert prompts_for(slow_llm, texts[2]) == [[user(texts[2])]]
    assert prompts_for(slow_llm, texts[3]) == [conversation(texts, answers, 3, start=2)]
    assert sum(SUMMARY_MARK not in b["messages"][0]["content"] for b in slow_llm.requests) == 3


async def test_older_turns_of_a_burst_are_summarised_in_conversation_order(
        make_gateway: Any, telegram: FakeTelegram, slow_llm: FakeOpenAI) -> None:
    """With a small budget the older exchanges are folded into the summary mid-burst: each
    summary request holds whole exchanges in order, picking up where the last one stopped,
    and each prompt holds every exchange after the summary, none before it."""

    def responder(messages: list[dict[str, Any]]) -> str:
        if SUMMARY_MARK in messages[0]["content"]:
            folded = re.findall(r"^User: message (\d+)", messages[-1]["content"], re.M)
            return f"SUMMARY-{folded[-1]}"
        return echo(messages)

    slow_llm.responder = responder
    gateway = await start(make_gateway, telegram, slow_llm, history_tokens=600,
                          system_prompt="Be brief.")
    texts = [f"message {n}{PADDING}" for n in range(1, 13)]
    answers = await burst(gateway, telegram, 4001, texts)
    assert all(a is not None for a in answers)

    summarised = 0
    summaries = 0
    for body in slow_llm.requests:
        system = body["messages"][0]["content"]
        if SUMMARY_MARK in system:
            transcript = body["messages"][-1]["content"].split(
                "New part of the conversation:\n", 1)[1].split("\n\nUpdated summary:", 1)[0]
            upto = int(re.findall(r"^User: message (\d+)", transcript, re.M)[-1])
            expected = [f"{'User' if t['role'] == 'user' else 'Assistant'}: {t['content']}"
                        for t in conversation(texts, answers, upto, start=summarised)[:-1]]
            assert transcript.split("\n") == expected
            summarised = upto
            summaries += 1
            continue
        k = texts.index(body["messages"][-1]["content"])
        match = re.search(r"SUMMARY-(\d+)$", system)
        start_at = int(match.group(1)) if match else 0
        assert start_at == summarised <= k
        assert body["messages"][1:] == conversation(texts, answers, k, start=start_at)
    assert summaries >= 1 and summarised > 0


async def _replied(gateway: Gateway, journal_id: int) -> bool:
    row = await gateway.store.journal.get(journal_id)
    return row is not None and row.status == "replied"


async def _conversation_of(gateway: Gateway, chat: int) -> list[tuple[str, Turn]]:
    """Every answered question of ``chat`` in question order, with its latest reply."""
    rows = await gateway.store.db.fetchall(
        "SELECT id, text FROM messages WHERE direction='in' AND chat=? AND status='replied'"
        " ORDER BY id", (str(chat),))
    out: list[tuple[str, Turn]] = []
    for row in rows:
        reply = await gateway.store.journal.reply_of(row["id"])
        assert reply is not None
        out.append((row["text"], {"role": "assistant", "content": reply.text}))
    return out


async def test_a_question_answered_twice_shows_only_its_latest_reply(store: Store) -> None:
    """History pairs by ``reply_to``, so a question with two replies (an answer delivered
    again) is one exchange, not a question followed by two answers."""
    address = Address("local", "c1")
    first = await store.journal.submit(Inbound(address, platform_id="m1", text="question"))
    for text in ("old answer", "new answer"):
        out = await store.journal.add_outbound(first.journal_id, address, text)
        await store.journal.complete_reply(out, first.journal_id, ["p"])
    later = await store.journal.submit(Inbound(address, platform_id="m2", text="next"))
    history = await store.journal.history(address.key, before_id=later.journal_id)
    assert [(t.role, t.text, t.inbound_id) for t in history] == [
        ("assistant", "new answer", first.journal_id), ("user", "question", first.journal_id)]
