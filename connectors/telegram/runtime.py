"""The Telegram connector: python-telegram-bot's ``Bot`` for API calls, our own polling loop.

PTB's ``Updater`` confirms updates (advances the offset) before handlers run;
we need the opposite order — journal first, confirm after — so the loop here
asks for raw updates, submits each one, and only then moves the offset past it
(kept in ``ctx.state`` so a restart resumes there). Telegram confirms an update
as soon as getUpdates is called with a higher offset, so the next poll is the
acknowledgement. Webhook mode checks the secret header before parsing, journals,
and answers 200 only after ``ctx.submit`` (``ConnectorBase.receive``).
"""

from __future__ import annotations

import asyncio
import re
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import quote

from telegram import Bot, BotCommand, InputFile, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from connectors.telegram._aiohttp_request import AiohttpRequest, AnswerLost
from connectors.telegram._format import to_html
from connectors.telegram._parse import BotIdentity, describe_skip, parse_update, update_id_of
from connectors.telegram.manifest import SPEC, TelegramConfig
from pyclaw_app.channels import (
    ConnectorBase,
    ProbeResult,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    same_secret,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable, OutboundFile
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    PyclawError,
    RetryableError,
)
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "TelegramConnector"]

T = TypeVar("T")
ALLOWED_UPDATES = ("message",)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
OFFSET_KEY = "offset"
"""``ctx.state`` key of the next update_id to ask for: everything below it is journaled."""
_SECRET_CHARS = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_READ_MARGIN = 10.0
"""Seconds a long poll may take beyond its ``timeout`` before we call it a network failure."""
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_MAX_COMMANDS = 100
_MAX_COMMAND_DESCRIPTION = 256
TELEGRAM_FILE_LIMIT = 20 * 2**20
"""The largest file getFile hands a bot (core.telegram.org/bots/api#getfile)."""
UPLOAD_LIMIT = 50 * 2**20
"""The largest file a bot may upload ("other files" in core.telegram.org/bots/api#sending-files)."""
PHOTO_LIMIT = 10 * 2**20
"""sendPhoto's limit ("The photo must be at most 10 MB in size")."""
MAX_CAPTION = 1024
_PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
_VOICE_TYPES = ("audio/ogg", "audio/mpeg", "audio/mp4")
"""What sendVoice plays as a voice message: OGG/Opus, MP3 or M4A."""
_AUDIO_TYPES = ("audio/mpeg", "audio/mp4")


class _RawBot(Bot):
    """A ``Bot`` that can return getUpdates' and sendMessage's raw JSON.

    ``Bot.get_updates`` deserializes the whole batch and raises if one update
    does not fit PTB's types, which would stall polling on that update forever;
    the raw list lets us skip (and log) just the broken one. ``Bot.send_message``
    builds a full ``Message`` from every answer, of which we keep two ids: that
    was 8 % of the gateway's CPU under load (bench/RESULTS.md, section 4).
    ``_post`` is the protected hook PTB's own ``ExtBot`` builds on; it keeps
    PTB's request encoding, error mapping and connection pools.
    """

    async def send_message_raw(self, payload: dict[str, object]) -> object:
        return await self._post("sendMessage", payload)

    async def get_file_raw(self, file_id: str) -> object:
        """getFile's File object as sent: ``Bot.get_file`` rewrites ``file_path`` and, for a
        path that exists on this machine, would read a local file instead of downloading."""
        return await self._post("getFile", {"file_id": file_id})

    async def get_raw_updates(self, *, offset: int | None, timeout: int, limit: int = 100
                              ) -> object:
        return await self._post(
            "getUpdates",
            {"offset": offset, "timeout": timeout, "limit": limit,
             "allowed_updates": list(ALLOWED_UPDATES)},
            read_timeout=timeout + _READ_MARGIN,
        )


def _sent_id(sent: object, chat: int | str) -> str:
    """``chat:message`` from sendMessage's result, the id ``edit`` takes back.

    Never raises: the message is out, and an answer without the usual fields
    must not make the gateway send it again; at worst it cannot be edited.
    """
    fields = sent if isinstance(sent, dict) else {}
    chat_info = fields.get("chat")
    chat_id = chat_info.get("id", chat) if isinstance(chat_info, dict) else chat
    return f"{chat_id}:{fields.get('message_id', '')}"


