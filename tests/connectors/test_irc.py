"""IRC beyond the contract: the pure line parser, and the connector against a real InspIRCd +
Atheme network (tests/servers/inspircd.py) through the real gateway and the fake LLM.

What is proven against the server: TLS verified with the test CA (and refused without
it), SASL PLAIN (and a wrong password), nick in use, PING both ways (answered on a
port whose server PINGs every second; our own PING finding a stalled link dead),
pacing under a strict Excess Flood limit, the 512-byte line limit, mentions, DMs,
``/me``, formatting codes, kicks and bans, and our own echoed lines never taken as input.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.irc._conn import TokenBucket
from connectors.irc._inbound import Skip, Viewpoint, parse_privmsg
from connectors.irc._parse import (
    Line,
    Source,
    casefold,
    format_line,
    message_lines,
    parse_ctcp,
    parse_line,
    split_mention,
    strip_formatting,
    unescape_tag,
)
from connectors.irc.manifest import LINE_BYTES, IrcConfig, fallback_nicks, line_budget
from pyclaw_app.channels import split_text, utf8_len
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.servers.inspircd import (
    ACCOUNTS,
    STRICT_BURST,
    STRICT_RATE,
    IrcError,
    IrcProxy,
    IrcServer,
    IrcUser,
    shared_server,
)
from tests.support import eventually

WAIT = 20.0

# ---- the pure parts ------------------------------------------------------------------------


def test_parse_line_reads_tags_source_command_and_params() -> None:
    line = parse_line("@time=2026-12-02T00:20:03.998Z;msgid=698~1~3;+draft/reply=a\\sb\\:c "
                      ":alice!a@host.example PRIVMSG #chan :hello: there \r\n")
    assert line == Line(command="PRIVMSG", params=("#chan", "hello: there "),
                        tags={"time": "2026-12-02T00:20:03.998Z", "msgid": "698~1~3",
                              "+draft/reply": "a b;c"},
                        source=Source("alice", "a", "host.example"))
    assert parse_line("PING :irc.example") == Line("PING", ("irc.example",))
    assert parse_line(":srv 005 me CHANTYPES=# :are supported") == Line(
        "005", ("me", "CHANTYPES=#", "are supported"), source=Source("srv"))
    assert parse_line("@only=tags :src") is None
    assert parse_line("   ") is None
    assert unescape_tag("a\\") == "a" and unescape_tag("\\x") == "x"


def test_format_line_cannot_smuggle_a_second_command() -> None:
    line = format_line("PRIVMSG", "#chan", "hi\r\nQUIT :bye\0", tags={"label": "a b;c"})
    assert line == "@label=a\\sb\\:c PRIVMSG #chan :hiQUIT :bye"
    assert parse_line(line) == Line("PRIVMSG", ("#chan", "hiQUIT :bye"), {"label": "a b;c"})
    assert format_line("JOIN", "#a,#b") == "JOIN #a,#b"
    assert format_line("PRIVMSG", "#a", "") == "PRIVMSG #a :"


def test_text_helpers() -> None:
    assert strip_formatting("\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f \x04ff0000hex") == \
        "bold red italic hex"
    assert parse_ctcp("\x01ACTION waves\x01") is not None
    assert split_mention("PyClaw: hello", "pyclaw") == (True, "hello")
    assert split_mention("pyclaw,  hello", "pyclaw") == (True, "hello")
    assert split_mention("ask pyclaw later", "pyclaw") == (True, "ask pyclaw later")
    assert split_mention("pyclawish: no", "pyclaw") == (False, "pyclawish: no")
    assert split_mention("pyclaw:", "pyclaw") == (True, "@pyclaw")  # the kit's bare-call rule
    assert split_mention("Py{Claw}: hi", "py[claw]") == (True, "hi")  # RFC 1459 casemapping
    assert casefold("Nick[]\\~") == "nick{}|^"
    assert message_lines("one\r\ntwo\n\n  \nthree\rfour\0") == ["one", "two", "three", "four"]


def test_inbound_reports_the_group_rule_actions_media_and_dcc() -> None:
    view = Viewpoint(channel="irc", nick="pyclaw", chantypes="#")

    def msg(target: str, text: str, **tags: str) -> Any:
        return parse_privmsg(Line("PRIVMSG", (target, text), tags,
                                  Source("Alice", "a", "h")), view, own_ids={"m1"})

    channel = msg("#Chan", "pyclaw: \x02hi\x02", msgid="x1", account="alice")
    assert channel.address.chat == "#chan" and channel.text == "hi"
    assert channel.is_group and channel.mentioned and not channel.reply_to_bot
    assert channel.platform_id == "x1" and channel.sender_id == "alice"
    assert msg("#chan", "a reply", **{"+draft/reply": "m1"}).reply_to_bot
    dm = msg("pyclaw", "\x01ACTION waves\x01")
    assert (dm.address.chat, dm.text, dm.is_group, dm.sender_id) == (
        "alice", "* Alice waves", False, "Alice!a@h")
    assert dm.platform_id.startswith("irc-")  # no msgid: a fresh id
    photo = msg("#chan", "pyclaw: https://files.example/u/cat.PNG")
    assert photo.text == "" and [a.kind for a in photo.attachments] == ["image"]
    dcc = msg("pyclaw", '\x01DCC SEND "my song.mp3" 2130706433 5000 1234\x01')
    assert dcc.attachments[0].kind == "audio" and dcc.attachments[0].size == 1234
    assert isinstance(msg("pyclaw", "\x01DCC SEND\x01"), Skip)
    assert msg("pyclaw", "\x01VERSION\x01") == Skip("CTCP VERSION from Alice")
    assert isinstance(parse_privmsg(Line("PRIVMSG", ("#c", "x"), {}, Source("PyClaw")), view),
                      Skip)  # our own line


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parsers_never_raise(raw: str) -> None:
    line = parse_line(raw)
    view = Viewpoint(channel="irc", nick="bot")
    if line is not None:
        parse_privmsg(line, view)
        parse_privmsg(Line("PRIVMSG", (raw[:5] or "#", raw), line.tags, line.source), view)
    strip_formatting(raw)
    split_mention(raw, "bot")
    parse_ctcp(raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters="\r\n\0 "), min_size=1,
                        max_size=12), min_size=1, max_size=4),
       st.text(max_size=60),
       st.dictionaries(st.from_regex(r"\+?[a-z][a-z0-9/.-]{0,10}", fullmatch=True),
                       st.text(max_size=20), max_size=3))
def test_format_then_parse_round_trips(words: list[str], trailing: str,
                                       tags: dict[str, str]) -> None:
    clean = trailing.replace("\r", "").replace("\n", "").replace("\0", "")
    words = [w.lstrip(":") or "x" for w in words]
    words[0] = words[0].lstrip("@") or "x"  # a command never opens with the tags' "@"
    line = parse_line(format_line(words[0], *words[1:], clean, tags=tags))
    assert line is not None
    assert line.params == (*words[1:], clean) and line.command == words[0].upper()
    assert line.tags == tags


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_every_line_of_every_part_fits_one_privmsg(text: str) -> None:
    """The worst case: the longest nick we may get, a 63-byte host, the longest target."""
    config = IrcConfig(host="h", nick="n" * 27, channels=["#" + "c" * 49])
    budget = line_budget(config)
    prefix = f":{'n' * 30}!~{'u' * 10}@{'h' * 63} PRIVMSG {'#' + 'c' * 49} :"
    for part in split_text(text, budget, utf8_len):
        for line in message_lines(part):
            assert "\r" not in line and "\n" not in line
            assert len(prefix.encode()) + utf8_len(line) + 2 <= LINE_BYTES


async def test_token_bucket_paces_after_the_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(burst=3, rate=2.0, clock=lambda: now[0])
    for _ in range(3):
        assert bucket.wait_time() == 0
        await bucket.take()
    assert bucket.wait_time() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.wait_time() == 0
    now[0] += 100
    bucket.wait_time()
    assert bucket.wait_time() == 0  # refilled to the burst, not beyond
    for _ in range(3):
        await bucket.take()
    assert bucket.wait_time() > 0


def test_fallback_nicks_and_missing_sasl_password() -> None:
    assert fallback_nicks(IrcConfig(host="h", nick="bot")) == ["bot", "bot_", "bot__", "bot___"]
    assert fallback_nicks(IrcConfig(host="h", nick="bot", alt_nicks=["other"])) == ["bot", "other"]
    needs_password = IrcConfig(host="h", nick="bot", sasl_account="bot")
    assert needs_password.missing_secrets() == ["sasl_password"]
    with pytest.raises(ValueError, match="not channel names"):
        IrcConfig(host="h", channels=["general"])


# ---- against the real server ---------------------------------------------------------------


@dataclass
class Net:
    server: IrcServer
    proxy: IrcProxy
    user: IrcUser
    nick: str
    channel: str

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.proxy.port, "tls": False, "nick": self.nick,
                "channels": [self.channel], "send_burst": 20, "send_rate": 50.0,
                "dm_policy": "open", "group_policy": "open", "rate_limit_per_minute": 0,
                **overrides}

    def from_bot(self, target: str | None = None) -> list[str]:
        return [ln.param(1) for ln in self.user.messages(
            source=lambda n: n.lower().startswith(self.nick.lower()), target=target)]


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    server = await shared_server()
    token = uuid.uuid4().hex[:6]
    proxy = IrcProxy(server.port)
    await proxy.start()
    user = IrcUser(f"u{token}", server.port)
    await user.connect()
    await user.oper()
    channel = f"#t{token}"
    await user.join(channel)
    try:
        yield Net(server, proxy, user, f"b{token}", channel)
    finally:
        await user.quit()
        await proxy.stop()


async def gateway_with(make_gateway: Any, fake_llm: FakeOpenAI, section: dict[str, Any], *,
                       state: ChannelState = ChannelState.ONLINE) -> Gateway:
    gw: Gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                      "channels": {"irc": {"type": "irc", **section}}})
    await eventually(lambda: gw.channels["irc"].state == state, timeout=WAIT)
    return gw


async def channel_log(gw: Gateway, search: str) -> list[str]:
    return [str(r["message"]) for r in await gw.store.logs.page(channel="irc", search=search)]


async def logged(gw: Gateway, search: str, *parts: str) -> bool:
    """Wait for a channel-log line holding ``search`` and every one of ``parts`` (log lines
    reach the store in batches, after the state change the test saw)."""
    async def found() -> bool:
        return any(all(p in m for p in parts) for m in await channel_log(gw, search))
    return bool(await eventually(found, timeout=WAIT))


async def test_tls_with_the_servers_ca_and_sasl_login(net: Net, make_gateway: Any,
                                                      fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, net.config(
        port=net.server.tls_port, tls=True, ca_file=net.server.ca_file,
        sasl_account="pyclawbot", sasl_password=ACCOUNTS["pyclawbot"]))
    assert "logged in as pyclawbot" in gw.channels["irc"].reason
    await net.user.privmsg(net.channel, f"{net.nick}: over TLS?")
    await eventually(lambda: net.from_bot(net.channel), timeout=WAIT)
    echo = net.user.messages(source=lambda n: n.lower() == net.nick.lower())[0]
    assert echo.param(1) == "Echo: over TLS?" and echo.tags.get("account") == "pyclawbot"
    probe = await gw.channels["irc"].connector.probe()  # type: ignore[union-attr]
    assert probe.ok and "logged in as pyclawbot" in probe.message


async def test_tls_refused_without_the_ca_is_fatal_and_says_why(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, net.config(port=net.server.tls_port,
                                                               tls=True),
                            state=ChannelState.OFFLINE)
    assert await logged(gw, "TLS", "TLS refused", "ca_file")


async def test_wrong_sasl_password_is_fatal_with_a_clear_line(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, net.config(
        sasl_account="pyclawbot", sasl_password="not-the-password"), state=ChannelState.OFFLINE)
    assert await logged(gw, "SASL", "wrong account name or password")


async def test_nick_in_use_falls_back_and_says_so(net: Net, make_gateway: Any,
                                                  fake_llm: FakeOpenAI) -> None:
    holder = IrcUser(net.nick, net.server.port)
    await holder.connect()
    try:
        gw = await gateway_with(make_gateway, fake_llm, net.config())
        assert f"connected as {net.nick}_" in gw.channels["irc"].reason
        assert await logged(gw, f"the nick {net.nick} is in use; trying {net.nick}_")
        await net.user.privmsg(net.channel, f"{net.nick}_: you there?")
        await eventually(lambda: net.from_bot(net.channel) == ["Echo: you there?"], timeout=WAIT)
    finally:
        await holder.quit()


async def test_dms_mentions_actions_formatting_and_no_self_echo(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, net.config())
    await net.user.privmsg(net.nick, "\x01ACTION \x02waves\x02\x01")
    await eventually(lambda: net.from_bot(net.user.nick), timeout=WAIT)
    assert net.from_bot(net.user.nick) == [f"Echo: * {net.user.nick} waves"]
    await net.user.privmsg(net.channel, "just people talking")
    await net.user.privmsg(net.channel, f"{net.nick.upper()}, \x0304colour\x03 me")
    await eventually(lambda: net.from_bot(net.channel), timeout=WAIT)
    await gw.lanes.join()
    assert net.from_bot(net.channel) == ["Echo: colour me"]
    rows = await gw.store.db.fetchall("SELECT text FROM messages WHERE direction='in'")
    assert sorted(r["text"] for r in rows) == [f"* {net.user.nick} waves", "colour me"]
    assert len(fake_llm.requests) == 2  # the echoes of our own replies were not input


async def test_group_reply_all_never_answers_its_own_lines(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, net.config(group_reply="all"))
    await net.user.privmsg(net.channel, "anyone?")
    await eventually(lambda: net.from_bot(net.channel), timeout=WAIT)
    await gw.lanes.join()
    await asyncio.sleep(0.3)
    await gw.lanes.join()
    assert net.from_bot(net.channel) == ["Echo: anyone?"] and len(fake_llm.requests) == 1


async def test_a_part_of_the_full_budget_arrives_whole_on_a_long_channel_name(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    long_channel = f"{net.channel}-{'x' * 40}"
    await net.user.join(long_channel)
    config = net.config(channels=[long_channel])
    budget = line_budget(IrcConfig(**{k: v for k, v in config.items()
                                      if k in IrcConfig.model_fields}))
    text = ("Echo: " + "ü€😀 " * 200)
    fake_llm.responder = lambda messages: text
    await gateway_with(make_gateway, fake_llm, config)
    await net.user.privmsg(long_channel, f"{net.nick}: long please")
    await eventually(lambda: "".join(net.from_bot(long_channel)) == text.replace("\n", ""),
                     timeout=WAIT)
    lines = net.from_bot(long_channel)
    assert len(lines) >= 3 and max(utf8_len(x) for x in lines) <= budget
    assert max(utf8_len(x) for x in lines) > budget - 4  # the budget is used, not wasted


async def test_multiline_part_goes_line_by_line(net: Net, make_gateway: Any,
                                                fake_llm: FakeOpenAI) -> None:
    fake_llm.responder = lambda messages: "first\n\nsecond\r\n  \nthird"
    await gateway_with(make_gateway, fake_llm, net.config())
    await net.user.privmsg(net.channel, f"{net.nick}: lines")
    await eventually(lambda: net.from_bot(net.channel) == ["first", "second", "third"],
                     timeout=WAIT)
    first = net.user.messages(source=lambda n: n.lower() == net.nick.lower())[0]
    assert first.tags.get("+draft/reply")  # the reply names the message it answers


async def test_pacing_keeps_the_bot_under_a_strict_flood_limit(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    flooder = IrcUser(f"f{net.nick}", net.server.strict_port)
    await flooder.connect(caps=())
    flood = "".join(f"PRIVMSG {net.channel} :flood {i}\r\n" for i in range(STRICT_BURST * 4))
    await flooder.send_raw(flood.encode())  # the control: unpaced, the server kills it
    error = await flooder.wait_for(lambda ln: ln.command == "ERROR")
    assert "Excess Flood" in error.param(-1)
    await flooder.close()

    proxy = IrcProxy(net.server.strict_port)
    await proxy.start()
    try:
        text = "\n".join(f"line {i}" for i in range(STRICT_BURST * 3))
        fake_llm.responder = lambda messages: text
        gw = await gateway_with(make_gateway, fake_llm, net.config(
            port=proxy.port, send_burst=STRICT_BURST - 1, send_rate=STRICT_RATE / 2))
        await net.user.privmsg(net.channel, f"{net.nick}: talk a lot")
        await eventually(lambda: net.from_bot(net.channel) == text.split("\n"), timeout=WAIT)
        assert proxy.connections == 1 and not await channel_log(gw, "lost connection")
    finally:
        await proxy.stop()


async def test_server_pings_are_answered(net: Net, make_gateway: Any,
                                         fake_llm: FakeOpenAI) -> None:
    """The strict port's server PINGs every second and drops a client that does not PONG."""
    proxy = IrcProxy(net.server.strict_port)
    await proxy.start()
    try:
        gw = await gateway_with(make_gateway, fake_llm, net.config(port=proxy.port,
                                                                   send_burst=3, send_rate=2))
        await asyncio.sleep(4)  # several server PING rounds
        assert proxy.connections == 1 and not await channel_log(gw, "lost connection")
    finally:
        await proxy.stop()


