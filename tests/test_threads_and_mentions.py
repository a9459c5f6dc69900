"""Groups and threads as people use them (issue 19), checked against the platforms' own
payload shapes, each test naming where its payload comes from.

The rules live once in the kit: a follow-up in a thread the bot answered in is a reply to
the bot (``policy.may_follow_up`` + the journal), and the text the model reads is cut and
rendered by ``pyclaw_app/channels/mentions.py``. The end-to-end tests run the real SDKs
(slack-sdk, discord.py, python-telegram-bot) against the fakes, through a real gateway,
and restart it to show that the bot remembers its threads.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.discord._parse import parse_message_create
from connectors.slack._parse import BotIdentity as SlackBot
from connectors.slack._parse import parse_event, readable_text
from connectors.telegram._parse import BotIdentity as TelegramBot
from connectors.telegram._parse import describe_skip, parse_update
from pyclaw_app.channels.mentions import addressed_text
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState, Inbound
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness import PlatformHarness
from tests.contract.harness_discord import DiscordHarness
from tests.contract.harness_slack import SlackHarness
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes import discord_payloads as dp
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually

WAIT = 20.0

# ---- the kit's text rule ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("<@B> hi", "hi"),
    ("<@B>, what is the time?", "what is the time?"),
    ("<@B>: hi", "hi"),
    ("what is the time <@B>?", "what is the time?"),
    ("thanks <@B>", "thanks"),
    ("ask <@B> about it", "ask <@B> about it"),  # inside the sentence: part of what was said
    ("<@B>", "@pyclaw"),  # only the call: the model reads the mention, not an empty text
    ("  <@B>  ", "@pyclaw"),
    ("no mention at all", "no mention at all"),
])
def test_the_bots_address_is_cut_where_people_put_it(text: str, expected: str) -> None:
    assert addressed_text(text, re.escape("<@B>"), bot_name="pyclaw") == expected


# ---- Slack --------------------------------------------------------------------------------

SLACK_BOT = SlackBot(user_id="U0LAN0Z89", bot_id="B0LAN0Z89", name="pyclaw")


def test_slack_app_mention_from_the_docs_reads_without_the_mention() -> None:
    """The example of docs.slack.dev/reference/events/app_mention, as delivered."""
    payload = {"type": "event_callback", "event_id": "Ev0LAN670R", "event": {
        "type": "app_mention", "user": "U061F7AUR",
        "text": "<@U0LAN0Z89> is it everything a river should be?",
        "ts": "1515449522.000016", "channel": "C123ABC456", "event_ts": "1515449522000016"}}
    inbound = parse_event(payload, channel="slack", bot=SLACK_BOT)
    assert isinstance(inbound, Inbound)
    assert inbound.text == "is it everything a river should be?"
    assert inbound.mentioned and inbound.is_group


def test_a_slack_message_that_is_only_the_mention_is_kept_as_a_call() -> None:
    payload = {"type": "event_callback", "event": {
        "type": "app_mention", "user": "U061F7AUR", "text": "<@U0LAN0Z89>",
        "ts": "1515449522.000016", "channel": "C123ABC456"}}
    inbound = parse_event(payload, channel="slack", bot=SLACK_BOT)
    assert isinstance(inbound, Inbound) and inbound.text == "@pyclaw"


@pytest.mark.parametrize(("markup", "shown"), [
    # docs.slack.dev/messaging/formatting-message-text: the forms a retrieved message holds
    ("Hey <@U0G9QF9C6>, thanks!", "Hey @Ann, thanks!"),
    ("Hey <@U024BE7LH>", "Hey @U024BE7LH"),  # nobody could name this one
    ("see <#C024BE7LR|general>", "see #general"),
    ("<!here> deploy is done", "@here deploy is done"),
    ("<!channel> <!everyone>", "@channel @everyone"),
    ("ask <!subteam^SAZ94GDB8|@ops>", "ask @ops"),
    ("<!date^1392734382^Posted {date_num} {time_secs}|Posted 2014-02-18 6:39:42 AM PST>",
     "Posted 2014-02-18 6:39:42 AM PST"),
    ("read <http://www.example.com|This message *is* a link>",
     "read This message *is* a link (http://www.example.com)"),
    ("<https://example.com>", "https://example.com"),
    ("mail <mailto:bob@example.com|Bob>", "mail Bob (bob@example.com)"),
    ("a &lt; b &amp;&amp; c &gt; d", "a < b && c > d"),
])
def test_slack_markup_reads_as_the_user_saw_it(markup: str, shown: str) -> None:
    assert readable_text(markup, {"U0G9QF9C6": "Ann"}) == shown


def test_slack_mentions_are_named_from_the_users_the_connector_looked_up() -> None:
    payload = {"type": "event_callback", "event": {
        "type": "app_mention", "user": "U061F7AUR", "channel": "C123ABC456",
        "text": "<@U0LAN0Z89> ask <@U0G9QF9C6> and <@U0LAN0Z89> about <#C024BE7LR|general>",
        "ts": "1515449522.000016"}}
    inbound = parse_event(payload, channel="slack", bot=SLACK_BOT, names={"U0G9QF9C6": "Ann"})
    assert isinstance(inbound, Inbound)
    assert inbound.text == "ask @Ann and @pyclaw about #general"


# ---- Discord ------------------------------------------------------------------------------

DISCORD_BOT = "1139201101203771502"

DOCS_MESSAGE: dict[str, Any] = {
    # "Example Message" of discord.com/developers/docs/resources/message, in a guild, with
    # the MESSAGE_CREATE extra fields (guild_id, member, mentions[].member) of
    # discord.com/developers/docs/events/gateway-events#message-create
    "reactions": [], "attachments": [], "tts": False, "embeds": [],
    "timestamp": "2017-07-11T17:27:07.299000+00:00", "mention_everyone": False,
    "id": "334385199974967042", "pinned": False, "edited_timestamp": None,
    "author": {"username": "Mason", "discriminator": "9999", "id": "53908099506183680",
               "avatar": "a_bab14f271d565501444b2ca3be944b25"},
    "mention_roles": ["41771983423143936"], "content": "Supa Hot",
    "channel_id": "290926798999357250", "mentions": [], "type": 0,
    "guild_id": "197038439483310086", "member": {"roles": [], "nick": None},
}


def discord_message(content: str, mentions: list[dict[str, Any]]) -> dict[str, Any]:
    return {**copy.deepcopy(DOCS_MESSAGE), "content": content, "mentions": mentions}


def test_discord_mentions_channels_and_emoji_read_as_the_user_saw_them() -> None:
    bot = {"id": DISCORD_BOT, "username": "pyclaw", "bot": True,
           "member": {"roles": [], "nick": None}}
    ann = {"id": "80351110224678912", "username": "nelly", "global_name": "Nelly",
           "member": {"roles": [], "nick": "Nell"}}  # the guild nickname is what people see
    bob = {"id": "80351110224678913", "username": "bob", "global_name": None}
    data = discord_message(
        f"<@{DISCORD_BOT}> ask <@!80351110224678912> and <@80351110224678913> in "
        "<#290926798999357250> with <@&41771983423143936> <:Supa:41771983423143937> "
        "<a:dance:41771983423143938> </ask:41771983423143939> at <t:1499793600:R>",
        [bot, ann, bob])
    inbound = parse_message_create(data, channel="discord", bot_id=DISCORD_BOT,
                                   bot_name="pyclaw",
                                   names={"#290926798999357250": "general",
                                          "&41771983423143936": "Moderators"})
    assert inbound is not None and inbound.mentioned
    assert inbound.text == ("ask @Nell and @bob in #general with @Moderators :Supa: :dance: "
                            "/ask at 2017-07-11 17:20 UTC")


def test_a_discord_message_that_is_only_the_mention_is_kept_as_a_call() -> None:
    bot = {"id": DISCORD_BOT, "username": "pyclaw", "bot": True}
    inbound = parse_message_create(discord_message(f"<@{DISCORD_BOT}>", [bot]),
                                   channel="discord", bot_id=DISCORD_BOT, bot_name="pyclaw")
    assert inbound is not None and inbound.text == "@pyclaw"


# ---- Telegram -----------------------------------------------------------------------------

TG_BOT = TelegramBot(id=5000000001, username="PyclawBot")


def telegram_group_message(**fields: Any) -> dict[str, Any]:
    """A supergroup Message shaped as core.telegram.org/bots/api#message documents it."""
    return {"update_id": 10000, "message": {
        "message_id": 1365, "date": 1441645532,
        "from": {"id": 1111111, "is_bot": False, "first_name": "Ann", "username": "ann"},
        "chat": {"id": -1001234567890, "title": "Our group", "type": "supergroup"},
        **fields}}


