"""Twitch chat beyond the contract: the pure readers and the pacer, and the connector against
the fake TMI server (tests/fakes/twitch_irc.py) through the real gateway and the fake LLM.

Proven against the fake: TLS verified with the fake's CA (and refused without it), a
wrong or foreign token (fatal, a sentence to act on; Test connection says the same), a
channel that does not exist, Twitch's PING answered and the bot's own PING finding a
stalled link dead, RECONNECT, the one-second pause and the repeat rule where the bot is
not a moderator (the fake drops what breaks them), replies to the bot's messages, a
ban noticed, a refused send explained.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.irc._parse import Line, Source, parse_line
from connectors.twitch._inbound import Skip, chat_line, elevated, parse_privmsg, send_outcome
from connectors.twitch._pace import GAP_MARGIN, MIN_GAP, ChatPacer
from connectors.twitch.manifest import TwitchConfig
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.twitch_irc import Account, FakeTwitch, TwitchUser
from tests.support import eventually

WAIT = 20.0
DOCS_TAGS = ("@badge-info=;badges=broadcaster/1;client-nonce=997dcf443c31e258c1d32a8da47b6936;"
             "color=#0000FF;display-name=abc;emotes=;first-msg=0;flags=0-6:S.7;"
             "id=eb24e920-8065-492a-8aea-266a00fc5126;mod=0;room-id=713936733;subscriber=0;"
             "tmi-sent-ts=1642786203573;turbo=0;user-id=713936733;user-type=")


# ---- the pure parts ------------------------------------------------------------------------


def msg(text: str, extra: str = "", *, login: str = "pyclawbot", user_id: str = "42") -> Any:
    line = parse_line(f"{DOCS_TAGS}{extra} :abc!abc@abc.tmi.twitch.tv PRIVMSG #xyz :{text}")
    assert line is not None
    return parse_privmsg(line, channel="twitch", login=login, user_id=user_id)


def test_the_docs_privmsg_is_read_with_its_tags() -> None:
    inbound = msg("@PyClawBot, HeyGuys")
    assert inbound.address.chat == "#xyz" and inbound.is_group
    assert inbound.mentioned and inbound.text == "HeyGuys" and not inbound.reply_to_bot
    assert inbound.platform_id == "eb24e920-8065-492a-8aea-266a00fc5126"
    assert (inbound.sender_id, inbound.sender_name) == ("713936733", "abc")
    assert inbound.ts == pytest.approx(1642786203.573)


def test_mentions_replies_actions_and_own_lines() -> None:
    assert msg("ask @pyclawbot later").mentioned
    assert msg("ask @pyclawbot later").text == "ask @pyclawbot later"
    assert msg("pyclawbot: hi").text == "hi" and msg("pyclawbot: hi").mentioned
    assert not msg("pyclawbot is a bot").mentioned
    assert msg("what time is it @PyclawBot?").text == "what time is it?"  # the kit's rule
    assert msg("@pyclawbot").text == "@pyclawbot"  # only the call: kept as the call
    assert not msg("@pyclawbotx hi").mentioned and not msg("mail@pyclawbot hi").mentioned
    reply = msg("@PyClawBot thanks", ";reply-parent-msg-id=m1;reply-parent-user-login=pyclawbot"
                ";reply-parent-user-id=42;reply-parent-msg-body=Echo:\\sx")
    assert reply.reply_to_bot and reply.text == "thanks"
    assert not msg("yo", ";reply-parent-user-login=someone;reply-parent-user-id=7").reply_to_bot
    assert msg("\x01ACTION waves\x01").text == "* abc waves"
    assert msg("\x01VERSION\x01") == Skip("CTCP VERSION from abc")
    assert msg("hi", login="abc") == Skip("our own line")
    assert msg("hi", user_id="713936733") == Skip("our own line")
    line = Line("PRIVMSG", ("#xyz",), {}, Source("abc"))
    assert isinstance(parse_privmsg(line, channel="t", login="b"), Skip)
    assert parse_privmsg(line, channel="t", login="b").level == "warning"


def test_emotes_pictures_and_clips_are_attachments() -> None:
    emotes = msg("Kappa Keepo Kappa", ";emote-only=1;emotes=25:0-4,12-16/1902:6-10")
    assert [(a.kind, a.name, a.platform_id) for a in emotes.attachments] == [
        ("sticker", "Kappa", "25"), ("sticker", "Keepo", "1902")]
    assert emotes.text == "Kappa Keepo Kappa"
    assert msg("Kappa hi", ";emotes=25:0-4").attachments == ()  # not emote-only: just text
    picture = msg("@pyclawbot https://i.imgur.com/cat.png")
    assert picture.text == "" and [a.kind for a in picture.attachments] == ["image"]
    clip = msg("@pyclawbot https://clips.twitch.tv/FunnyClipName-abc123")
    assert [a.kind for a in clip.attachments] == ["video"]


def test_send_outcomes_in_pyclaws_words() -> None:
    rate = send_outcome("msg_ratelimit", "too quickly", "#c", 30.0)
    assert isinstance(rate, RetryableError) and rate.retry_after == 30.0
    slow = send_outcome("msg_slowmode", "You will be able to talk again in 4 seconds.", "#c", 30)
    assert isinstance(slow, RetryableError) and slow.retry_after == 4.0
    short = send_outcome("msg_timedout", "You are timed out for 60 more seconds.", "#c", 30)
    assert isinstance(short, RetryableError) and short.retry_after == 60.0
    long = send_outcome("msg_timedout", "You are timed out for 86387 more seconds.", "#c", 30)
    assert isinstance(long, FatalConnectorError)
    assert isinstance(send_outcome("msg_rejected", "held", "#c", 30), DeliveryUncertain)
    banned = send_outcome("msg_banned", "You are permanently banned", "#c", 30)
    assert isinstance(banned, FatalConnectorError) and "banned from #c" in str(banned)
    assert send_outcome("host_on", "Now hosting", "#c", 30) is None


def test_chat_line_and_elevated() -> None:
    assert chat_line("  one\r\ntwo\n\n  three  \n") == "one two three"
    assert chat_line("\n \n") == ""
    assert elevated({"mod": "1"}) and elevated({"badges": "vip/1,subscriber/12"})
    assert elevated({"badges": "broadcaster/1"}) and not elevated({"badges": "subscriber/3"})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.dictionaries(
    st.sampled_from(["id", "user-id", "emotes", "emote-only", "tmi-sent-ts", "display-name",
                     "reply-parent-user-login", "reply-parent-user-id", "badges"]),
    st.text(max_size=30), max_size=6))
def test_parsers_never_raise(raw: str, tags: dict[str, str]) -> None:
    line = parse_line(raw)
    if line is not None:
        parse_privmsg(line, channel="t", login="bot")
    parse_privmsg(Line("PRIVMSG", (f"#{raw[:5]}", raw), tags, Source(raw[:8] or "x")),
                  channel="t", login="bot", user_id="1")
    send_outcome(raw[:20], raw, "#c", 30.0)
    elevated(tags)
    assert len(chat_line(raw)) <= len(raw)
    assert "\n" not in chat_line(raw) and "\r" not in chat_line(raw)


async def test_pacer_keeps_twitchs_limits() -> None:
    now = [0.0]
    pacer = ChatPacer(limit=3, elevated_limit=5, window=30.0, clock=lambda: now[0])
    assert pacer.wait_time("#a") == 0
    pacer.record("#a", "one")
    # one a second per channel, and a margin for a first message that arrives late
    assert pacer.wait_time("#a") == pytest.approx(MIN_GAP + GAP_MARGIN)
    assert pacer.wait_time("#b") == 0  # another channel has its own pause
    pacer.record("#b", "two")
    now[0] = 2.0
    pacer.record("#a", "three")
    now[0] = 4.0
    assert pacer.wait_time("#c") == pytest.approx(26.0)  # 3 plain messages in 30 s
    pacer.elevated["#m"] = True
    assert pacer.wait_time("#m") == 0  # a moderator's channel counts only the 100 (here 5)
    pacer.record("#m", "x")
    pacer.record("#m", "x")
    assert pacer.wait_time("#m") == pytest.approx(26.0)  # 5 of any kind in 30 s
    now[0] = 31.0
    assert pacer.wait_time("#c") == 0
    assert pacer.unique("#a", "three") == "three \U000e0000"  # 29 s ago: a repeat
    now[0] = 33.0
    assert pacer.unique("#a", "three") == "three"  # 31 s ago: not any more
    pacer.record("#a", "hi")
    assert pacer.unique("#a", "hi") == "hi \U000e0000" and pacer.unique("#m", "x") == "x"
    pacer.slow["#s"] = 5.0  # ROOMSTATE slow=5
    pacer.record("#s", "slow")
    assert pacer.wait_time("#s") == pytest.approx(5.0 + GAP_MARGIN)
    await pacer.take("#z")  # nothing in its way: returns at once
    assert pacer.pause() == 30.0 and pacer.wait_time("#z") == pytest.approx(30.0)


def test_config_normalises_names_and_requires_the_token() -> None:
    config = TwitchConfig(login="@PyClawBot", channels=["MyStream", "#other", "mystream", " "])
    assert config.login == "pyclawbot" and config.channels == ["#mystream", "#other"]
    assert config.missing_secrets() == ["oauth_token"]
    with pytest.raises(ValidationError, match="only letters"):
        TwitchConfig(login="bad name")
    with pytest.raises(ValidationError, match="not Twitch channel names"):
        TwitchConfig(login="bot", channels=["#no-dash"])


# ---- against the fake server ---------------------------------------------------------------


@dataclass
class Tmi:
    fake: FakeTwitch
    bot: Account
    user: TwitchUser
    channel: str

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"login": self.bot.login, "oauth_token": self.bot.token,
                "channels": [self.channel], "host": "127.0.0.1", "port": self.fake.port,
                "tls": self.fake.tls, "ca_file": self.fake.ca_file, "dm_policy": "open",
                "group_policy": "open", "rate_limit_per_minute": 0, **overrides}

    def from_bot(self) -> list[str]:
        return [s.text for s in self.fake.sent(self.bot.login, self.channel)]

    async def say(self, text: str, **kwargs: Any) -> str:
        await eventually(lambda: self.fake.joined(self.bot.login, self.channel), timeout=WAIT)
        return await self.user.privmsg(self.channel, text, **kwargs)


async def tmi_for(*, tls: bool = False, bot_is_mod: bool = True) -> Tmi:
    fake = await FakeTwitch(tls=tls, reconnect_grace=30.0).start()
    tag = uuid.uuid4().hex[:6]
    bot = fake.add_account(f"bot{tag}")
    viewer = fake.add_account(f"viewer{tag}")
    channel = f"#chan{tag}"
    fake.add_room(channel, mods=(viewer.login, *((bot.login,) if bot_is_mod else ())))
    user = await TwitchUser(fake, viewer).connect()
    await user.join(channel)
    return Tmi(fake, bot, user, channel)


@pytest.fixture
async def tmi() -> AsyncIterator[Tmi]:
    tmi = await tmi_for()
    yield tmi
    await tmi.user.close()
    await tmi.fake.stop()


@pytest.fixture
async def plain_tmi() -> AsyncIterator[Tmi]:
    """The bot is an ordinary chatter in the channel: Twitch's stricter limits apply."""
    tmi = await tmi_for(bot_is_mod=False)
    yield tmi
    await tmi.user.close()
    await tmi.fake.stop()


