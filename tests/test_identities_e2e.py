"""One person, one memory, end to end: the real Telegram connector (python-telegram-bot)
against the fake Bot API, the real Slack connector (slack-sdk, Socket Mode) against the fake
Slack, the local chat channel, and the fake OpenAI API, through a real gateway on SQLite.

What the model knows is read off the fake's requests: the system prompt carries the
long-term memory, and a ``recall_notes`` result is the tool message it was sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyclaw_app.agent import Agent
from pyclaw_app.agent.memory import PERSON_MEMORY_HEADER
from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.control.chat import ask
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from pyclaw_app.store.identities import LINK_CODE_TTL, MAX_WRONG_CODES
from tests.conftest import provider_section
from tests.contract.harness_slack import SlackHarness
from tests.contract.harness_telegram import GROUP_CHAT, TelegramHarness
from tests.fakes.openai_api import FakeOpenAI, FakeReply, FakeToolCall
from tests.support import eventually
from tests.test_cli import run_cli

WAIT = 20.0
ANN_TG = "1001"  # Ann's Telegram DM: in a private chat the sender is the chat's user
ANN_SLACK_DM, ANN_SLACK = "D0001", "U0001"
TG_GROUP = str(GROUP_CHAT)
SLACK_GROUP = "C0100"
SUMMARY_PROMPT = "You maintain the memory"
CODE_WORDS = "Your link code: "


def last_user(messages: list[dict[str, Any]]) -> str:
    return next(str(m["content"]) for m in reversed(messages) if m["role"] == "user")


def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
    """A model that saves notes ("remember ..."), recalls them ("recall"), summarises when
    asked to compact, and otherwise echoes."""
    if str(messages[0]["content"]).startswith(SUMMARY_PROMPT):
        return "SUMMARY: Ann is planning a trip to Lisbon in May."
    results = [m for m in messages if m["role"] == "tool"]
    if results:
        return "Tool said: " + str(results[-1]["content"])
    text = last_user(messages)
    if text.startswith("remember "):
        return FakeReply(tool_calls=[FakeToolCall("save_note", {"text": text[9:]})])
    if text.startswith("recall"):
        return FakeReply(tool_calls=[FakeToolCall("recall_notes", {})])
    if text.startswith("forget "):
        return FakeReply(tool_calls=[FakeToolCall("delete_note", {"id": int(text[7:])})])
    return f"Echo: {text[:40]}"


class WallClock:
    """The agent's clock: link codes expire by it, so the test moves time, not waits."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


Start = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start(tmp_path: Path, telegram: TelegramHarness, slack: SlackHarness,
                fake_llm: FakeOpenAI, clock: WallClock) -> AsyncIterator[Start]:
    """Gateways on one data dir with Telegram, Slack and local chat online; each is stopped
    at teardown (or by the test, to restart)."""
    fake_llm.responder = responder
    running: list[tuple[Gateway, Store]] = []

    async def factory(**agent: Any) -> Gateway:
        common = {"rate_limit_per_minute": 0, "dm_policy": "open", "group_policy": "open",
                  "stream_replies": False}
        config = {
            "providers": [provider_section(fake_llm)],
            "agent": agent,
            "channels": {
                "telegram": {"type": "telegram", **common, **telegram.channel_config()},
                "slack": {"type": "slack", **common, **slack.channel_config()},
                "local": {"type": "local"},
            }}
        path = tmp_path / f"pyclaw-{len(running)}.yaml"
        path.write_text(yaml.safe_dump(config), "utf-8")
        data = tmp_path / "data"
        loaded = load_config(path, FileSecretStore(data / "secrets.json"))
        store = await Store(data).open()
        gateway = Gateway(loaded, store, Bus(), agent=Agent.from_config(loaded, store, now=clock))
        await gateway.start()
        running.append((gateway, store))
        for name in ("telegram", "slack", "local"):
            await eventually(lambda n=name: gateway.channels[n].state == ChannelState.ONLINE,
                             timeout=WAIT)
        return gateway

    yield factory
    for gateway, store in reversed(running):
        await gateway.stop()
        await store.close()


