"""AiohttpRequest, PTB's networking backend on aiohttp, against a small Bot API on 127.0.0.1.

The backend must be a drop-in for PTB's ``HTTPXRequest``: the same bytes on the
wire (form fields with JSON-encoded values, multipart when files ride along),
status and payload handed back untouched so PTB maps errors itself, PTB's
``TimedOut`` / ``NetworkError`` split, and, the reason it exists, a cancelled
request gives its pooled connection back (encode/httpcore#1093 wedged a channel).
Where behaviour is compared, PTB's own ``HTTPXRequest`` is the reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import BodyPartReader, web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from connectors.telegram._aiohttp_request import AiohttpRequest, AnswerLost, NotSent
from connectors.telegram.runtime import _RawBot, _sent_id
from tests.fakes.server import FakeServer, json_response
from tests.support import eventually

TOKEN = "123456789:AAH-test-token"
CHAT = 4242
MARKUP = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="y"),
                                InlineKeyboardButton("No", callback_data="n")]])


@dataclass
class Seen:
    """One request as the Bot API server parsed it."""

    method: str
    content_type: str
    user_agent: str
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    """Part name -> (filename, content type, bytes), as telegram-bot-api reads them."""


class BotApi(FakeServer):
    """Just enough of the Bot API: ``getMe``, ``sendMessage``, ``sendDocument``, ``getUpdates``.

    ``getUpdates`` is a long poll that answers only once ``release`` is set, which
    is how tests keep a pooled connection busy (``stall_body``: the answer has
    started, its body has not finished). ``script`` makes a method answer with a
    given status and raw body instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.script: dict[str, tuple[int, bytes]] = {}
        self.held = 0
        self.release = asyncio.Event()
        self.stall_body = False

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bot{token}/{method}", self._dispatch)

    def calls(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]

    async def stop(self) -> None:
        self.release.set()  # let held handlers finish, so shutdown does not wait for them
        await super().stop()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        seen = Seen(method, request.headers.get("Content-Type", ""),
                    request.headers.get("User-Agent", ""))
        await _read_form(request, seen)
        self.seen.append(seen)
        if request.match_info["token"] != TOKEN:
            return _error(401, "Unauthorized")
        if method in self.script:
            status, body = self.script[method]
            return web.Response(status=status, body=body,
                                headers={"Content-Type": "application/json"})
        if method == "getMe":
            return _ok({"id": 123456789, "is_bot": True, "first_name": "Test",
                        "username": "pyclaw_test_bot"})
        if method == "getUpdates":
            return await self._held(request)
        if method == "sendMessage":
            if "chat_id" not in seen.fields or not seen.fields.get("text", "").strip():
                return _error(400, "Bad Request: message text is empty")
            return _ok(_message(seen, text=seen.fields["text"]))
        if method == "sendDocument":
            if "document" not in seen.files:
                return _error(400, "Bad Request: there is no document in the request")
            filename, mime, content = seen.files["document"]
            return _ok(_message(seen, caption=seen.fields.get("caption"), document={
                "file_id": "BQACAgIAAxkBAAI", "file_unique_id": "AgAD", "file_name": filename,
                "mime_type": mime, "file_size": len(content)}))
        return _error(404, "Not Found")

    async def _held(self, request: web.Request) -> web.StreamResponse:
        """Answer once released; with ``stall_body``, send the headers and half the body first."""
        self.held += 1
        if not self.stall_body:
            await self.release.wait()
            return _ok([])
        body = json.dumps({"ok": True, "result": []}).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[:5])
        await self.release.wait()
        with contextlib.suppress(ConnectionResetError):  # the client may have given up
            await response.write(body[5:])
            await response.write_eof()
        return response


