"""The MQTT connector against a real mosquitto, with aiomqtt as the device.

What every channel must do is the contract suite's (tests/contract, harness_mqtt); here is
what is MQTT's own: acknowledging only after the journal has a message (a refused one is
redelivered), retained messages, a broker restart with messages queued meanwhile, the login
refused, TLS verified or refused, the ACL refusing our publishes, reply topics held under
the prefix, and the parser on arbitrary input.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.mqtt._parse import Received, Skip, parse_message, reply_topic_of
from connectors.mqtt.manifest import MqttConfig
from connectors.mqtt.runtime import MqttConnector
from pyclaw_app.channels import SubmitResult
from pyclaw_app.errors import FatalConnectorError, StoreError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.servers.mosquitto import DYNSEC_PASSWORD, USERS, Broker, shared_broker
from tests.support import RecordingContext, eventually

Factory = Callable[..., MqttConnector]


@pytest.fixture
async def broker() -> Broker:
    return await shared_broker()


@pytest.fixture
def prefix() -> str:
    return f"pyclaw/t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def device(broker: Broker, prefix: str) -> AsyncIterator[Device]:
    async with aiomqtt.Client("127.0.0.1", broker.port, username="device",
                              password=USERS["device"],
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        dev = Device(client, prefix)
        await client.subscribe(f"{prefix}/#", qos=1)
        task = asyncio.create_task(dev.read())
        yield dev
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Device:
    """The user: publishes to the in-topics and keeps what arrives under the prefix."""

    def __init__(self, client: aiomqtt.Client, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self.got: list[tuple[str, bytes, bool]] = []

    async def read(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.got.append((str(message.topic), payload, message.retain))

    async def say(self, conversation: str, payload: bytes | str, *, retain: bool = False
                  ) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        await self.client.publish(f"{self.prefix}/in/{conversation}", data, qos=1,
                                  retain=retain)

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.got if t == f"{self.prefix}/{topic}"]


@pytest.fixture
async def make(broker: Broker, prefix: str) -> AsyncIterator[Factory]:
    made: list[MqttConnector] = []

    def factory(**overrides: Any) -> MqttConnector:
        password = overrides.pop("password", USERS["pyclaw"])
        section: dict[str, Any] = {"host": "127.0.0.1", "port": broker.port,
                                   "username": "pyclaw", "topic_prefix": prefix, **overrides}
        config = MqttConfig(password=SecretStr(password), **section)
        connector = MqttConnector("mqtt", config)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.stop()


async def online(connector: MqttConnector, ctx: RecordingContext | None = None
                 ) -> RecordingContext:
    ctx = ctx or RecordingContext(channel="mqtt")
    await connector.start(ctx)
    await eventually(lambda: ctx.states and ctx.states[-1][0] == ChannelState.ONLINE)
    return ctx


async def test_plain_text_in_and_a_json_reply_out(make: Factory, device: Device) -> None:
    connector = make()
    ctx = await online(connector)
    await device.say("kitchen", "turn on the lights?")
    inbound = (await eventually(lambda: ctx.inbound))[0]
    assert (inbound.address.chat, inbound.text, inbound.sender_id) == (
        "kitchen", "turn on the lights?", "kitchen")
    part = await connector.send_part(inbound.address, "Done 💡", inbound.platform_id)
    body = json.loads((await eventually(lambda: device.on("out/kitchen")))[0])
    assert body == {"id": part, "conversation": "kitchen", "text": "Done 💡",
                    "reply_to": inbound.platform_id.partition("/")[2]}
    assert not any(retained for _, _, retained in device.got)


async def test_text_replies_and_the_typing_topic(make: Factory, device: Device) -> None:
    connector = make(reply_format="text")
    await online(connector)
    address = Address(channel="mqtt", chat="hall")
    await connector.typing(address)
    await connector.send_part(address, "plain answer", None)
    assert await eventually(lambda: device.on("out/hall")) == [b"plain answer"]
    assert device.on("typing/hall") == [b"typing"]


async def test_a_message_is_acknowledged_only_after_the_journal_has_it(
        make: Factory, device: Device) -> None:
    """The first submit fails (disk full): no PUBACK, the connection is renewed, and the
    broker redelivers the message with the same packet id, so it keeps its id."""
    refused: list[Inbound] = []

    class FailingOnce(RecordingContext):
        async def submit(self, inbound: Inbound) -> SubmitResult:
            if not refused:
                refused.append(inbound)
                raise StoreError("database or disk is full")
            return await super().submit(inbound)

    connector = make()
    ctx = await online(connector, FailingOnce(channel="mqtt"))
    await device.say("attic", "are you there")
    inbound = (await eventually(lambda: ctx.inbound, timeout=15))[0]
    assert inbound.platform_id == refused[0].platform_id and inbound.text == "are you there"
    assert any("will send it again" in message for _, message, _ in ctx.logs)
    await asyncio.sleep(0.3)
    assert len(ctx.inbound) == 1


async def test_retained_messages_are_skipped_or_answered_once(
        make: Factory, device: Device) -> None:
    await device.say("porch", "old news", retain=True)
    skipping = make()
    ctx = await online(skipping)
    await eventually(lambda: any("retained" in m for _, m, _ in ctx.logs))
    assert ctx.inbound == []
    await skipping.stop()

    answering = make(retained="answer", client_id=f"other-{uuid.uuid4().hex[:6]}")
    ctx = await online(answering)
    first = (await eventually(lambda: ctx.inbound))[0]
    assert first.text == "old news" and first.platform_id.startswith("porch/r-")
    await device.say("porch", b"", retain=True)  # clears the retained message


async def test_a_broker_restart_reconnects_and_delivers_what_was_queued(
        make: Factory, device: Device, broker: Broker) -> None:
    connector = make(keepalive=5)
    ctx = await online(connector)
    await broker.restart()  # persistence: our session and subscription survive
    await eventually(lambda: ctx.states[-1][0] == ChannelState.DEGRADED, timeout=15)
    async with aiomqtt.Client("127.0.0.1", broker.port, username="device",
                              password=USERS["device"]) as late:
        await late.publish(f"{device.prefix}/in/cellar", b"sent while you were away", qos=1)
    await eventually(lambda: ctx.states[-1][0] == ChannelState.ONLINE, timeout=30)
    inbound = (await eventually(lambda: ctx.inbound, timeout=15))[0]
    assert inbound.text == "sent while you were away"
    assert any("reconnected" in m and "resumed session" in m for _, m, _ in ctx.logs)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_messages_sent_while_the_gateway_is_down_arrive_after_its_restart(
        make: Factory, device: Device, protocol: str) -> None:
    """The client id is kept in ctx.state, so the next start resumes the broker's session."""
    first = make(protocol=protocol)
    ctx = await online(first)
    await first.stop()
    await device.say("garage", "while you were down")
    await device.say("garage", '{"id": "g2", "text": "and this too"}')
    second = make(protocol=protocol)
    await online(second, ctx)
    texts = await eventually(lambda: [i.text for i in ctx.inbound] if len(ctx.inbound) == 2
                             else None)
    assert texts == ["while you were down", "and this too"]
    assert any("resumed session" in m for _, m, _ in ctx.logs)
    address = ctx.inbound[0].address
    await second.send_part(address, "back again", ctx.inbound[0].platform_id)
    await eventually(lambda: device.on("out/garage"))