def _retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after is an int today and a timedelta tomorrow; accept both quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: int | float | timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _redacted(text: str, token: str | None) -> str:
    """PTB's messages can embed the bot token (it is part of every URL)."""
    return text.replace(token, "<token>") if token else text


def _map_error(exc: TelegramError, token: str | None) -> ConnectorError:
    """The one place PTB exceptions become pyclaw's fatal/retryable split."""
    message = _redacted(exc.message, token)
    if isinstance(exc, InvalidToken | EndPointNotFound):
        return FatalConnectorError("Telegram rejected the bot token (check it with @BotFather)")
    if isinstance(exc, RetryAfter):
        seconds = _retry_seconds(exc)
        return RetryableError(f"Telegram rate limit: retry after {seconds:g}s", seconds)
    if isinstance(exc, ChatMigrated):
        return FatalConnectorError(
            f"the group became a supergroup; its new chat id is {exc.new_chat_id}")
    if isinstance(exc, Conflict):
        return RetryableError(f"another bot instance or webhook is using this token: {message}")
    if isinstance(exc, BadRequest | Forbidden):
        return FatalConnectorError(f"Telegram refused the request: {message}")
    return RetryableError(f"Telegram unreachable: {message}")  # network errors, 5xx


def _chat_ref(chat: str) -> int | str:
    """Numeric chat ids go out as ints; ``@channelname`` stays a string."""
    try:
        return int(chat)
    except ValueError:
        return chat


def _thread_ref(thread: str | None) -> int | None:
    try:
        return int(thread) if thread else None
    except ValueError:
        return None


def _reply_ref(reply_to: str | None, chat: str) -> int | None:
    """Message id inside ``chat`` from our ``"<chat>:<message>"`` platform id."""
    if not reply_to:
        return None
    reply_chat, _, message = reply_to.rpartition(":")
    if reply_chat != chat:
        return None
    try:
        return int(message)
    except ValueError:
        return None


def _message_ref(platform_id: str, default_chat: str) -> tuple[int | str, int]:
    """(chat, message_id) from the ``"<chat>:<message>"`` id ``send_part`` returned."""
    chat, _, message = platform_id.rpartition(":")
    try:
        return _chat_ref(chat or default_chat), int(message)
    except ValueError:
        raise FatalConnectorError(f"not a Telegram message id: {platform_id!r}") from None


def _upload_method(file: OutboundFile) -> tuple[str, int]:
    """The Bot API method that shows ``file`` as what it is, and that method's size limit;
    anything else goes as a document (always allowed, shown as a file to download)."""
    if file.kind == "image" and file.mime in _PHOTO_TYPES:
        return "sendPhoto", PHOTO_LIMIT
    if file.kind == "voice" and file.mime in _VOICE_TYPES:
        return "sendVoice", UPLOAD_LIMIT
    if file.kind in ("audio", "voice") and file.mime in _AUDIO_TYPES:
        return "sendAudio", UPLOAD_LIMIT
    return "sendDocument", UPLOAD_LIMIT


def _formatting_refused(exc: BadRequest) -> bool:
    """Telegram's answer when our HTML cannot be used as is; plain text will work."""
    lowered = exc.message.lower()
    return "parse entities" in lowered or "text is empty" in lowered


def _command_menu(commands: list[tuple[str, str]]) -> tuple[list[BotCommand], list[str]]:
    """setMyCommands entries for the assistant's commands, and the names Telegram would refuse.

    Telegram allows 1-32 lowercase letters, digits and underscores per name (no slash),
    1-256 characters of description and at most 100 commands.
    """
    menu: list[BotCommand] = []
    refused: list[str] = []
    for name, description in commands:
        command = name.strip().lstrip("/").lower()
        if not _COMMAND_NAME.match(command) or len(menu) == _MAX_COMMANDS:
            refused.append(name)
            continue
        text = " ".join(description.split())[:_MAX_COMMAND_DESCRIPTION] or command
        menu.append(BotCommand(command, text))
    return menu, refused