async def gateway_with(make_gateway: Any, fake_llm: FakeOpenAI, section: dict[str, Any], *,
                       state: ChannelState = ChannelState.ONLINE) -> Gateway:
    gw: Gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                      "channels": {"twitch": {"type": "twitch", **section}}})
    await eventually(lambda: gw.channels["twitch"].state == state, timeout=WAIT)
    return gw


async def channel_log(gw: Gateway, search: str) -> list[str]:
    return [str(r["message"]) for r in await gw.store.logs.page(channel="twitch",
                                                                search=search)]


async def test_tls_with_the_fakes_ca_and_refused_without_it(make_gateway: Any,
                                                            fake_llm: FakeOpenAI) -> None:
    tmi = await tmi_for(tls=True)
    try:
        gw = await gateway_with(make_gateway, fake_llm, tmi.config())
        assert f"connected as {tmi.bot.login}" in gw.channels["twitch"].reason
        await tmi.say(f"@{tmi.bot.login} over TLS?")
        await eventually(lambda: tmi.from_bot() == ["Echo: over TLS?"], timeout=WAIT)
        probe = await gw.channels["twitch"].connector.probe()  # type: ignore[union-attr]
        assert probe.ok and tmi.bot.login in probe.message
        refused = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
            "twitch": {"type": "twitch", **tmi.config(ca_file="")}}})
        await eventually(lambda: refused.channels["twitch"].state == ChannelState.OFFLINE,
                         timeout=WAIT)
        lines = [str(r["message"]) for r in await refused.store.logs.page(
            channel="twitch", search="TLS refused")]
        assert lines and "ca_file" in lines[0]
    finally:
        await tmi.user.close()
        await tmi.fake.stop()