async def test_a_wrong_password_stops_the_channel_with_a_clear_line(make: Factory) -> None:
    connector = make(password="not-it")
    ctx = RecordingContext(channel="mqtt")
    await connector.start(ctx)
    line = await eventually(lambda: [m for lvl, m, _ in ctx.logs if lvl == "error"])
    assert "refused the login of user 'pyclaw'" in line[0] and "CONNACK 0x87" in line[0]
    assert ctx.states[-1][0] == ChannelState.OFFLINE
    assert not (await connector.probe()).ok


async def test_probe_reports_the_broker_and_the_subscription(make: Factory) -> None:
    result = await make().probe()
    assert result.ok and "may subscribe to" in result.message


async def test_tls_verified_with_the_ca_file_and_refused_without(
        make: Factory, broker: Broker) -> None:
    connector = make(port=broker.tls_port, tls=True, ca_file=broker.ca_file)
    await online(connector)
    assert (await make(port=broker.tls_port, tls=True, ca_file=broker.ca_file).probe()).ok
    refused = make(port=broker.tls_port, tls=True)
    ctx = RecordingContext(channel="mqtt")
    await refused.start(ctx)
    line = await eventually(lambda: [m for lvl, m, _ in ctx.logs if lvl == "error"])
    assert "TLS refused" in line[0] and "ca_file" in line[0]


async def test_the_acl_refusing_our_publish_is_fatal_and_names_the_user(
        make: Factory, device: Device) -> None:
    connector = make(username="readonly", password=USERS["readonly"])
    await online(connector)
    with pytest.raises(FatalConnectorError, match="allow readonly to write"):
        await connector.send_part(Address(channel="mqtt", chat="x"), "hi", None)


@pytest.mark.parametrize(("protocol", "code"), [("5", "0x87 Not authorized"),
                                               ("3.1.1", "0x80 Unspecified error")])