class People:
    """Ann (and Bob) talking to the gateway; each call waits for the answer and returns it."""

    def __init__(self, gateway: Gateway, telegram: TelegramHarness, slack: SlackHarness,
                 llm: FakeOpenAI) -> None:
        self.gateway = gateway
        self.telegram = telegram
        self.slack = slack
        self.llm = llm

    async def _answer(self, platform_id: str, channel: str) -> str:
        async def reply() -> str | None:
            row = await self.gateway.store.db.fetchone(
                "SELECT o.text FROM messages i JOIN messages o ON o.reply_to=i.id"
                " AND o.direction='out' WHERE i.direction='in' AND i.channel=?"
                " AND i.platform_id=? AND i.status IN ('replied', 'skipped', 'failed')"
                " ORDER BY o.id DESC LIMIT 1", (channel, platform_id))
            return None if row is None else str(row["text"])

        text = await eventually(reply, timeout=WAIT)
        await self.gateway.lanes.join()
        return str(text)

    async def telegram_dm(self, text: str, chat: str = ANN_TG) -> str:
        pid = await self.telegram.inject_message(chat, text)
        answer = await self._answer(pid, "telegram")
        assert answer in self.telegram.visible(chat)  # it reached the platform
        return answer

    async def telegram_group(self, text: str, sender: int = int(ANN_TG)) -> str:
        handle = f"@{self.telegram.fake.username} {text}"
        message = self.telegram.fake.inject_message(
            GROUP_CHAT, handle, sender=sender,
            entities=self.telegram.fake.mention_entities(handle))
        return await self._answer(f"{GROUP_CHAT}:{message['message_id']}", "telegram")

    async def slack_dm(self, text: str, chat: str = ANN_SLACK_DM, user: str = ANN_SLACK
                       ) -> str:
        payload = self.slack.fake.message_event(chat, text, user=user)
        await self.slack.fake.deliver(payload)
        answer = await self._answer(f"{chat}:{payload['event']['ts']}", "slack")
        assert answer in self.slack.visible(chat)
        return answer

    async def slack_group(self, text: str, user: str = ANN_SLACK) -> str:
        payload = self.slack.fake.app_mention_event(SLACK_GROUP, text, user=user)
        await self.slack.fake.deliver(payload)
        return await self._answer(f"{SLACK_GROUP}:{payload['event']['ts']}", "slack")

    async def local(self, text: str, sender: str = "ann-local") -> str:
        return await ask(self.gateway, text, chat="ann", sender=sender, timeout=WAIT)

    def system_prompt(self) -> str:
        """What the model was last told about memory, for the last answer it wrote."""
        return str(self.llm.requests[-1]["messages"][0]["content"])

    def tool_results(self) -> list[str]:
        return [str(m["content"]) for m in self.llm.requests[-1]["messages"]
                if m["role"] == "tool"]


def code_in(answer: str) -> str:
    assert CODE_WORDS in answer, answer
    return answer.split(CODE_WORDS, 1)[1].split()[0]


@pytest.fixture
async def people(start: Start, telegram: TelegramHarness, slack: SlackHarness,
                 fake_llm: FakeOpenAI) -> People:
    return People(await start(), telegram, slack, fake_llm)


async def link_telegram_to_slack(people: People) -> str:
    code = code_in(await people.telegram_dm("/link"))
    answer = await people.slack_dm(f"/link {code}")
    assert answer.startswith("Linked: you are also"), answer
    return code


# ---- linking by code ------------------------------------------------------------------------