@pytest.mark.parametrize(("text", "entities", "expected"), [
    ("@pyclawbot hello", [{"type": "mention", "offset": 0, "length": 10}], "hello"),
    ("hello @PyclawBot", [{"type": "mention", "offset": 6, "length": 10}], "hello"),
    ("/help@PyclawBot", [{"type": "bot_command", "offset": 0, "length": 15}], "/help"),
    ("/start@PyclawBot now", [{"type": "bot_command", "offset": 0, "length": 16}],
     "/start now"),
    ("@PyclawBot", [{"type": "mention", "offset": 0, "length": 10}], "@PyclawBot"),
    ("ask @PyclawBot about it", [{"type": "mention", "offset": 4, "length": 10}],
     "ask @PyclawBot about it"),
])
def test_telegram_cuts_the_bots_handle_like_every_channel(
        text: str, entities: list[dict[str, Any]], expected: str) -> None:
    inbound = parse_update(telegram_group_message(text=text, entities=entities),
                           channel="tg", bot=TG_BOT)
    assert inbound is not None and inbound.mentioned
    assert inbound.text == expected


@pytest.mark.parametrize(("fields", "named"), [
    # Dice and Poll objects as core.telegram.org/bots/api#dice and #poll define them
    ({"dice": {"emoji": "🎲", "value": 4}}, "a dice roll"),
    ({"poll": {"id": "5296261418404552705", "question": "Lunch?",
               "options": [{"text": "Pizza", "voter_count": 0},
                           {"text": "Sushi", "voter_count": 0}],
               "total_voter_count": 0, "is_closed": False, "is_anonymous": True,
               "type": "regular", "allows_multiple_answers": False}}, "a poll"),
    ({"new_chat_members": [{"id": 2, "is_bot": False, "first_name": "Bo"}],
      "new_chat_member": {"id": 2, "is_bot": False, "first_name": "Bo"}}, "members joining"),
    ({"pinned_message": {"message_id": 1, "date": 0, "chat": {"id": -1, "type": "group"}}},
     "a pinned message"),
])
def test_telegram_names_what_it_skipped(fields: dict[str, Any], named: str) -> None:
    update = telegram_group_message(**fields)
    assert parse_update(update, channel="tg", bot=TG_BOT) is None
    assert describe_skip(update) == (
        "info", f"skipped a Telegram message with no text or media: {named}")