async def test_the_acl_refusing_our_subscription_stops_the_channel_with_a_clear_line(
        protocol: str, code: str, prefix: str) -> None:
    """mosquitto's ACL file grants every SUBSCRIBE and filters at delivery; its
    dynamic-security plugin (like most brokers) refuses it in the SUBACK."""
    broker = await shared_broker(dynsec=True)
    config = MqttConfig(host="127.0.0.1", port=broker.port, username="nosub",
                        password=SecretStr(DYNSEC_PASSWORD), topic_prefix=prefix,
                        protocol=protocol)
    connector = MqttConnector("mqtt", config)
    ctx = RecordingContext(channel="mqtt")
    try:
        await connector.start(ctx)
        line = await eventually(lambda: [m for lvl, m, _ in ctx.logs if lvl == "error"])
        assert f"refused the subscription to {prefix}/in/+ (SUBACK {code})" in line[0]
        assert "allow nosub to read it" in line[0]
        assert ctx.states[-1][0] == ChannelState.OFFLINE
        assert not (await connector.probe()).ok
    finally:
        await connector.stop()


async def test_a_reply_nobody_listens_to_is_logged(make: Factory, broker: Broker) -> None:
    connector = make()
    ctx = await online(connector)
    await connector.send_part(Address(channel="mqtt", chat="nobody"), "hello?", None)
    assert any("No matching subscribers" in m for _, m, _ in ctx.logs)


async def test_a_reply_topic_is_honoured_only_under_the_prefix(
        make: Factory, device: Device) -> None:
    connector = make()
    ctx = await online(connector)
    await device.say("den", json.dumps({"id": 1, "text": "a", "reply_topic":
                                        f"{device.prefix}/speaker/den"}))
    await device.say("den", json.dumps({"id": 2, "text": "b", "reply_topic": "elsewhere/x"}))
    first, second = await eventually(lambda: ctx.inbound if len(ctx.inbound) == 2 else None)
    assert first.address.thread == "speaker/den" and second.address.thread is None
    await connector.send_part(first.address, "to the speaker", first.platform_id)
    await eventually(lambda: device.on("speaker/den"))
    forged = Address(channel="mqtt", chat="den", thread="in/den")  # would answer itself
    with pytest.raises(FatalConnectorError, match="not a reply topic"):
        await connector.send_part(forged, "loop", None)


# ---- the parser ------------------------------------------------------------------------------

def _msg(payload: bytes, *, topic: str = "p/in/c", retained: bool = False, mid: int = 7
         ) -> Received:
    return Received(topic=topic, payload=payload, retained=retained, packet_id=mid, session=1)


def test_ids_name_a_message_by_its_json_id_or_its_packet_and_content() -> None:
    def parse(msg: Received) -> Inbound | Skip:
        return parse_message(msg, prefix="p", channel="m", max_payload=1000)

    own = parse(_msg(b'{"id": 5, "text": "hi", "sender": "ann"}'))
    assert isinstance(own, Inbound) and own.platform_id == "c/5" and own.sender_id == "ann"
    first, again = parse(_msg(b"hi")), parse(_msg(b"hi"))
    assert isinstance(first, Inbound) and isinstance(again, Inbound)
    assert first.platform_id == again.platform_id  # a redelivery: same packet id
    other = parse(_msg(b"hi", mid=8))
    assert isinstance(other, Inbound) and other.platform_id != first.platform_id
    retained = [parse(_msg(b"hi", retained=True, mid=m)) for m in (1, 2)]
    assert len({r.platform_id for r in retained if isinstance(r, Inbound)}) == 1
    image = parse(_msg(b"\xff\xd8\xff\xe0" + bytes(100)))
    assert isinstance(image, Inbound) and image.attachments[0].kind == "image"
    assert isinstance(parse(_msg(b'{"text": 5}')), Skip)
    assert isinstance(parse(_msg(b"x" * 1001)), Skip)
    assert isinstance(parse(_msg(b"hi", topic="p/in/c/deeper")), Skip)
    curly = parse(_msg(b"{not json"))
    assert isinstance(curly, Inbound) and curly.text == "{not json"


@pytest.mark.parametrize("requested", ["other/out/x", "p/in/x", "p/in", "p/#", "p/a/+/b",
                                       "p//x", "p/", "pp/out/x", None, 5])
def test_a_reply_topic_outside_the_prefix_or_into_the_inbox_is_refused(requested: object
                                                                         ) -> None:
    assert reply_topic_of("p", requested) is None


_JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                        lambda kids: st.lists(kids, max_size=3)
                        | st.dictionaries(st.sampled_from(
                            ["id", "text", "sender", "reply_topic", "attachments", "kind",
                             "size", "url"]), kids, max_size=5), max_leaves=12)


@given(payload=st.binary(max_size=300) | _JSONISH.map(lambda v: json.dumps(v).encode()),
       topic=st.text(max_size=30), retained=st.booleans(), mid=st.integers(0, 65535))
def test_the_parser_never_raises(payload: bytes, topic: str, retained: bool, mid: int) -> None:
    result = parse_message(_msg(payload, topic=f"p/in/{topic}", retained=retained, mid=mid),
                           prefix="p", channel="m", max_payload=200)
    assert isinstance(result, Inbound | Skip)
    if isinstance(result, Inbound):
        assert result.text or result.attachments
        assert result.address.thread is None or not result.address.thread.startswith("in")