async def test_a_note_from_telegram_is_known_in_slack_after_linking_and_not_before(
        people: People, fake_llm: FakeOpenAI) -> None:
    saved = await people.telegram_dm("remember my cat is called Miso")
    assert saved.startswith("Tool said: saved as note")

    # Before linking: Slack's Ann is another person to the assistant.
    await people.slack_dm("hello")
    assert "Miso" not in people.system_prompt()
    assert await people.slack_dm("recall") == "Tool said: no notes found"

    requests_before = len(fake_llm.requests)
    code = await link_telegram_to_slack(people)
    assert len(fake_llm.requests) == requests_before  # /link is answered without the LLM
    assert len(code) == 8

    await people.slack_dm("what is my cat called?")
    system = people.system_prompt()
    assert PERSON_MEMORY_HEADER in system and "my cat is called Miso" in system
    recalled = json.loads((await people.slack_dm("recall")).removeprefix("Tool said: "))
    assert [n["text"] for n in recalled] == ["my cat is called Miso"]
    # each conversation keeps its own recent history: Slack's prompt has none of Telegram's
    history = [m["content"] for m in fake_llm.requests[-2]["messages"][1:]]
    assert "remember my cat is called Miso" not in history
    assert "hello" in history

    # and the other way round: a note saved in Slack is known on Telegram
    await people.slack_dm("remember I like green tea")
    await people.telegram_dm("hi again")
    assert "I like green tea" in people.system_prompt()
    assert "my cat is called Miso" in people.system_prompt()


async def test_unlink_separates_the_memories_again(people: People) -> None:
    await people.telegram_dm("remember my cat is called Miso")
    await link_telegram_to_slack(people)
    await people.slack_dm("remember I like green tea")

    answer = await people.slack_dm("/unlink")
    assert answer.startswith("Unlinked from") and ANN_TG in answer
    await people.slack_dm("hello")
    assert "Miso" not in people.system_prompt()
    assert "green tea" in people.system_prompt()  # a note stays with the account that made it
    await people.telegram_dm("hello")
    assert "Miso" in people.system_prompt() and "green tea" not in people.system_prompt()
    assert await people.slack_dm("/unlink") == "This account is not linked with any other."
    assert await people.gateway.store.identities.list_all() == []


async def test_a_code_works_once_and_expires(people: People, clock: WallClock) -> None:
    await people.telegram_dm("remember my cat is called Miso")
    first = code_in(await people.telegram_dm("/link"))
    assert code_in(await people.telegram_dm("/link")) == first  # the pending code, again

    # expired: ten minutes later nobody can use it
    clock.advance(LINK_CODE_TTL + 1)
    assert "expired" in await people.slack_dm(f"/link {first}")
    await people.slack_dm("hello")
    assert "Miso" not in people.system_prompt()

    # a new one works (typed in lower case, with a space), once
    second = code_in(await people.telegram_dm("/link"))
    assert second != first
    spaced = f"{second[:4].lower()} {second[4:].lower()}"
    assert (await people.slack_dm(f"/link {spaced}")).startswith("Linked:")
    bob = await people.slack_dm(f"/link {second}", chat="D0002", user="U0002")
    assert "already used" in bob
    await people.slack_dm("hello", chat="D0002", user="U0002")
    assert "Miso" not in people.system_prompt()  # Bob got nothing of Ann's
    # Ann's own code, sent back from Telegram, goes nowhere
    third = code_in(await people.telegram_dm("/link"))
    assert "other* account" in await people.telegram_dm(f"/link {third}")


async def test_wrong_codes_are_rate_limited_even_when_the_next_one_is_right(
        people: People, clock: WallClock) -> None:
    real = code_in(await people.telegram_dm("/link"))
    for attempt in range(MAX_WRONG_CODES):
        wrong = f"WRONG{attempt:03d}"
        assert "isn't a valid link code" in await people.slack_dm(f"/link {wrong}")
    # the limit holds even for the right code: guessing must not pay off
    assert "Too many wrong link codes" in await people.slack_dm(f"/link {real}")
    assert await people.gateway.store.identities.list_all() == []
    # another account is not limited by Ann's mistakes
    assert "isn't a valid" in await people.slack_dm("/link NOPE", chat="D0002", user="U0002")
    # an hour later Ann may try again (her code expired meanwhile: she gets a new one)
    clock.advance(3601)
    fresh = code_in(await people.telegram_dm("/link"))
    assert (await people.slack_dm(f"/link {fresh}")).startswith("Linked:")