async def test_a_wrong_or_foreign_token_is_fatal_with_a_clear_line(
        tmi: Tmi, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, tmi.config(oauth_token="oauth:nope"),
                            state=ChannelState.OFFLINE)
    # the channel log is written in batches: the line may land a moment after the state
    lines = await eventually(lambda: channel_log(gw, "Login authentication failed"),
                             timeout=WAIT)
    assert lines and "wrong or expired" in lines[0] and "chat:edit" in lines[0]
    assert "nope" not in " ".join(lines)
    connector = gw.channels["twitch"].connector
    assert connector is not None
    probe = await connector.probe()
    assert not probe.ok and "wrong or expired" in probe.message
    # the viewer's token is a good token, of another account
    foreign = tmi.config(oauth_token=tmi.user.account.token)
    other = await gateway_with(make_gateway, fake_llm, foreign, state=ChannelState.OFFLINE)
    assert await eventually(lambda: channel_log(other, "Login authentication failed"),
                            timeout=WAIT)
    assert tmi.fake.logins == 1  # only the viewer ever got in


async def test_a_channel_that_does_not_exist_is_logged_and_the_others_work(
        tmi: Tmi, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm,
                            tmi.config(channels=["#nosuchchannel", tmi.channel]))
    await eventually(lambda: channel_log(gw, "does not exist"), timeout=WAIT)
    await tmi.say(f"@{tmi.bot.login} still here")
    await eventually(lambda: tmi.from_bot() == ["Echo: still here"], timeout=WAIT)