# ---- follow-ups in the bot's threads, end to end ------------------------------------------


async def online(harness: PlatformHarness, llm: FakeOpenAI, make_gateway: GatewayFactory,
                 data_dir: Path) -> Gateway:
    name = harness.type_name
    gateway = await make_gateway({
        "providers": [provider_section(llm)],
        "channels": {name: {"type": name, "rate_limit_per_minute": 0, "group_policy": "open",
                            **harness.channel_config()}}},
        data_dir=data_dir)
    await eventually(lambda: gateway.channels[name].state == ChannelState.ONLINE, timeout=WAIT)
    return gateway


async def settled(gateway: Gateway, platform_id: str) -> str | None:
    """The journal status once the gateway is done with a message (None: never stored)."""
    await gateway.lanes.join()
    row = await gateway.store.db.fetchone(
        "SELECT status FROM messages WHERE direction='in' AND platform_id=?", (platform_id,))
    return None if row is None else str(row["status"])


async def answered(gateway: Gateway, platform_id: str) -> None:
    async def done() -> bool:
        return await settled(gateway, platform_id) == "replied"

    await eventually(done, timeout=WAIT)


Inject = Callable[[str], Awaitable[str]]


async def follow_ups_are_answered(
        harness: PlatformHarness, llm: FakeOpenAI, make_gateway: GatewayFactory,
        data_dir: Path, *, call: Inject, follow_up: Inject, elsewhere: Inject,
        replied_in_thread: Callable[[], bool]) -> None:
    """The shared story: the bot is called, answers in the thread; a follow-up there without
    a mention is answered, one in another thread is not; after a restart it still is."""
    gateway = await online(harness, llm, make_gateway, data_dir)
    await answered(gateway, await call("what is the time?"))
    assert replied_in_thread()

    await answered(gateway, await follow_up("and the date?"))
    other = await elsewhere("just chatting among ourselves")
    await eventually(lambda: len(llm.requests) == 2, timeout=WAIT)
    assert await settled(gateway, other) is None  # not stored: chatter not for the bot
    await gateway.stop()

    again = await online(harness, llm, make_gateway, data_dir)
    await answered(again, await follow_up("one more thing"))
    assert [r["messages"][-1]["content"] for r in llm.requests] == [
        "what is the time?", "and the date?", "one more thing"]