async def test_a_stalled_link_is_found_dead_by_our_ping_and_remade(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, net.config(ping_interval=1,
                                                               ping_timeout=1))
    net.proxy.stall()
    await eventually(lambda: net.proxy.connections >= 2, timeout=WAIT)
    await eventually(lambda: gw.channels["irc"].state == ChannelState.ONLINE, timeout=WAIT)
    assert await logged(gw, "PING", "no answer to PING")
    await net.user.privmsg(net.channel, f"{net.nick}: back?")
    await eventually(lambda: net.from_bot(net.channel) == ["Echo: back?"], timeout=WAIT)


async def test_kicked_then_banned_is_logged_and_rejoined_after_reconnect(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, net.config())
    await eventually(lambda: any(ln.command == "JOIN" and ln.source is not None
                                 and ln.source.nick == net.nick for ln in net.user.lines),
                     timeout=WAIT)
    await net.user.send(f"KICK {net.channel} {net.nick} :behave")
    assert await logged(gw, "kicked from")
    await net.user.kill(net.nick)  # reconnects and joins again
    await eventually(lambda: sum(ln.command == "JOIN" and ln.source is not None
                                 and ln.source.nick == net.nick for ln in net.user.lines) >= 2,
                     timeout=WAIT)
    await net.user.send(f"MODE {net.channel} +b {net.nick}!*@*")
    await net.user.send(f"KICK {net.channel} {net.nick} :banned")
    await net.user.kill(net.nick)
    assert await logged(gw, "the bot is banned from it")


async def test_direct_messages_to_an_absent_bot_are_refused_by_the_server(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    """IRC queues nothing for a nick that is gone: the sender is told (401) at once."""
    with pytest.raises(IrcError) as refused:
        await net.user.privmsg(net.nick, "are you there?")
    assert refused.value.numeric == "401"


async def test_latin1_bytes_from_a_legacy_client_are_read_as_text(
        net: Net, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    await gateway_with(make_gateway, fake_llm, net.config())
    await net.user.send_raw(f"PRIVMSG {net.nick} :caf".encode() + b"\xe9 cr\xe8me\r\n")
    await eventually(lambda: net.from_bot(net.user.nick) == ["Echo: café crème"], timeout=WAIT)
