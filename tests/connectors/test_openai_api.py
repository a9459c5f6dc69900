"""What is the OpenAI-compatible API's own: the official ``openai`` client library talks to a
real gateway over HTTP (non-streaming and streaming), per-client keys, conversations, errors
in OpenAI's shape, idempotent retries, a client that stops waiting, inline pictures, audio
and files (and remote image URLs refused), and the key CLI.

What every channel shares is the contract suite's (tests/contract, harness_openai_api.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cli
from connectors.openai_api import keys
from connectors.openai_api._parse import ChatRequest, Malformed, parse_chat_request
from connectors.openai_api.manifest import OpenAIApiConfig
from connectors.openai_api.runtime import OpenAIApiConnector
from pyclaw_app.channels import SubmitResult, WebhookRequest
from pyclaw_app.channels.contract import AttachmentUnavailable
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Address, Attachment, ChannelState, Inbound
from pyclaw_app.store import Store
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG

NAME = "assistant-api"


@dataclass
class Api:
    gateway: Gateway
    base_url: str
    key: str

    def client(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key or self.key,
                                  max_retries=0, timeout=20)


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api(fake_llm: FakeOpenAI, make_gateway: Any) -> AsyncIterator[ApiFactory]:
    """A gateway with the channel (``section`` added to its config, ``settings`` to the
    gateway's), a vision model, a key issued for client "laptop", and the webhook server in
    front of it."""
    servers: list[WebhookServer] = []

    async def start(*, settings: dict[str, Any] | None = None, **section: Any) -> Api:
        gateway: Gateway = await make_gateway({
            "providers": [provider_section(fake_llm, vision=True)], **(settings or {}),
            "channels": {NAME: {"type": "openai_api", **section}}})
        await eventually(lambda: gateway.channels[NAME].state == ChannelState.ONLINE)
        key = await keys.issue(gateway.store.channel_state.of(NAME), "laptop")
        server = WebhookServer(gateway, "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        return Api(gateway, f"{server.url}/webhook/{NAME}/v1", key)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def api(start_api: ApiFactory) -> Api:
    return await start_api()


async def test_a_completion_through_the_official_client_is_a_journaled_conversation(
        api: Api, fake_llm: FakeOpenAI) -> None:
    client = api.client()
    first = await client.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "remember the word heron"}])
    assert first.choices[0].message.content == "Echo: remember the word heron"
    assert first.model == "anything" and first.object == "chat.completion"
    second = await client.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "and now?"}])
    assert second.choices[0].message.content == "Echo: and now?"
    # The gateway's memory: the second LLM call carries the first exchange.
    history = [m["content"] for m in fake_llm.requests[-1]["messages"] if m["role"] != "system"]
    assert history[:2] == ["remember the word heron", "Echo: remember the word heron"]

    async def journaled() -> list[Any]:
        # The answer is handed to the waiting request first; the journal records it after.
        rows = await api.gateway.store.db.fetchall(
            "SELECT direction, chat, sender_id, status FROM messages ORDER BY id")
        done = [(r["direction"], r["chat"], r["status"]) for r in rows]
        return rows if done == [("in", "laptop", "replied"), ("out", "laptop", "sent")] * 2 \
            else []

    rows = await eventually(journaled)
    assert rows[0]["sender_id"] == "laptop"


async def test_streaming_shows_the_text_as_the_model_writes_it(
        api: Api, fake_llm: FakeOpenAI) -> None:
    fake_llm.chunk_size = 3
    fake_llm.chunk_delay = 0.02
    stream = await api.client().chat.completions.create(
        model="m", stream=True, messages=[{"role": "user", "content": "stream this answer"}])
    pieces = [chunk.choices[0].delta.content async for chunk in stream
              if chunk.choices and chunk.choices[0].delta.content]
    assert "".join(pieces) == "Echo: stream this answer"
    assert len(pieces) > 3  # deltas as they came, not one block at the end


async def test_the_user_field_and_header_keep_conversations_apart(api: Api) -> None:
    client = api.client()
    await client.chat.completions.create(model="m", user="alice",
                                         messages=[{"role": "user", "content": "hi"}])
    await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Pyclaw-Conversation": "bob"})
    chats = await api.gateway.store.db.fetchall(
        "SELECT DISTINCT chat FROM messages WHERE direction='in' ORDER BY chat")
    assert [r["chat"] for r in chats] == ["laptop/alice", "laptop/bob"]


async def test_a_wrong_or_revoked_key_is_refused_in_openais_shape(api: Api) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        await api.client("pck-never-issued").chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "invalid_api_key"
    assert await keys.revoke(api.gateway.store.channel_state.of(NAME), "laptop")
    with pytest.raises(openai.AuthenticationError):
        await api.client().models.list()
    await eventually(lambda: api.gateway.store.logs.page(channel=NAME,
                                                         search="rejected an API request"))
    assert not await api.gateway.store.db.fetchall("SELECT id FROM messages")


async def test_models_lists_the_configured_model(api: Api) -> None:
    models = await api.client().models.list()
    assert [m.id for m in models.data] == ["pyclaw"]


async def test_a_bad_request_is_a_400_naming_the_parameter(api: Api) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        await api.client().chat.completions.create(
            model="m", messages=[{"role": "assistant", "content": "no user message"}])
    assert bad.value.param == "messages"
    await eventually(lambda: api.gateway.store.logs.page(channel=NAME, search="refused"))


async def test_a_retried_request_is_the_same_message_with_the_same_answer(
        api: Api, fake_llm: FakeOpenAI) -> None:
    client = api.client()
    asked = {"model": "m", "messages": [{"role": "user", "content": "once"}],
             "extra_headers": {"Idempotency-Key": "retry-me-1"}}
    first = await client.chat.completions.create(**asked)
    again = await client.chat.completions.create(**asked)
    assert again.id == first.id and again.choices[0].message.content == "Echo: once"
    assert len(fake_llm.requests) == 1


async def test_a_client_that_stops_waiting_leaves_the_reply_failed_not_sent(
        fake_llm: FakeOpenAI, start_api: ApiFactory) -> None:
    fake_llm.latency = 1.0
    api = await start_api(reply_timeout=0.2)
    with pytest.raises(openai.InternalServerError) as late:
        await api.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "slow"}])
    assert late.value.status_code == 504

    async def failed() -> bool:
        row = await api.gateway.store.db.fetchone(
            "SELECT status, error FROM messages WHERE direction='in'")
        return row is not None and row["status"] == "failed" and \
            "no longer waiting" in (row["error"] or "")

    await eventually(failed, timeout=10)


# ---- the connector alone: the stream around a restarted answer ------------------------------

async def test_a_restarted_answer_follows_what_the_stream_already_showed() -> None:
    ctx = RecordingContext(channel="api")
    conn = OpenAIApiConnector("api", OpenAIApiConfig())
    await conn.start(ctx)
    key = await keys.issue(ctx.state, "cli")
    body = json.dumps({"model": "m", "stream": True,
                       "messages": [{"role": "user", "content": "q"}]}).encode()
    response = await conn.handle_webhook(WebhookRequest(
        "POST", body, {"Authorization": f"Bearer {key}"}, path="/webhook/api/v1/chat/completions"))
    assert response.status == 200 and response.stream is not None
    pid = ctx.inbound[0].platform_id
    address = Address("api", "cli")
    conn.reply_delta(address, pid, "The first provi")
    conn.reply_reset(address, pid)  # failover: the second provider starts over
    conn.reply_delta(address, pid, "A different ")
    await conn.send_part(address, "A different answer.", pid)
    events = [chunk async for chunk in response.stream]
    deltas = [json.loads(e[6:])["choices"][0]["delta"].get("content", "")
              for e in events if e.startswith(b"data: {")]
    assert "".join(deltas) == "The first provi\n\nA different answer."
    assert events[-1] == b"data: [DONE]\n\n"
    await conn.stop()


# ---- inline files ----------------------------------------------------------------------------

def picture(data: bytes = PNG) -> dict[str, Any]:
    return {"type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}}


async def test_an_inline_picture_reaches_the_model_and_is_let_go_with_the_request(
        api: Api, fake_llm: FakeOpenAI) -> None:
    answer = await api.client().chat.completions.create(model="m", messages=[
        {"role": "user", "content": [{"type": "text", "text": "what is it?"}, picture()]}])
    assert answer.choices[0].message.content == "Echo: what is it?"
    assert fake_llm.images == [("image/png", PNG)]
    row = await api.gateway.store.db.fetchone(
        "SELECT attachments FROM messages WHERE direction='in'")
    assert row is not None and base64.b64encode(PNG).decode() not in str(row["attachments"])
    connector = api.gateway.channels[NAME].connector
    assert isinstance(connector, OpenAIApiConnector)
    [stored] = json.loads(str(row["attachments"]))
    with pytest.raises(AttachmentUnavailable, match="request that carried it has ended"):
        await connector.fetch_attachment(Attachment(**stored))


async def test_a_file_too_big_to_read_is_explained_in_the_answer(
        start_api: ApiFactory, fake_llm: FakeOpenAI) -> None:
    api = await start_api(settings={"attachments": {"max_bytes": 1024}})
    answer = await api.client().chat.completions.create(model="m", messages=[
        {"role": "user", "content": [picture(PNG + bytes(2048))]}])
    reply = answer.choices[0].message.content or ""
    assert reply.startswith("I could not read what you sent: the picture:"), reply
    assert fake_llm.requests == []


async def test_a_remote_image_url_is_refused_not_fetched(api: Api, fake_llm: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await api.client().chat.completions.create(model="m", messages=[{
            "role": "user", "content": [{"type": "image_url", "image_url": {
                "url": "http://169.254.169.254/latest/meta-data"}}]}])
    assert "does not fetch remote URLs" in caught.value.message
    assert caught.value.param == "messages"  # type: ignore[attr-defined]
    assert fake_llm.requests == []


# ---- the parser -------------------------------------------------------------------------------

def test_only_the_newest_user_message_is_taken_and_inline_bytes_stay_out() -> None:
    wav = base64.b64encode(b"RIFF fake wav").decode()
    pdf = base64.b64encode(b"%PDF-1.4 fake").decode()
    parsed = parse_chat_request({"model": "m", "user": "a b", "messages": [
        {"role": "user", "content": "old"}, {"role": "assistant", "content": "x"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
            {"type": "file", "file": {"filename": "a.pdf",
                                      "file_data": f"data:application/pdf;base64,{pdf}"}},
            {"type": "file", "file": {"filename": "b.bin", "file_data": pdf}}]}]})
    assert isinstance(parsed, ChatRequest)
    assert (parsed.text, parsed.user) == ("look", "a_b")
    assert [(a.kind, a.name, a.mime, a.url) for a in parsed.attachments] == [
        ("image", "", "image/png", None), ("audio", "audio.wav", "audio/wav", None),
        ("file", "a.pdf", "application/pdf", None), ("file", "b.bin", "", None)]
    assert [parsed.files[a.platform_id or ""] for a in parsed.attachments] == [
        b"\0\0\0", b"RIFF fake wav", b"%PDF-1.4 fake", b"%PDF-1.4 fake"]


@pytest.mark.parametrize(("part", "why"), [
    ({"type": "image_url", "image_url": {"url": "https://images.example/cat.png"}},
     "does not fetch remote URLs"),
    ({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}},
     "must be a base64 data: URL"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
     "image_url.url is not valid base64"),
    ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "flac"}},
     "'wav' or 'mp3'"),
    ({"type": "input_audio", "input_audio": {"format": "mp3"}}, "input_audio.data is empty"),
    ({"type": "file", "file": {"file_id": "file-abc123"}}, "send the file as file.file_data"),
])
def test_parts_the_gateway_cannot_read_are_refused_with_the_reason(
        part: dict[str, Any], why: str) -> None:
    parsed = parse_chat_request({"model": "m", "messages": [{"role": "user",
                                                            "content": [part]}]})
    assert isinstance(parsed, Malformed) and parsed.param == "messages"
    assert why in parsed.reason


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=30))
@settings(max_examples=300, deadline=None)
def test_the_parser_never_raises(body: Any) -> None:
    assert isinstance(parse_chat_request(body), ChatRequest | Malformed)


# ---- the key CLI ---------------------------------------------------------------------------

async def test_the_cli_issues_lists_and_revokes_keys(tmp_path: Any, capsys: Any) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert await cli._api_key(tmp_path / "pyclaw.yaml", tmp_path, "issue", NAME, "phone") == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith(keys.PREFIX)
    store = await Store(tmp_path).open()
    try:
        state = store.channel_state.of(NAME)
        assert await keys.client_for(state, key) == "phone"
        raw = await store.db.fetchone("SELECT value FROM channel_state WHERE channel=?", (NAME,))
        assert key not in raw["value"]  # only the hash is stored
    finally:
        await store.close()
    assert await cli._api_key(tmp_path / "pyclaw.yaml", tmp_path, "list", NAME, None) == 0
    assert "phone" in capsys.readouterr().out
    assert await cli._api_key(tmp_path / "pyclaw.yaml", tmp_path, "revoke", NAME, "phone") == 0
    assert await cli._api_key(tmp_path / "pyclaw.yaml", tmp_path, "revoke", NAME, "phone") == 1
    assert cli.build_parser().parse_args(["api-key", "list", NAME, *data]).action == "list"



class QuarantiningContext(RecordingContext):
    """A gateway whose journal refuses every message as unstorable (kept as a dead letter)."""

    async def submit(self, inbound: Inbound) -> SubmitResult:
        return SubmitResult(0, duplicate=False, quarantined=True)


async def test_a_message_the_journal_quarantines_is_refused_at_once() -> None:
    ctx = QuarantiningContext(channel="api")
    conn = OpenAIApiConnector("api", OpenAIApiConfig())
    await conn.start(ctx)
    key = await keys.issue(ctx.state, "cli")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "q"}]}).encode()
    response = await conn.handle_webhook(WebhookRequest(
        "POST", body, {"Authorization": f"Bearer {key}"}, path="/webhook/api/v1/chat/completions"))
    assert response.status == 422  # not held until reply_timeout for a reply that never comes
    assert json.loads(response.body)["error"]["code"] == "unstorable_message"
    await conn.stop()