async def _read_form(request: web.Request, seen: Seen) -> None:
    """Fields and files the way telegram-bot-api's HttpReader takes them."""
    if seen.content_type.startswith("multipart/form-data"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader)
            params = _disposition(part.headers.get("Content-Disposition", ""))
            data = await part.read(decode=False)
            if "filename" in params:
                seen.files[params["name"]] = (
                    params["filename"],
                    part.headers.get("Content-Type", "application/octet-stream"), bytes(data))
            else:
                seen.fields[params["name"]] = bytes(data).decode()
    elif seen.content_type.startswith("application/x-www-form-urlencoded"):
        seen.fields.update({k: str(v) for k, v in (await request.post()).items()})


def _disposition(header: str) -> dict[str, str]:
    """``name``/``filename`` of a form-data part, taken verbatim between the quotes.

    telegram-bot-api (tdnet/td/net/HttpReader.cpp) strips the quotes and does no
    other decoding, so a percent-encoded filename stays percent-encoded.
    """
    params: dict[str, str] = {}
    for item in header.removeprefix("form-data;").split(";"):
        key, _, value = item.strip().partition("=")
        value = value.strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params[key.strip()] = value
    return params


def _message(seen: Seen, **content: Any) -> dict[str, Any]:
    chat = int(seen.fields["chat_id"])
    return {"message_id": 77, "date": 1700000000, "chat": {"id": chat, "type": "private"},
            **{k: v for k, v in content.items() if v is not None}}


def _ok(result: object) -> web.Response:
    return json_response({"ok": True, "result": result})