# ---- groups never see direct-message memory --------------------------------------------------


async def test_a_group_never_sees_a_persons_dm_notes(people: People) -> None:
    await people.telegram_dm("remember my salary is 5000")
    await link_telegram_to_slack(people)
    await people.slack_dm("remember my doctor is Dr. Who")

    # Ann in a Telegram group: the prompt and the tools show only the group's memory
    await people.telegram_group("what do you know about me?")
    system = people.system_prompt()
    assert "salary" not in system and "doctor" not in system
    assert PERSON_MEMORY_HEADER not in system
    assert await people.telegram_group("recall") == "Tool said: no notes found"
    # the same in a Slack channel, on the linked account
    await people.slack_group("anything about me?")
    assert "salary" not in people.system_prompt() and "doctor" not in people.system_prompt()
    assert await people.slack_group("recall") == "Tool said: no notes found"

    # a note made in the group belongs to the group: everyone there sees it ...
    assert (await people.telegram_group("remember standup is at 10")).startswith(
        "Tool said: saved as note")
    await people.telegram_group("when is standup?", sender=2002)
    assert "standup is at 10" in people.system_prompt()
    # ... and no DM does, nor another group (Slack's channel is another group)
    await people.telegram_dm("hello")
    assert "standup" not in people.system_prompt() and "salary" in people.system_prompt()
    await people.slack_group("hello")
    assert "standup" not in people.system_prompt()
    # a DM note cannot be deleted from a group either
    row = await people.gateway.store.db.fetchone(
        "SELECT id FROM notes WHERE text='my salary is 5000'")
    assert row is not None
    assert await people.telegram_group(f"forget {row['id']}") == \
        f"Tool said: error: there is no note {row['id']} here"
    rows = await people.gateway.store.db.fetchall("SELECT text, chat FROM notes ORDER BY id")
    assert [(r["text"], r["chat"]) for r in rows] == [
        ("my salary is 5000", None), ("my doctor is Dr. Who", None),
        ("standup is at 10", TG_GROUP)]


async def test_link_codes_are_never_given_or_taken_in_a_group(people: People) -> None:
    answer = await people.telegram_group("/link")
    assert CODE_WORDS not in answer and "direct message" in answer
    code = code_in(await people.telegram_dm("/link"))
    # someone pastes Ann's code in a group: it is voided, so no group member can use it
    assert "no longer works" in await people.slack_group(f"/link {code}", user="U0009")
    assert "already used" in await people.slack_dm(f"/link {code}", chat="D0009",
                                                   user="U0009")
    assert await people.gateway.store.identities.list_all() == []


# ---- the person's summary, local chat, restart, CLI and the control plane --------------------


async def test_a_long_telegram_chat_summary_reaches_slack_but_not_a_group(
        start: Start, telegram: TelegramHarness, slack: SlackHarness,
        fake_llm: FakeOpenAI) -> None:
    people = People(await start(history_tokens=400), telegram, slack, fake_llm)
    await link_telegram_to_slack(people)
    for i in range(10):  # long messages overflow the small budget: the chat is compacted
        await people.telegram_dm(f"message {i}: " + "about my trip to Lisbon " * 8)
    assert any(SUMMARY_PROMPT in str(r["messages"][0]["content"]) for r in fake_llm.requests)

    await people.slack_dm("where am I going?")
    system = people.system_prompt()
    assert "Earlier conversations with them:" in system
    assert "- on telegram: SUMMARY: Ann is planning a trip to Lisbon" in system
    await people.telegram_group("where is Ann going?")
    assert "Lisbon" not in people.system_prompt()
    # /reset forgets the conversation, also for the other accounts
    assert (await people.telegram_dm("/reset")).startswith("Done")
    await people.slack_dm("and now?")
    assert "Lisbon" not in people.system_prompt()


