"""A fake OpenAI API on 127.0.0.1, following the published Chat Completions reference.

Serves ``POST /v1/chat/completions`` (plain JSON and SSE streaming, with
``stream_options.include_usage``) and ``GET /v1/models``. Errors use the API's
``{"error": {"message", "type", "param", "code"}}`` shape. Tests script it
with a ``responder`` and a queue of faults: 429 with Retry-After, 500, a slow
answer, a dropped connection, or a stream cut after a few chunks.

Function calling follows the reference: ``tools`` are validated
(``{"type": "function", "function": {"name", "parameters"}}``), a responder
may answer with :class:`FakeReply` holding tool calls, which stream as
``delta.tool_calls`` pieces (``index``, then ``id``/``type``/``function.name``
in the first piece and ``function.arguments`` in slices) ending with
``finish_reason: "tool_calls"``. A ``role: tool`` message must answer a
``tool_call_id`` of the preceding assistant ``tool_calls`` (400 otherwise), and
``tool_choice: "none"`` makes the fake answer in text.

Image input follows the vision guide: a user message's ``content`` may be a list of
``{"type": "text"}`` and ``{"type": "image_url", "image_url": {"url": ...}}`` parts (a
``data:<mime>;base64,`` URL or an http(s) one); the decoded pictures are kept in
:attr:`FakeOpenAI.images`, and a model outside ``vision_models`` refuses them with the
API's 400. ``POST /v1/audio/transcriptions`` takes the multipart upload the reference
describes (``file`` and ``model``, optional ``language``, ``prompt``, ``response_format``)
and answers ``{"text": ...}`` from :attr:`FakeOpenAI.transcriber`; each upload is kept in
:attr:`FakeOpenAI.transcriptions`. ``POST /v1/audio/speech`` takes the reference's JSON
(``model``, ``input`` of at most 4096 characters, ``voice``, ``response_format`` mp3 by
default, ``speed`` 0.25-4) and answers the audio itself, real bytes of that format made
from the text (``speech_audio.py``); each request is kept in :attr:`FakeOpenAI.speeches`.
Scripted faults apply to both audio endpoints.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, json_response
from tests.fakes.speech_audio import CONTENT_TYPES, speech_audio

__all__ = ["FakeOpenAI", "FakeReply", "FakeToolCall", "Fault", "Speech", "Transcription"]

AUDIO_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
"""What /audio/transcriptions accepts, judged (as OpenAI does) by the file name's ending."""
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage",
          "shimmer", "verse")
MAX_SPEECH_INPUT = 4096
IMAGE_TOKENS = 85
"""What a low-detail picture costs in prompt tokens (the vision guide's figure)."""


@dataclass(frozen=True)
class Transcription:
    """One upload to /v1/audio/transcriptions, as the fake received it."""

    model: str
    filename: str
    content_type: str
    data: bytes
    language: str | None


@dataclass(frozen=True)
class Speech:
    """One request to /v1/audio/speech, and the audio the fake answered."""

    model: str
    input: str
    voice: str
    response_format: str
    data: bytes


@dataclass
class Fault:
    """One scripted misbehaviour for the next request."""

    status: int | None = None  # 429, 500, 503...
    retry_after: float | None = None
    delay: float = 0.0  # seconds before answering (a slow model / a timeout)
    drop: bool = False  # close the connection without an answer
    cut_after: int | None = None
    """Stream this many text chunks, then fail mid-stream (a cut connection here; the
    Anthropic fake sends an ``error`` event of ``status`` when one is set)."""


@dataclass
class FakeToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None  # send this text instead (e.g. invalid JSON)


@dataclass
class FakeReply:
    """What a responder returns to make the model call tools (``text`` may preface them)."""

    text: str = ""
    tool_calls: list[FakeToolCall] = field(default_factory=list)


Responder = Callable[[list[dict[str, Any]]], "str | FakeReply"]