def _error(code: int, description: str, **parameters: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json_response(body, status=code)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def api() -> AsyncIterator[BotApi]:
    async with BotApi() as server:
        yield server  # type: ignore[misc]


def url(api: BotApi, method: str) -> str:
    return f"{api.url}/bot{TOKEN}/{method}"


def bot(api: BotApi, request: BaseRequest) -> Bot:
    return Bot(TOKEN, base_url=f"{api.url}/bot", request=request)


def request_data(**values: object) -> RequestData:
    """What ``Bot`` builds from a method's arguments."""
    return RequestData([RequestParameter.from_input(k, v) for k, v in values.items()])


# ---- what goes on the wire --------------------------------------------------------------------


async def test_plain_call_is_urlencoded_with_ptb_json_values(api: BotApi) -> None:
    data = request_data(chat_id=CHAT, text="fish & chips = 10% + tip, ünïcode ✓",
                        reply_markup=MARKUP, disable_notification=True,
                        reply_parameters={"message_id": 5, "allow_sending_without_reply": True})
    async with AiohttpRequest() as request:
        status, payload = await request.do_request(url(api, "sendMessage"), "POST", data)

    assert status == 200
    assert json.loads(payload)["result"]["text"] == "fish & chips = 10% + tip, ünïcode ✓"
    (seen,) = api.calls("sendMessage")
    assert seen.content_type == "application/x-www-form-urlencoded"
    assert seen.user_agent == BaseRequest.USER_AGENT
    assert seen.fields == data.json_parameters
    assert json.loads(seen.fields["reply_markup"]) == MARKUP.to_dict()
    assert json.loads(seen.fields["reply_parameters"]) == {
        "message_id": 5, "allow_sending_without_reply": True}
    assert seen.fields["disable_notification"] == "true"


async def test_bot_method_sends_the_same_fields_as_httpx_request(api: BotApi) -> None:
    for request in (HTTPXRequest(), AiohttpRequest()):
        async with bot(api, request) as b:
            message = await b.send_message(CHAT, "hello", reply_markup=MARKUP)
        assert (message.message_id, message.chat.id, message.text) == (77, CHAT, "hello")

    by_httpx, by_aiohttp = api.calls("sendMessage")
    assert by_aiohttp.fields == by_httpx.fields
    assert json.loads(by_aiohttp.fields["reply_markup"]) == MARKUP.to_dict()
    assert by_aiohttp.user_agent == by_httpx.user_agent == BaseRequest.USER_AGENT


async def test_document_upload_is_multipart_with_the_file_part(api: BotApi) -> None:
    content = b"day,messages\nmon,12\ntue,7\n"
    async with bot(api, AiohttpRequest()) as b:
        message = await b.send_document(CHAT, InputFile(content, filename="report.csv"),
                                        caption="weekly", reply_markup=MARKUP)

    (seen,) = api.calls("sendDocument")
    assert seen.content_type.startswith("multipart/form-data; boundary=")
    assert seen.user_agent == BaseRequest.USER_AGENT
    assert seen.files == {"document": ("report.csv", "text/csv", content)}
    assert seen.fields.keys() == {"chat_id", "caption", "reply_markup"}
    assert seen.fields["chat_id"] == str(CHAT)
    assert seen.fields["caption"] == "weekly"
    assert json.loads(seen.fields["reply_markup"]) == MARKUP.to_dict()
    assert message.document is not None
    assert (message.document.file_name, message.document.file_size) == ("report.csv",
                                                                        len(content))


async def test_multipart_matches_httpx_request(api: BotApi) -> None:
    content = bytes(range(256)) * 4  # binary, every byte value
    data = request_data(chat_id=CHAT, caption="raw",
                        document=InputFile(content, filename="blob.bin"),
                        reply_parameters={"message_id": 3})
    for request in (HTTPXRequest(), AiohttpRequest()):
        async with request:
            status, _ = await request.do_request(url(api, "sendDocument"), "POST", data)
        assert status == 200

    by_httpx, by_aiohttp = api.calls("sendDocument")
    assert by_aiohttp.fields == by_httpx.fields == {
        "chat_id": str(CHAT), "caption": "raw", "reply_parameters": '{"message_id": 3}'}
    assert by_aiohttp.files == by_httpx.files == {
        "document": ("blob.bin", "application/octet-stream", content)}


async def test_non_ascii_filename_arrives_as_httpx_request_sends_it(api: BotApi) -> None:
    name = "отчёт за май.txt"
    data = request_data(chat_id=CHAT, document=InputFile(b"text", filename=name))
    for request in (HTTPXRequest(), AiohttpRequest()):
        async with request:
            await request.do_request(url(api, "sendDocument"), "POST", data)

    by_httpx, by_aiohttp = api.calls("sendDocument")
    assert by_httpx.files["document"][0] == name
    assert by_aiohttp.files["document"][0] == name


# ---- answers: status and payload untouched, PTB maps them -------------------------------------


async def test_status_and_payload_come_back_unchanged(api: BotApi) -> None:
    body = b'{"ok":false,"error_code":418,"description":"I\'m a teapot"}\n\x00trailing'
    api.script["sendMessage"] = (418, body)
    async with AiohttpRequest() as request:
        answer = await request.do_request(url(api, "sendMessage"), "POST",
                                          request_data(chat_id=CHAT, text="x"))
    assert answer == (418, body)


async def test_429_surfaces_as_retry_after(api: BotApi) -> None:
    api.script["sendMessage"] = (429, json.dumps({
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7}}).encode())
    async with bot(api, AiohttpRequest()) as b:
        with pytest.raises(RetryAfter) as caught:
            await b.send_message(CHAT, "hello")
    wait = caught.value.retry_after
    assert (wait.total_seconds() if isinstance(wait, timedelta) else wait) == 7


async def test_401_surfaces_as_invalid_token(api: BotApi) -> None:
    b = Bot("987654:wrong-token", base_url=f"{api.url}/bot", request=AiohttpRequest())
    with pytest.raises(InvalidToken):
        await b.initialize()
    await b.shutdown()
    assert [s.method for s in api.seen] == ["getMe"]


async def test_400_surfaces_as_bad_request_with_telegrams_description(api: BotApi) -> None:
    async with bot(api, AiohttpRequest()) as b:
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await b.send_message(CHAT, " ")


# ---- timeouts and network errors --------------------------------------------------------------


async def test_no_answer_within_read_timeout_is_timed_out(api: BotApi) -> None:
    async with AiohttpRequest(read_timeout=0.2) as request:
        with pytest.raises(AnswerLost, match="aiohttp"):  # a TimedOut: it may have arrived
            await request.do_request(url(api, "getUpdates"), "POST")
    assert api.held == 1