async def test_ping_both_ways_and_a_stalled_link_is_reconnected(
        tmi: Tmi, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, tmi.config(ping_interval=1.0,
                                                               ping_timeout=1.0))
    tmi.fake.ping(tmi.bot.login)
    await eventually(lambda: "tmi.twitch.tv" in tmi.fake.pongs(tmi.bot.login), timeout=WAIT)
    await eventually(lambda: tmi.fake.pings(tmi.bot.login), timeout=WAIT)  # ours, on silence
    tmi.fake.mute(tmi.bot.login)
    await eventually(lambda: channel_log(gw, "no answer to PING"), timeout=WAIT)
    await eventually(lambda: tmi.fake.logins == 3, timeout=WAIT)  # viewer, bot, bot again
    await tmi.say(f"@{tmi.bot.login} back?")
    await eventually(lambda: tmi.from_bot() == ["Echo: back?"], timeout=WAIT)


async def test_reconnect_notice_is_followed_at_once(tmi: Tmi, make_gateway: Any,
                                                    fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, tmi.config())
    tmi.fake.reconnect(tmi.bot.login)
    await eventually(lambda: tmi.fake.logins == 3, timeout=WAIT)  # long before the grace
    assert await channel_log(gw, "asked the bot to reconnect")
    await tmi.say(f"@{tmi.bot.login} after maintenance")
    await eventually(lambda: tmi.from_bot() == ["Echo: after maintenance"], timeout=WAIT)
    assert gw.channels["twitch"].state == ChannelState.ONLINE