async def test_slack_a_follow_up_in_the_bots_thread_is_answered(
        slack: SlackHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    fake, chat, user = slack.fake, slack.group_chat(), "U061F7AUR"
    root: dict[str, str] = {}

    async def call(text: str) -> str:
        payload = fake.app_mention_event(chat, text, user=user)
        root["ts"] = payload["event"]["ts"]
        await fake.deliver(payload)
        return f"{chat}:{root['ts']}"

    async def reply_in(thread_ts: str, text: str) -> str:
        # A threaded reply as docs.slack.dev/reference/methods/conversations.replies shows
        # it ("one island"), delivered as a message.channels event: its parent is the
        # user's message, not the bot's, and the bot is not mentioned.
        ts = fake.next_ts()
        event = {"type": "message", "user": user, "text": text, "thread_ts": thread_ts,
                 "parent_user_id": user, "ts": ts, "channel": chat,
                 "channel_type": "channel", "event_ts": ts}
        await fake.deliver(fake.event_callback(event))
        return f"{chat}:{ts}"

    async def follow_up(text: str) -> str:
        return await reply_in(root["ts"], text)

    async def elsewhere(text: str) -> str:
        other = fake.message_event(chat, "a thread without the bot", user=user)
        await fake.deliver(other)
        return await reply_in(other["event"]["ts"], text)

    await follow_ups_are_answered(
        slack, fake_llm, make_gateway, tmp_path / "data", call=call, follow_up=follow_up,
        elsewhere=elsewhere,
        replied_in_thread=lambda: [p.thread_ts for p in fake.posts] == [root["ts"]])
    assert [p.thread_ts for p in fake.posts] == [root["ts"]] * 3


async def test_discord_a_follow_up_in_a_thread_the_bot_answered_in_is_answered(
        discord_harness: DiscordHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    harness = discord_harness
    fake = harness.fake
    parent, thread = harness.thread_target()
    quiet = await fake.create_thread(parent, "a thread without the bot")
    ann = dp.user(dp.snowflake(), "ann")

    async def post(channel_id: str, text: str, *, mention: bool) -> str:
        # discord_payloads builds the docs' Message object (see DOCS_MESSAGE above)
        return await fake.inject(fake.user_message(channel_id, text, author=ann,
                                                   mention_bot=mention))

    await follow_ups_are_answered(
        harness, fake_llm, make_gateway, tmp_path / "data",
        call=lambda text: post(thread, text, mention=True),
        follow_up=lambda text: post(thread, text, mention=False),
        elsewhere=lambda text: post(quiet, text, mention=False),
        replied_in_thread=lambda: [r.thread for r in fake.sent] == [thread])


async def test_telegram_a_follow_up_in_a_forum_topic_the_bot_answered_in_is_answered(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    fake, chat = telegram.fake, -1001234567890
    topic, quiet = 301, 302
    fake.add_chat(chat, "supergroup", title="Forum", is_forum=True)

    async def post(thread: int, text: str, *, mention: bool) -> str:
        # fake.inject_message builds a forum-topic Message as core.telegram.org/bots/api
        # documents it: message_thread_id, is_topic_message, and the topic's creation
        # message (forum_topic_created) as reply_to_message, which is no reply to the bot.
        entities = None
        if mention:
            text = f"@{fake.username} {text}"
            entities = fake.mention_entities(text)
        message = fake.inject_message(chat, text, sender=7, thread=thread, entities=entities)
        return f"{chat}:{message['message_id']}"

    await follow_ups_are_answered(
        telegram, fake_llm, make_gateway, tmp_path / "data",
        call=lambda text: post(topic, text, mention=True),
        follow_up=lambda text: post(topic, text, mention=False),
        elsewhere=lambda text: post(quiet, text, mention=False),
        replied_in_thread=lambda: [m.thread for m in telegram.sent(str(chat))] == [str(topic)])