async def test_read_timeout_given_per_call_wins_over_the_default(api: BotApi) -> None:
    async with AiohttpRequest(read_timeout=60.0) as request:
        with pytest.raises(TimedOut, match="aiohttp"):
            await request.do_request(url(api, "getUpdates"), "POST", read_timeout=0.2)


async def test_refused_connection_is_network_error_not_timed_out() -> None:
    async with AiohttpRequest(connect_timeout=5.0) as request:
        with pytest.raises(NetworkError) as caught:
            await request.do_request(f"http://127.0.0.1:{_closed_port()}/bot{TOKEN}/getMe",
                                     "POST")
    assert isinstance(caught.value, NotSent) and not isinstance(caught.value, TimedOut)
    assert caught.value.message.startswith("aiohttp.ClientConnectorError")


async def test_refused_connection_through_bot_is_network_error() -> None:
    b = Bot(TOKEN, base_url=f"http://127.0.0.1:{_closed_port()}/bot",
            request=AiohttpRequest(connect_timeout=5.0))
    with pytest.raises(NetworkError) as caught:
        await b.initialize()  # getMe, the way probe() checks a channel
    await b.shutdown()
    assert not isinstance(caught.value, TimedOut)
    assert caught.value.message.startswith("aiohttp.ClientConnectorError")


# ---- cancellation and the connection pool -----------------------------------------------------


def _pool_of_one() -> AiohttpRequest:
    """One connection; a slot that leaked shows up as TimedOut after about two seconds."""
    return AiohttpRequest(connection_pool_size=1, read_timeout=5.0, connect_timeout=1.0,
                          pool_timeout=1.0)


@pytest.mark.parametrize("stall_body", [False, True], ids=["before-headers", "mid-body"])
async def test_cancelled_request_gives_its_connection_back(api: BotApi, stall_body: bool
                                                           ) -> None:
    api.stall_body = stall_body
    async with _pool_of_one() as request:
        poll = asyncio.create_task(request.do_request(url(api, "getUpdates"), "POST"),
                                   name="held-poll")
        await eventually(lambda: api.held == 1)
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll

        status, _ = await request.do_request(url(api, "getMe"), "POST")
        assert status == 200
        status, _ = await request.do_request(url(api, "getMe"), "POST")
        assert status == 200
    assert len(api.calls("getMe")) == 2