async def test_local_chat_links_with_telegram(people: People) -> None:
    code = code_in(await people.local("/link"))
    assert (await people.telegram_dm(f"/link {code}")).startswith("Linked: you are also")
    assert (await people.local("remember my bike is red")).startswith("Tool said: saved")
    await people.telegram_dm("what colour is my bike?")
    assert "my bike is red" in people.system_prompt()


async def test_a_restart_keeps_links_and_the_cli_manages_them(
        start: Start, telegram: TelegramHarness, slack: SlackHarness, fake_llm: FakeOpenAI,
        tmp_path: Path) -> None:
    gateway = await start()
    people = People(gateway, telegram, slack, fake_llm)
    await people.telegram_dm("remember my cat is called Miso")
    await link_telegram_to_slack(people)
    await gateway.stop()

    people.gateway = await start()
    await people.slack_dm("what is my cat called?")
    assert "my cat is called Miso" in people.system_prompt()

    data = str(tmp_path / "data")
    status, out, err = await run_cli("identities", "--data-dir", data, "list")
    assert status == 0, err
    assert "telegram 1001" in out and "slack U0001" in out and "via code" in out
    status, out, err = await run_cli("identities", "--data-dir", data, "unlink", "slack",
                                     ANN_SLACK)
    assert status == 0 and "unlinked" in out, err
    await people.slack_dm("and now?")
    assert "Miso" not in people.system_prompt()  # beside the running gateway, at once
    status, out, err = await run_cli("identities", "--data-dir", data, "link", "slack",
                                     ANN_SLACK, "telegram", ANN_TG)
    assert status == 0 and "linked: person" in out, err
    await people.slack_dm("and now?")
    assert "Miso" in people.system_prompt()
    status, _, err = await run_cli("identities", "--data-dir", data, "unlink", "slack",
                                   "U9999")
    assert status == 1 and "not linked" in err


async def test_the_control_plane_shows_one_persons_conversations_across_channels(
        people: People, tmp_path: Path) -> None:
    await people.telegram_dm("hello from telegram")
    await people.slack_dm("hello from slack")
    await people.slack_dm("bob here", chat="D0002", user="U0002")
    await link_telegram_to_slack(people)
    await people.telegram_group("hello group")
    await people.telegram_group("someone else", sender=2002)
    plane = LocalControlPlane(people.gateway, FileSecretStore(tmp_path / "s.json"))

    (ann,) = await plane.people()
    assert {(a.channel, a.sender_id) for a in ann.accounts} == {("telegram", ANN_TG),
                                                                ("slack", ANN_SLACK)}
    assert ann.name == "User1001"  # the name Telegram gave, first linked
    detail = await plane.person_detail(ann.id)
    assert detail is not None
    chats = {(c.channel, c.chat, c.is_group) for c in detail.conversations}
    assert chats == {("telegram", ANN_TG, False), ("slack", ANN_SLACK_DM, False),
                     ("telegram", TG_GROUP, True)}
    texts = [t.text for t in detail.traffic]
    assert "hello from telegram" in texts and "hello from slack" in texts
    assert "Echo: hello from slack" in texts and "hello group" in texts
    assert "bob here" not in texts and "someone else" not in texts  # not Ann's
    replies = [t for t in detail.traffic if t.direction == "out"]
    assert replies and all(r.reply_to_id is not None and r.latency_ms is not None
                           for r in replies)
    assert [t.id for t in detail.traffic] == sorted((t.id for t in detail.traffic),
                                                    reverse=True)
    assert await plane.person_detail(ann.id + 99) is None

    # the owner links and unlinks from the panel
    bob = await plane.link_accounts("slack", "U0002", "local", "bob-local")
    assert {a.via for a in bob.accounts} == {"owner"}
    assert bob.name == "user-u0002"  # the name the journal last saw for U0002 (Slack's)
    assert len(await plane.people()) == 2
    assert await plane.unlink_account("local", "bob-local") is True
    assert await plane.unlink_account("local", "bob-local") is False
    with pytest.raises(ValueError, match="itself"):
        await plane.link_accounts("slack", "U0002", "slack", "U0002")