async def test_replies_to_the_bot_count_and_replies_quote(tmi: Tmi, make_gateway: Any,
                                                          fake_llm: FakeOpenAI) -> None:
    await gateway_with(make_gateway, fake_llm, tmi.config())
    first = await tmi.say(f"@{tmi.bot.login} hello")
    await eventually(lambda: tmi.from_bot(), timeout=WAIT)
    answer = tmi.fake.sent(tmi.bot.login)[0]
    assert answer.reply_to == first
    relayed = await tmi.user.wait_for(lambda ln: ln.tags.get("id") == answer.msg_id)
    assert relayed.tags["reply-parent-user-login"] == tmi.user.account.login
    await tmi.say("and without a mention", reply_to=answer.msg_id)  # a reply to the bot
    await eventually(lambda: len(tmi.from_bot()) == 2, timeout=WAIT)
    assert tmi.from_bot()[1] == "Echo: and without a mention"


async def test_as_a_plain_chatter_it_pauses_and_never_repeats_itself(
        plain_tmi: Tmi, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    """Twitch drops a plain chatter's second message to a channel within a second, and a
    repeat within 30 s (the fake does too): every part and both same answers arrive."""
    tmi = plain_tmi
    fake_llm.responder = lambda messages: "\n\n".join(f"part {i} " + "x" * 480 for i in range(3))
    gw = await gateway_with(make_gateway, fake_llm, tmi.config())
    await tmi.say(f"@{tmi.bot.login} long")
    await eventually(lambda: len(tmi.from_bot()) == 3, timeout=WAIT)
    fake_llm.responder = lambda messages: "same answer"
    await tmi.say(f"@{tmi.bot.login} one")
    await tmi.say(f"@{tmi.bot.login} two")
    await eventually(lambda: len(tmi.from_bot()) == 5, timeout=WAIT)
    assert tmi.from_bot()[3:] == ["same answer", "same answer \U000e0000"]
    assert not await channel_log(gw, "too fast")


async def test_a_ban_is_noticed_and_a_refused_send_says_why(
        tmi: Tmi, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, tmi.config())
    await eventually(lambda: tmi.fake.joined(tmi.bot.login, tmi.channel), timeout=WAIT)
    room = tmi.fake.rooms[tmi.channel]
    tmi.fake.send_raw(tmi.bot.login, f"@ban-duration=600;room-id={room.room_id};"
                      f"target-user-id={tmi.bot.user_id};tmi-sent-ts=1550594103696 "
                      f":tmi.twitch.tv CLEARCHAT {tmi.channel} :{tmi.bot.login}")
    await eventually(lambda: channel_log(gw, "timed out for 600 s"), timeout=WAIT)
    tmi.fake.fail_next(tmi.bot.login, "msg_banned")
    await tmi.say(f"@{tmi.bot.login} hi")
    lines = await eventually(lambda: channel_log(gw, "banned from"), timeout=WAIT)
    assert tmi.channel in lines[0]
    assert tmi.from_bot() == []
