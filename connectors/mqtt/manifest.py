"""What the setup form and the registry know about MQTT; imports no SDK.

The wire format (also in the spec's description and the field help):

* in: ``<prefix>/in/<conversation>``, one conversation per last topic level. The payload
  is plain UTF-8 text, or a JSON object ``{"text": str, "id": str|int, "sender": str,
  "reply_topic": str, "attachments": [{"kind", "name", "mime", "size", "url"}]}`` (every
  key optional but text or attachments). ``id`` makes a message its own: a device that
  publishes it again (its PUBACK was lost) is answered once. A payload that is not UTF-8
  is taken as a file (an image when it looks like one) and reported as metadata only.
* out: ``<prefix>/out/<conversation>``, or the message's ``reply_topic`` when that lies
  under ``<prefix>/`` (never under ``<prefix>/in/``); JSON ``{"id", "conversation",
  "text", "reply_to"}`` or the bare text (``reply_format``).
* typing: ``<prefix>/typing/<conversation>`` (QoS 0) while a reply is being written.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from pyclaw_app.channels import (
    Capabilities,
    Category,
    ChannelConfig,
    ConnectorSpec,
    Limits,
    Transport,
    secret_field,
    utf8_len,
)

__all__ = ["MAX_TEXT", "SPEC", "MqttConfig"]

MAX_TEXT = 4000
"""Default longest reply part, in UTF-8 bytes of text. MQTT itself allows 256 MB, but the
devices that read these topics do not: PubSubClient (Arduino/ESP) defaults to a 256-byte
packet buffer that users commonly raise to a few KiB, ESPHome and Tasmota keep messages in
small fixed buffers, and a wall display shows a few hundred words at most. 4000 bytes fits
one screenful and a 4 KiB+ buffer with the JSON envelope (about 150 bytes more)."""


class MqttConfig(ChannelConfig):
    host: str = Field(description="The MQTT broker's host name or IP address "
                      "(e.g. homeassistant.local, 192.168.1.10).")
    port: int | None = Field(None, ge=1, le=65535,
                             description="Broker port. Blank: 1883, or 8883 with TLS.")
    tls: bool = Field(False, description="Connect with TLS (mqtts). The broker's certificate "
                      "and host name are verified against ca_file or the system's CAs.")
    ca_file: str = Field("", description="PEM file of the CA that signed the broker's "
                         "certificate (a self-signed broker: its certificate). Blank: the "
                         "system's CAs.")
    tls_insecure: bool = Field(False, description="Do not verify the broker's certificate "
                               "(anyone on the network can then read the traffic and the "
                               "password). For a first test only.")
    username: str = Field("", description="Broker user name (mosquitto_passwd); blank for a "
                          "broker that allows anonymous clients.")
    password: SecretStr | None = secret_field("Password of that user (stored in the keyring).")
    client_id: str = Field("", description="MQTT client id. Blank: one is generated once and "
                           "kept, so the broker keeps this channel's session and queues what "
                           "arrives while the gateway is down. Two clients with one id throw "
                           "each other off.")
    topic_prefix: str = Field("pyclaw", description="Topics live under this prefix: devices "
                              "publish to <prefix>/in/<conversation> (plain text or JSON "
                              "{\"text\", \"id\", \"sender\", \"reply_topic\"}) and read the "
                              "answer on <prefix>/out/<conversation>.")
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT version. 5 reports refused publishes (PUBACK reason codes) and "
        "keeps the session for session_expiry; 3.1.1 for old brokers, where a publish the "
        "broker's ACL refuses is silently dropped.")
    session_expiry: int = Field(
        86400, ge=0, le=4294967295, description="Seconds the broker keeps this channel's "
        "session, and the messages that arrive for it, after the gateway disconnects "
        "(MQTT 5; mosquitto also caps the queue with max_queued_messages). 0: nothing is "
        "kept while the gateway is down.")
    keepalive: int = Field(30, ge=5, le=600, description="Seconds between keep-alive pings: "
                           "how soon a dead connection is noticed.")
    retained: Literal["skip", "answer"] = Field(
        "skip", description="A retained message on an in-topic is an old one the broker "
        "replays on every subscribe. skip: log it and do not answer; answer: treat it as a "
        "message (answered once: its id is its content).")
    retain_replies: bool = Field(False, description="Publish replies retained, so a device "
                                 "that connects later reads the last answer.")
    reply_format: Literal["json", "text"] = Field(
        "json", description="json: {\"id\", \"conversation\", \"text\", \"reply_to\"}; "
        "text: the reply's text only.")
    max_text: int = Field(MAX_TEXT, ge=64, le=1_000_000, description="Longest reply part "
                          "in UTF-8 bytes; longer replies are split. Lower it for devices "
                          "with small MQTT buffers.")
    max_payload: int = Field(65536, ge=1024, le=16_777_216, description="Longest inbound "
                             "payload in bytes read as text; a longer one is skipped with a "
                             "log line.")
    publish_typing: bool = Field(True, description="Publish to <prefix>/typing/<conversation> "
                                 "(QoS 0) while a reply is being written.")

    @field_validator("topic_prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        value = value.strip().strip("/")
        if not value or any(c in value for c in "+#\0") or value.startswith("$"):
            raise ValueError("topic_prefix must be a plain topic (no +, #, leading $)")
        return value

    def missing_secrets(self) -> list[str]:
        return super().missing_secrets() + (
            ["password"] if self.username and self.password is None else [])


SPEC = ConnectorSpec(
    name="mqtt",
    title="MQTT",
    config_model=MqttConfig,
    runtime="connectors.mqtt.runtime:MqttConnector",
    requires=("paho",),
    install="pip install 'pyclaw[mqtt]'",
    icon="sensors",
    category=Category.OPEN_PROTOCOLS,
    brand_icon="mqtt",
    brand_color="#660066",
    docs_url="https://mosquitto.org/man/mosquitto-conf-5.html",
    description="Talk to the assistant over an MQTT broker (mosquitto, Home Assistant, "
                "EMQX): devices and scripts publish plain text or JSON {\"text\", \"id\", "
                "\"sender\", \"reply_topic\"} to <prefix>/in/<conversation> and read the "
                "answer on <prefix>/out/<conversation>. QoS 1 both ways; a message is "
                "acknowledged only once it is stored. The sender is whatever the device "
                "says: the broker's ACL decides who may publish.",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(typing=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf8_len),
)