async def test_cancelled_requests_queued_behind_a_full_pool_do_not_leak(api: BotApi) -> None:
    async with _pool_of_one() as request:
        poll = asyncio.create_task(request.do_request(url(api, "getUpdates"), "POST"),
                                   name="held-poll")
        await eventually(lambda: api.held == 1)
        queued = [asyncio.create_task(request.do_request(url(api, "getMe"), "POST"),
                                      name=f"queued-{n}") for n in range(3)]
        await asyncio.sleep(0.1)  # let them reach the pool's wait queue
        assert not any(t.done() for t in queued)
        assert api.calls("getMe") == []  # the pool really is full
        for task in queued:
            task.cancel()
        results = await asyncio.gather(*queued, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

        api.release.set()
        assert (await poll)[0] == 200
        after = await asyncio.gather(*(
            asyncio.create_task(request.do_request(url(api, "getMe"), "POST"), name=f"after-{n}")
            for n in range(3)))
        assert [status for status, _ in after] == [200, 200, 200]
    assert len(api.calls("getMe")) == 3  # the cancelled ones never reached the server


async def test_waiting_for_a_full_pool_times_out_and_frees_the_queue(api: BotApi) -> None:
    async with _pool_of_one() as request:
        poll = asyncio.create_task(request.do_request(url(api, "getUpdates"), "POST"),
                                   name="held-poll")
        await eventually(lambda: api.held == 1)
        # never left, so safe to send again; and it says the pool, not Telegram, was full
        with pytest.raises(NotSent, match=r"all 1 of the bot's connections were busy"):
            await request.do_request(url(api, "getMe"), "POST", connect_timeout=0.1,
                                     pool_timeout=0.1)
        api.release.set()
        assert (await poll)[0] == 200
        assert (await request.do_request(url(api, "getMe"), "POST"))[0] == 200
    assert len(api.calls("getMe")) == 1


# ---- lifecycle --------------------------------------------------------------------------------


async def test_do_request_before_initialize_raises_runtime_error(api: BotApi) -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request(url(api, "getMe"), "POST")
    assert api.seen == []


async def test_do_request_after_shutdown_raises_runtime_error(api: BotApi) -> None:
    request = AiohttpRequest()
    async with request:
        assert (await request.do_request(url(api, "getMe"), "POST"))[0] == 200
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request(url(api, "getMe"), "POST")
    await request.shutdown()  # a second shutdown is harmless
    assert len(api.seen) == 1


async def test_initialize_again_after_shutdown_works(api: BotApi) -> None:
    request = AiohttpRequest()
    await request.initialize()
    await request.initialize()  # idempotent: still one session
    await request.shutdown()
    await request.initialize()
    try:
        assert (await request.do_request(url(api, "getMe"), "POST"))[0] == 200
    finally:
        await request.shutdown()


# ---- sendMessage's raw answer -----------------------------------------------------------------


async def test_send_message_raw_returns_telegrams_json(api: BotApi) -> None:
    b = _RawBot(TOKEN, base_url=f"{api.url}/bot", request=AiohttpRequest())
    async with b:
        sent = await b.send_message_raw({
            "chat_id": CHAT, "text": "<b>hi</b>", "parse_mode": "HTML",
            "reply_parameters": {"message_id": 9, "allow_sending_without_reply": True}})
    assert isinstance(sent, dict)
    assert _sent_id(sent, CHAT) == f"{CHAT}:77"
    (seen,) = api.calls("sendMessage")
    assert json.loads(seen.fields["reply_parameters"]) == {
        "message_id": 9, "allow_sending_without_reply": True}


@pytest.mark.parametrize("result", [True, {"ok": 1}, [], "sent"],
                         ids=["true", "no-message-id", "list", "string"])
async def test_send_message_raw_with_a_malformed_success_answer_does_not_raise(
        api: BotApi, result: object) -> None:
    api.script["sendMessage"] = (200, json.dumps({"ok": True, "result": result}).encode())
    b = _RawBot(TOKEN, base_url=f"{api.url}/bot", request=AiohttpRequest())
    async with b:
        sent = await b.send_message_raw({"chat_id": CHAT, "text": "hi"})
    assert sent == result
    assert _sent_id(sent, CHAT) == f"{CHAT}:"


@pytest.mark.parametrize(("sent", "chat", "expected"), [
    ({"message_id": 77, "chat": {"id": -100123, "type": "supergroup"}}, "@channel",
     "-100123:77"),
    ({"message_id": 77, "chat": {"id": 42}}, 42, "42:77"),
    ({"message_id": 5}, 42, "42:5"),
    ({"message_id": 5, "chat": None}, "@channel", "@channel:5"),
    ({"message_id": 5, "chat": "oops"}, 42, "42:5"),
    ({"message_id": 5, "chat": {"type": "private"}}, 42, "42:5"),
    ({"chat": {"id": 42}}, 42, "42:"),
    ({}, 42, "42:"),
    (None, 42, "42:"),
    (True, 42, "42:"),
    ([{"message_id": 1}], 42, "42:"),
    ("77", 42, "42:"),
], ids=["normal", "same-chat", "no-chat", "chat-null", "chat-not-object", "chat-without-id",
        "no-message-id", "empty", "none", "true", "list", "string"])
def test_sent_id(sent: object, chat: int | str, expected: str) -> None:
    assert _sent_id(sent, chat) == expected