class TelegramConnector(ConnectorBase):
    spec = SPEC
    config: TelegramConfig

    def __init__(self, name: str, config: TelegramConfig) -> None:
        super().__init__(name, config)
        self._bot: _RawBot | None = None
        self._me: BotIdentity | None = None
        self._offset: int | None = None
        """Next update_id to ask for: everything below it is journaled (``OFFSET_KEY``)."""
        self._plain_edits: str | None = None
        """The message whose last edit fell back to plain text (warned about once, not per edit)."""

    # ---- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        webhook = self.config.mode == "webhook"
        if webhook and not _SECRET_CHARS.match(self.secret_or_none("webhook_secret") or ""):
            raise FatalConnectorError(
                "webhook mode needs webhook_secret: 1-256 characters of A-Z, a-z, 0-9, _ and -")
        self._bot = self._make_bot(self.secret("token"))
        self._offset = await self.ctx.state.get(OFFSET_KEY)
        serve = self._poll if self.receives and not webhook else self._idle
        await self.connect_and_keep("poller", self._connect, serve,
                                    platform="Telegram")

    async def close(self) -> None:
        bot, self._bot = self._bot, None
        if bot is not None:
            await bot.shutdown()

    async def probe(self) -> ProbeResult:
        token = self.secret_or_none("token")
        if token is None:
            return ProbeResult(False, "no bot token set: create one with @BotFather")
        bot = self._make_bot(token, timeout=10.0)
        try:
            await bot.initialize()
            return ProbeResult(True, f"connected as @{bot.bot.username}")
        except InvalidToken:
            return ProbeResult(False, "Telegram rejected the bot token (check it with @BotFather)")
        except NetworkError as exc:
            return ProbeResult(
                False, f"Telegram Bot API unreachable at {self.config.base_url}: {exc.message}")
        except (TelegramError, ValueError, OSError) as exc:
            return ProbeResult(False, f"Telegram check failed: {_redacted(str(exc), token)}")
        finally:
            await bot.shutdown()

    # ---- sending ---------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        chat = _chat_ref(address.chat)
        payload: dict[str, object] = {"chat_id": chat}
        thread = _thread_ref(address.thread)
        if thread is not None:
            payload["message_thread_id"] = thread
        quote = _reply_ref(reply_to, address.chat)
        if quote is not None:
            payload["reply_parameters"] = {"message_id": quote,
                                           "allow_sending_without_reply": True}
        bot = self._require_bot()

        def send(body: str, mode: str | None) -> Awaitable[object]:
            return bot.send_message_raw({**payload, "text": body,
                                         **({"parse_mode": mode} if mode else {})})

        try:
            sent = await self._formatted(send, text, "sent")
        except AnswerLost as exc:
            # Sent, but the answer never came: Telegram may have delivered it, and has no
            # way to ask. Sending again could double the reply, so the gateway flags it.
            message = _redacted(exc.message, self.secret_or_none("token"))
            raise DeliveryUncertain(f"Telegram did not answer the sendMessage ({message}); it "
                                    "may have been delivered, so it is not sent again") from exc
        except TelegramError as exc:
            raise self._error(exc) from exc
        return _sent_id(sent, chat)

    async def send_file(self, address: Address, file: OutboundFile, reply_to: str | None
                        ) -> str:
        """sendPhoto, sendVoice, sendAudio or sendDocument (``_upload_method``), the file
        uploaded as multipart/form-data under the method's own field (PTB's ``InputFile``),
        the caption plain text. Too big for the method is refused before anything is sent;
        a lost answer is DeliveryUncertain, as for text."""
        method, limit = _upload_method(file)
        data = file.content()
        if len(data) > limit:
            raise FatalConnectorError(f"Telegram bots can send files of up to "
                                      f"{limit // 2**20} MB with {method}; {file.name} is "
                                      f"{len(data) / 2**20:.1f} MB")
        options: dict[str, object] = {"chat_id": _chat_ref(address.chat),
                                      "caption": file.caption[:MAX_CAPTION] or None,
                                      "message_thread_id": _thread_ref(address.thread)}
        quote = _reply_ref(reply_to, address.chat)
        if quote is not None:
            options["reply_parameters"] = ReplyParameters(quote,
                                                          allow_sending_without_reply=True)
        upload = InputFile(data, filename=file.name)
        bot = self._require_bot()
        calls = {"sendPhoto": lambda: bot.send_photo(photo=upload, **options),
                 "sendVoice": lambda: bot.send_voice(voice=upload, **options),
                 "sendAudio": lambda: bot.send_audio(audio=upload, **options),
                 "sendDocument": lambda: bot.send_document(document=upload, **options)}
        try:
            sent: Message = await calls[method]()
        except AnswerLost as exc:
            message = _redacted(exc.message, self.secret_or_none("token"))
            raise DeliveryUncertain(f"Telegram did not answer the {method} ({message}); the "
                                    "file may have been delivered, so it is not sent again"
                                    ) from exc
        except TelegramError as exc:
            raise self._error(exc) from exc
        return f"{sent.chat_id}:{sent.message_id}"

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """Replace a sent message's text, formatted as ``send_part`` formats it.

        "message is not modified" means the message already shows ``text``;
        "message to edit not found" / "can't be edited" are fatal.
        """
        bot = self._require_bot()
        chat, message_id = _message_ref(platform_id, address.chat)

        def edit(body: str, mode: str | None) -> Awaitable[object]:
            return bot.edit_message_text(body, chat_id=chat, message_id=message_id,
                                         parse_mode=mode)

        try:
            await self._formatted(edit, text, "edited", key=platform_id)
        except BadRequest as exc:
            if "message is not modified" not in exc.message.lower():
                raise self._error(exc) from exc
        except TelegramError as exc:
            raise self._error(exc) from exc

    async def typing(self, address: Address) -> None:
        if self._bot is None:
            return
        try:
            await self._bot.send_chat_action(_chat_ref(address.chat), ChatAction.TYPING,
                                             message_thread_id=_thread_ref(address.thread))
        except TelegramError as exc:  # a missing indicator is not worth failing a reply over
            self.log.debug("typing indicator failed: %s", self._error(exc))

    async def _formatted(self, call: Callable[[str, str | None], Awaitable[T]], text: str,
                         done: str, *, key: str | None = None) -> T:
        """``call`` with our HTML, or with the plain text if Telegram cannot parse the HTML
        (warned about each time, or once in a row per ``key``)."""
        try:
            return await call(to_html(text), ParseMode.HTML)
        except BadRequest as exc:
            if not _formatting_refused(exc):
                raise
            if key is None or key != self._plain_edits:
                self.ctx.log("warning", f"Telegram could not parse the formatting; {done} as "
                             "plain text", detail=exc.message)
            self._plain_edits = key or self._plain_edits
            return await call(text, None)

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """getFile, then the download link ``<base_file_url><token>/<file_path>`` (valid for
        an hour, so it is asked for when the file is needed, not at intake)."""
        if not attachment.platform_id:
            raise AttachmentUnavailable("Telegram gave no file id for it")
        try:
            found = await self._require_bot().get_file_raw(attachment.platform_id)
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise AttachmentUnavailable("Telegram lets bots download files of up to "
                                            f"{TELEGRAM_FILE_LIMIT // 2**20} MB; this one "
                                            "is bigger") from exc
            reason = _redacted(exc.message, self.secret_or_none("token"))
            raise AttachmentUnavailable(f"Telegram no longer has the file ({reason})") from exc
        except TelegramError as exc:
            raise self._error(exc) from exc
        fields = found if isinstance(found, dict) else {}
        path = fields.get("file_path")
        if not isinstance(path, str) or not path:
            raise AttachmentUnavailable("Telegram did not say where the file is")
        if path.startswith("/") or ".." in path.split("/"):
            raise AttachmentUnavailable("the Bot API server gave a local path (a server in "
                                        "--local mode); pyclaw downloads files over HTTP only")
        size = fields.get("file_size")
        return AttachmentSource(
            url=f"{self.config.base_file_url}{self.secret('token')}/{quote(path)}",
            size=size if isinstance(size, int) else attachment.size)

    # ---- receiving -------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        """One POST from Telegram: check the secret, journal the update, then answer 200
        (any other answer makes Telegram resend it later)."""
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        if self.config.mode != "webhook":
            raise WebhookRejected(404, "this channel polls; it takes no webhook calls")
        given = request.header(SECRET_HEADER)
        if given is None:
            raise WebhookRejected(401, f"no {SECRET_HEADER} header")
        if not same_secret(given, self.secret("webhook_secret")):
            raise WebhookRejected(403, f"wrong {SECRET_HEADER}")

    async def _poll(self) -> None:
        """Long-poll until the connection fails; each batch is journaled, then its offset kept."""
        bot, ctx = self._require_bot(), self.ctx
        while True:
            try:
                batch = await bot.get_raw_updates(offset=self._offset,
                                                  timeout=self.config.poll_timeout)
            except TelegramError as exc:
                raise self._error(exc) from exc
            ctx.heartbeat()
            if not isinstance(batch, list):
                ctx.log("error", "getUpdates answered with something other than a list; ignored")
                raise RetryableError("getUpdates answered with something other than a list")
            try:
                for raw in batch:
                    await self._deliver(raw)
                    update_id = update_id_of(raw)
                    if update_id is not None and update_id >= (self._offset or 0):
                        self._offset = update_id + 1
                if batch:
                    await ctx.state.set(OFFSET_KEY, self._offset)
            except PyclawError as exc:
                # Not confirmed: Telegram hands the rest of the batch over again.
                ctx.log("error", f"could not journal a Telegram update, will retry: {exc}")
                raise RetryableError(f"could not journal an update: {exc}") from exc

    async def _idle(self) -> None:
        """Webhook mode has nothing to serve: Telegram calls us (``handle_webhook``); nor has
        a send-only instance (another one polls)."""
        await asyncio.Event().wait()

    async def _deliver(self, raw: object) -> None:
        """Parse and journal one update; returns once it may be acknowledged."""
        ctx, me = self.ctx, self._me
        if me is None:
            raise ConnectorError("an update arrived before Telegram's getMe answered")
        inbound = parse_update(raw, channel=self.name, bot=me)
        if inbound is None:
            level, why = describe_skip(raw)
            ctx.log(level, why, update_id=update_id_of(raw))
            return
        await ctx.submit(inbound)  # duplicate or ignored: acknowledging it is all there is

    # ---- plumbing --------------------------------------------------------------------------

    async def _connect(self) -> str:
        """getMe (validates the token), then point Telegram at polling or our webhook; the
        command menu on the first connect. Returns "connected as @name" for the state."""
        bot = self._require_bot()
        try:
            await bot.initialize()
            if not self.receives:
                pass  # send-only: where updates go is the receiving instance's business
            elif self.config.mode == "polling":
                await bot.delete_webhook(drop_pending_updates=False)
            else:
                await bot.set_webhook(url=self.config.webhook_url,
                                      secret_token=self.secret("webhook_secret"),
                                      allowed_updates=list(ALLOWED_UPDATES))
        except InvalidToken as exc:
            raise self._error(exc) from None  # its message embeds the token
        except TelegramError as exc:
            raise self._error(exc) from exc
        first = self._me is None
        self._me = BotIdentity(id=bot.bot.id, username=bot.bot.username or "")
        if first:
            await self._register_commands()
        return f"connected as @{self._me.username}"

    def _make_bot(self, token: str, *, timeout: float = 20.0) -> _RawBot:
        return _RawBot(
            token,
            base_url=self.config.base_url,
            base_file_url=self.config.base_file_url,
            # Sends, edits and uploads of many conversations at once: with 8, a burst of
            # 2,000 drafts waited over 11 s for a connection (bench/RESULTS.md section 8);
            # Telegram's ~30 requests a second per bot bind before 32 connections do.
            request=AiohttpRequest(connection_pool_size=32, connect_timeout=timeout / 2,
                                   read_timeout=timeout),
            get_updates_request=AiohttpRequest(connection_pool_size=1, connect_timeout=10.0,
                                               read_timeout=_READ_MARGIN),
        )

    async def _register_commands(self) -> None:
        """Fill Telegram's command menu (the "/" button) with the assistant's commands.

        Best effort: the commands work when typed whether or not the menu lists them,
        so a refusal is a warning in the channel log, never a reason to stop.
        """
        ctx = self.ctx
        menu, refused = _command_menu(ctx.commands())
        if refused:
            ctx.log("warning", "left commands out of the Telegram menu: names must be 1-32 "
                    "lowercase letters, digits or underscores, at most 100 commands",
                    commands=refused)
        if not menu:
            return
        try:
            await self._require_bot().set_my_commands(menu)
        except TelegramError as exc:
            ctx.log("warning", f"could not set the Telegram command menu: {self._error(exc)}")

    def _error(self, exc: TelegramError) -> ConnectorError:
        return _map_error(exc, self.secret_or_none("token"))

    def _require_bot(self) -> _RawBot:
        if self._bot is None:
            raise ConnectorError(f"telegram channel {self.name!r} is not running")
        return self._bot


CONNECTOR = TelegramConnector