def echo(messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    content = last.get("content", "")
    if isinstance(content, list):  # content parts
        content = " ".join(p.get("text", "") for p in content
                           if isinstance(p, dict) and p.get("type") == "text")
    return f"Echo: {content}"


async def before_answer(request: web.Request, faults: deque[Fault], latency: float,
                        refuse: Callable[[Fault], web.Response]
                        ) -> tuple[Fault | None, web.StreamResponse | None]:
    """What both LLM fakes do before answering: take the next scripted fault, wait out the
    model's latency and the fault's delay, then drop the connection or refuse with the
    fault's status (``refuse`` builds the API's own error body). Returns the fault, for
    a mid-stream cut, and the early response if there is one."""
    fault = faults.popleft() if faults else None
    if latency:
        await asyncio.sleep(latency)
    if fault is None:
        return None, None
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.drop:
        assert request.transport is not None
        request.transport.close()
        return fault, web.Response(status=500)
    if fault.status is not None and fault.cut_after is None:
        return fault, refuse(fault)
    return fault, None


def _cut_to_limit(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Honour ``max_completion_tokens`` (or the older ``max_tokens``) as the API does: the
    answer stops there with ``finish_reason: "length"``. Four characters count as a token."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < 4 * limit < len(text):
        return text[:4 * limit], "length"
    return text, "stop"


class FakeOpenAI(FakeServer):
    def __init__(self, *, api_key: str | None = None, models: tuple[str, ...] = ("fake-model",),
                 responder: Responder = echo, chunk_size: int = 8, latency: float = 0.0,
                 chunk_delay: float = 0.0, vision_models: tuple[str, ...] | None = None,
                 transcriber: Callable[[bytes, str], str] | None = None,
                 audio_models: tuple[str, ...] = ("whisper-1",),
                 speech_models: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
                 ) -> None:
        super().__init__()
        self.vision_models = vision_models
        """Models that take image input; None: every model."""
        self.images: list[tuple[str, bytes]] = []
        """(MIME type, bytes) of every picture a request carried as a data URL, in order."""
        self.transcriber = transcriber or (lambda data, name: f"(speech in {name})")
        """(audio bytes, file name) -> the transcript /audio/transcriptions answers."""
        self.audio_models = audio_models
        self.transcriptions: list[Transcription] = []
        self.speech_models = speech_models
        self.speeches: list[Speech] = []
        self.chunk_delay = chunk_delay
        """Seconds between streamed chunks: a model that writes as it thinks."""
        self.api_key = api_key
        self.models = models
        self.responder = responder
        self.chunk_size = chunk_size
        self.latency = latency
        self.faults: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/audio/speech", self._speech)

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error",
                          "invalid_api_key")
        return None

    async def _models(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        return json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in self.models]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.",
                          "invalid_request_error", None)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' is a required property", "invalid_request_error",
                          None, param="messages")
        problem = _check_tools(body.get("tools")) or _check_tool_messages(messages)
        if problem is not None:
            param, message = problem
            return _error(400, message, "invalid_request_error", None, param=param)
        model = body.get("model")
        if model not in self.models:
            return _error(404, f"The model `{model}` does not exist or you do not have access "
                          "to it.", "invalid_request_error", "model_not_found", param="model")
        pictures, problem = _content_images(messages)
        if problem is None and pictures and self.vision_models is not None \
                and model not in self.vision_models:
            problem = ("messages", "Invalid content type. image_url is only supported by "
                       "certain models.")
        if problem is not None:
            param, message = problem
            return _error(400, message, "invalid_request_error", None, param=param)
        self.images += pictures
        self.requests.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fault, early = await before_answer(request, self.faults, self.latency,
                                               _fault_response)
            if early is not None:
                return early
            answer = self.responder(messages)
            reply = answer if isinstance(answer, FakeReply) else FakeReply(answer)
            if reply.tool_calls and (body.get("tool_choice") == "none" or not body.get("tools")):
                reply = FakeReply(reply.text or "(answered without tools)")
            text, finish = _cut_to_limit(reply.text, body)
            calls = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": c.name, "arguments": c.raw_arguments
                                   if c.raw_arguments is not None else json.dumps(c.arguments)}}
                     for c in reply.tool_calls]
            prompt_tokens = sum(_text_length(m.get("content")) for m in messages) // 4 + 1 \
                + IMAGE_TOKENS * len(pictures)
            completion_tokens = (len(text) + len(json.dumps(calls) if calls else "")) // 4 + 1
            if body.get("stream"):
                return await self._stream(request, body, model, text, calls, prompt_tokens,
                                          completion_tokens, fault, finish)
            message: dict[str, Any] = {"role": "assistant", "content": text or None,
                                       "refusal": None}
            if calls:
                message["tool_calls"] = calls
            return json_response({
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                "created": int(time.time()), "model": model, "system_fingerprint": None,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if calls else finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}})
        finally:
            self.in_flight -= 1

    async def _stream(self, request: web.Request, body: dict[str, Any], model: str, text: str,
                      calls: list[dict[str, Any]], prompt_tokens: int, completion_tokens: int,
                      fault: Fault | None, finish: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model, "system_fingerprint": None,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                 "finish_reason": finish}]}

        events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        pieces = [chunk({"content": text[i:i + self.chunk_size]}, None)
                  for i in range(0, len(text), self.chunk_size)]
        if fault is not None and fault.cut_after is not None:
            head = events + pieces[:fault.cut_after]
            await resp.write(b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in head))
            assert request.transport is not None
            request.transport.close()
            return resp
        events += pieces
        for index, call in enumerate(calls):
            fn = call["function"]
            events.append(chunk({"tool_calls": [{
                "index": index, "id": call["id"], "type": "function",
                "function": {"name": fn["name"], "arguments": ""}}]}, None))
            args = fn["arguments"]
            events += [chunk({"tool_calls": [{"index": index, "function": {
                "arguments": args[i:i + self.chunk_size]}}]}, None)
                for i in range(0, len(args), self.chunk_size)]
        events.append(chunk({}, "tool_calls" if calls else finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": None, "choices": [],
                           "usage": {"prompt_tokens": prompt_tokens,
                                     "completion_tokens": completion_tokens,
                                     "total_tokens": prompt_tokens + completion_tokens}})
        if self.chunk_delay:
            for event in events:
                await resp.write(f"data: {json.dumps(event)}\n\n".encode())
                await asyncio.sleep(self.chunk_delay)
            await resp.write(b"data: [DONE]\n\n")
        else:
            payload = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
            await resp.write(payload + b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


    async def _transcriptions(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        if request.content_type != "multipart/form-data":
            return _error(400, "Invalid Content-Type header (expected multipart/form-data)",
                          "invalid_request_error", None)
        form = await request.post()
        upload, model = form.get("file"), form.get("model")
        if not isinstance(upload, web.FileField):
            return _error(400, "Missing required parameter: 'file'.", "invalid_request_error",
                          None, param="file")
        if not isinstance(model, str) or not model:
            return _error(400, "Missing required parameter: 'model'.", "invalid_request_error",
                          None, param="model")
        if model not in self.audio_models:
            return _error(404, f"The model `{model}` does not exist or you do not have access "
                          "to it.", "invalid_request_error", "model_not_found", param="model")
        ending = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
        if ending not in AUDIO_FORMATS:
            return _error(400, f"Invalid file format. Supported formats: {list(AUDIO_FORMATS)}",
                          "invalid_request_error", None, param="file")
        data = upload.file.read()
        language = form.get("language")
        self.transcriptions.append(Transcription(
            model, upload.filename, upload.content_type, data,
            language if isinstance(language, str) else None))
        _, early = await before_answer(request, self.faults, 0.0, _fault_response)
        if early is not None:
            return early
        text = self.transcriber(data, upload.filename)
        if form.get("response_format") == "text":
            return web.Response(text=text, content_type="text/plain")
        return json_response({"text": text, "usage": {"type": "duration", "seconds": 1}})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.",
                          "invalid_request_error", None)
        if not isinstance(body, dict):
            return _error(400, "Invalid type for body: expected an object.",
                          "invalid_request_error", None)
        problem = _check_speech(body)
        if problem is not None:
            param, message = problem
            return _error(400, message, "invalid_request_error", None, param=param)
        model = body["model"]
        if model not in self.speech_models:
            return _error(404, f"The model `{model}` does not exist or you do not have access "
                          "to it.", "invalid_request_error", "model_not_found", param="model")
        _, early = await before_answer(request, self.faults, 0.0, _fault_response)
        if early is not None:
            return early
        fmt = body.get("response_format", "mp3")
        data = speech_audio(body["input"], fmt)
        self.speeches.append(Speech(model, body["input"], body["voice"], fmt, data))
        return web.Response(body=data, content_type=CONTENT_TYPES[fmt])


def _check_speech(body: dict[str, Any]) -> tuple[str, str] | None:
    """What the reference's CreateSpeechRequest schema refuses in ``body``."""
    for name in ("model", "input", "voice"):
        if not isinstance(body.get(name), str) or not body[name]:
            return name, f"Missing required parameter: '{name}'."
    if len(body["input"]) > MAX_SPEECH_INPUT:
        return "input", (f"Invalid 'input': string too long. Expected a string with maximum "
                         f"length {MAX_SPEECH_INPUT}, but got a string with length "
                         f"{len(body['input'])} instead.")
    if body["voice"] not in VOICES:
        return "voice", f"Invalid value: '{body['voice']}'. Supported values are: {list(VOICES)}."
    fmt = body.get("response_format", "mp3")
    if fmt not in CONTENT_TYPES:
        return "response_format", (f"Invalid value: '{fmt}'. Supported values are: "
                                   f"{list(CONTENT_TYPES)}.")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4:
        return "speed", "Invalid 'speed': expected a number from 0.25 to 4.0."
    return None


def _content_images(messages: list[Any]) -> tuple[list[tuple[str, bytes]],
                                                  tuple[str, str] | None]:
    """The pictures of every content-part list, and what the API would refuse in them."""
    pictures: list[tuple[str, bytes]] = []
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind != "image_url":
                return [], (f"{where}.type", f"Invalid value: '{kind}'. Supported values are: "
                            "'text', 'image_url', 'input_audio', 'refusal', 'audio' and 'file'.")
            if m.get("role") != "user":
                return [], (where, "Image URLs are only allowed for messages with role 'user'")
            url = (part.get("image_url") or {}).get("url") \
                if isinstance(part.get("image_url"), dict) else None
            if not isinstance(url, str):
                return [], (f"{where}.image_url.url", "Missing required parameter: "
                            f"'{where}.image_url.url'.")
            if url.startswith("data:"):
                head, _, payload = url.partition(",")
                mime = head[5:].split(";")[0]
                if not head.endswith(";base64") or mime not in (
                        "image/jpeg", "image/png", "image/gif", "image/webp"):
                    return [], (f"{where}.image_url.url", "Invalid image URL: expected a "
                                "base64 data URL of a png, jpeg, gif or webp image.")
                try:
                    pictures.append((mime, base64.b64decode(payload, validate=True)))
                except binascii.Error:
                    return [], (f"{where}.image_url.url", "Invalid base64 image_url.")
            elif not url.startswith(("http://", "https://")):
                return [], (f"{where}.image_url.url", "Invalid image URL.")
    return pictures, None


def _text_length(content: Any) -> int:
    if isinstance(content, list):
        return sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    return len(str(content or ""))


def _check_tools(tools: Any) -> tuple[str, str] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools", "Invalid type for 'tools': expected an array."
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" \
                or not isinstance(fn, dict):
            return f"tools[{i}]", f"Invalid value for 'tools[{i}]': expected a function tool."
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            return f"tools[{i}].function.name", "Missing required parameter: 'name'."
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, dict)
                                   or params.get("type") != "object"):
            return (f"tools[{i}].function.parameters",
                    "Invalid schema for function: schema must be a JSON Schema of 'type: "
                    "\"object\"'.")
    return None


def _check_tool_messages(messages: list[Any]) -> tuple[str, str] | None:
    """Each ``role: tool`` message answers a call of the closest assistant ``tool_calls``."""
    open_ids: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return f"messages[{i}]", f"Invalid type for 'messages[{i}]': expected an object."
        if m.get("role") == "assistant":
            open_ids = {c.get("id") for c in m.get("tool_calls") or []}
        elif m.get("role") == "tool":
            if m.get("tool_call_id") not in open_ids:
                return (f"messages.[{i}].role", "Invalid parameter: messages with role 'tool' "
                        "must be a response to a preceeding message with 'tool_calls'.")
        else:
            open_ids = set()
    return None


def _error(status: int, message: str, type_: str, code: str | None, *,
           param: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": {"message": message, "type": type_, "param": param,
                                    "code": code}}, status=status, headers=headers)


def _fault_response(fault: Fault) -> web.Response:
    headers = {}
    if fault.retry_after is not None:
        headers["retry-after"] = str(fault.retry_after)
        headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
    if fault.status == 429:
        return _error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                      headers=headers)
    return _error(fault.status or 500, "The server had an error while processing your request.",
                  "server_error", None, headers=headers)
