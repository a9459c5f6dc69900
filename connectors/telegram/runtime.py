"""The Telegram connector: python-telegram-bot's ``Bot`` for API calls, our own polling loop.

PTB's ``Updater`` confirms updates (advances the offset) before handlers run;
we need the opposite order — journal first, confirm after — so the loop here
asks for raw updates, submits each one, and only then moves the offset past it.
Telegram confirms an update as soon as getUpdates is called with a higher
offset, so the next poll is the acknowledgement. Webhook mode verifies the
secret header first, journals, and answers 200 only after ``ctx.submit``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import warnings
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from telegram import Bot, BotCommand
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

from pyclaw_app.channels import Connector, ConnectorContext, ProbeResult, split_text, utf16_len
from connectors.telegram._aiohttp_request import AiohttpRequest, AnswerLost
from connectors.telegram._format import to_html
from connectors.telegram._parse import BotIdentity, describe_skip, parse_update, update_id_of
from connectors.telegram.manifest import MAX_TEXT, SPEC, TelegramConfig
from pyclaw_app.backoff import Backoff
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    PyclawError,
    RetryableError,
)
from pyclaw_app.model import Address, ChannelState, Outbound

__all__ = ["CONNECTOR", "TelegramConnector"]

_log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message",)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_CHARS = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_SEND_TRIES = 5
"""Attempts per message part (429s and network errors) before giving the failure back."""
_READ_MARGIN = 10.0
"""Seconds a long poll may take beyond its ``timeout`` before we call it a network failure."""
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_MAX_COMMANDS = 100
_MAX_COMMAND_DESCRIPTION = 256


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

    async def get_raw_updates(
        self, *, offset: int | None, timeout: int, limit: int = 100
    ) -> object:
        return await self._post(
            "getUpdates",
            {
                "offset": offset,
                "timeout": timeout,
                "limit": limit,
                "allowed_updates": list(ALLOWED_UPDATES),
            },
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


def _redacted(text: str, token: str) -> str:
    """PTB's messages can embed the bot token (it is part of every URL)."""
    return text.replace(token, "<token>") if token else text


def _map_error(exc: TelegramError, token: str) -> FatalConnectorError | RetryableError:
    """The one place PTB exceptions become pyclaw's fatal/retryable split."""
    message = _redacted(exc.message, token)
    if isinstance(exc, InvalidToken | EndPointNotFound):
        return FatalConnectorError("Telegram rejected the bot token (check it with @BotFather)")
    if isinstance(exc, RetryAfter):
        seconds = _retry_seconds(exc)
        return RetryableError(f"Telegram rate limit: retry after {seconds:g}s", seconds)
    if isinstance(exc, ChatMigrated):
        return FatalConnectorError(
            f"the group became a supergroup; its new chat id is {exc.new_chat_id}"
        )
    if isinstance(exc, Conflict):
        return RetryableError(f"another bot instance or webhook is using this token: {message}")
    if isinstance(exc, BadRequest | Forbidden):
        return FatalConnectorError(f"Telegram refused the request: {message}")
    return RetryableError(f"Telegram unreachable: {message}")


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
    """(chat, message_id) from the ``"<chat>:<message>"`` id ``send`` returned."""
    chat, _, message = platform_id.rpartition(":")
    try:
        return _chat_ref(chat or default_chat), int(message)
    except ValueError:
        raise FatalConnectorError(f"not a Telegram message id: {platform_id!r}") from None


def _formatting_refused(description: str) -> bool:
    """Telegram's answer when our HTML cannot be used as is; plain text will work."""
    lowered = description.lower()
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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


class TelegramConnector(Connector):
    spec = SPEC
    config: TelegramConfig

    def __init__(self, name: str, config: TelegramConfig) -> None:
        super().__init__(name, config)
        self._log = _log.getChild(name)
        self._ctx: ConnectorContext | None = None
        self._bot: _RawBot | None = None
        self._me: BotIdentity | None = None
        self._task: asyncio.Task[None] | None = None
        self._offset: int | None = None
        """Next update_id to ask for: everything below it is journaled."""
        self._confirmed: int | None = None
        """The offset Telegram last saw, i.e. what it considers confirmed."""
        self._plain_edits: str | None = None
        """The message whose last edit fell back to plain text (warned about once, not per edit)."""

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, ctx: ConnectorContext) -> None:
        if self._task is not None:
            raise RuntimeError(f"telegram channel {self.name!r} is already running")
        self._ctx = ctx
        ctx.set_state(ChannelState.CONNECTING)
        try:
            self._bot = self._make_bot(self._token())
            await self._connect()
        except FatalConnectorError as exc:
            ctx.set_state(ChannelState.OFFLINE, str(exc))
            ctx.log("error", f"cannot start: {exc}")
            await self._close_bot()
            raise
        except RetryableError as exc:
            ctx.set_state(ChannelState.DEGRADED, str(exc))
            ctx.log("warning", f"cannot reach Telegram yet, will keep trying: {exc}")
            self._spawn(self._run(connected=False))
            return
        self._went_online()
        await self._register_commands()
        if self.config.mode == "polling":
            self._spawn(self._run(connected=True))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._confirm_offset()
        await self._close_bot()
        self._me = None
        if self._ctx is not None:
            self._ctx.set_state(ChannelState.STOPPED)
            self._ctx = None

    async def probe(self) -> ProbeResult:
        token = self._secret("token")
        if not token:
            return ProbeResult(False, "no bot token set: create one with @BotFather")
        bot: Bot | None = None
        try:
            bot = Bot(
                token,
                base_url=self.config.base_url,
                base_file_url=self.config.base_file_url,
                request=AiohttpRequest(connect_timeout=5.0, read_timeout=10.0),
            )
            await bot.initialize()
            return ProbeResult(True, f"connected as @{bot.bot.username}")
        except InvalidToken:
            return ProbeResult(False, "Telegram rejected the bot token (check it with @BotFather)")
        except NetworkError as exc:
            return ProbeResult(
                False, f"Telegram Bot API unreachable at {self.config.base_url}: {exc.message}"
            )
        except (TelegramError, ValueError, OSError) as exc:
            reason = _redacted(str(exc), token)
            return ProbeResult(False, f"Telegram check failed: {reason}")
        finally:
            if bot is not None:
                await bot.shutdown()

    # ---- sending ---------------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> list[str]:
        bot = self._require_bot()
        chat = _chat_ref(outbound.address.chat)
        thread = _thread_ref(outbound.address.thread)
        reply_to = _reply_ref(outbound.reply_to, outbound.address.chat)
        ids: list[str] = []
        for part in split_text(outbound.text, MAX_TEXT, utf16_len):
            if not part.strip():
                continue  # Telegram refuses whitespace-only text ("message text is empty")
            sent = await self._send_part(bot, chat, thread, part, reply_to if not ids else None)
            ids.append(_sent_id(sent, chat))
        return ids

    async def typing(self, address: Address) -> None:
        if self._bot is None:
            return
        try:
            await self._bot.send_chat_action(
                _chat_ref(address.chat),
                ChatAction.TYPING,
                message_thread_id=_thread_ref(address.thread),
            )
        except TelegramError as exc:  # a missing indicator is not worth failing a reply over
            self._log.debug("typing indicator failed: %s", _map_error(exc, self._token_or_empty()))

    async def _send_part(
        self, bot: _RawBot, chat: int | str, thread: int | None, text: str, reply_to: int | None
    ) -> object:
        """Send one part: HTML first, plain text if Telegram cannot parse it; wait out 429s.

        Returns Telegram's JSON for the sent message (see ``_sent_id``).
        """
        html: str | None = to_html(text)
        payload: dict[str, object] = {"chat_id": chat}
        if thread is not None:
            payload["message_thread_id"] = thread
        if reply_to is not None:
            payload["reply_parameters"] = {"message_id": reply_to,
                                           "allow_sending_without_reply": True}
        backoff = Backoff(base=0.5, cap=10.0)
        attempt = 0
        while True:
            attempt += 1
            try:
                if html is not None:
                    payload.update(text=html, parse_mode=ParseMode.HTML)
                else:
                    payload.pop("parse_mode", None)
                    payload["text"] = text
                return await bot.send_message_raw(payload)
            except BadRequest as exc:
                if html is None or not _formatting_refused(exc.message):
                    raise _map_error(exc, self._token_or_empty()) from exc
                self._ctx_log("warning", "Telegram could not parse the formatting; sent as plain "
                              "text", detail=exc.message)
                html = None
            except RetryAfter as exc:
                wait = _retry_seconds(exc)
                if attempt >= _SEND_TRIES:
                    raise _map_error(exc, self._token_or_empty()) from exc
                self._ctx_log("warning", f"Telegram rate limit: waiting {wait:g}s before resending",
                              retry_after=wait)
                await asyncio.sleep(wait)
            except AnswerLost as exc:
                # Sent, but the answer never came: Telegram may have delivered it, and has no
                # way to ask. Sending again could double the reply, so the gateway flags it.
                message = _redacted(exc.message, self._token_or_empty())
                raise DeliveryUncertain(
                    f"Telegram did not answer the sendMessage ({message}); it may have been "
                    "delivered, so it is not sent again") from exc
            except NetworkError as exc:  # NotSent, or an error page (502): not delivered
                if attempt >= _SEND_TRIES:
                    raise _map_error(exc, self._token_or_empty()) from exc
                await asyncio.sleep(backoff.next_delay())
            except TelegramError as exc:
                raise _map_error(exc, self._token_or_empty()) from exc

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """Replace a sent message's text, formatted as ``send`` formats it.

        Unlike ``send`` this does not sit out a 429: the streamer retries after
        ``retry_after`` with the newest text, where waiting here would deliver a
        stale one. "message is not modified" means the message already shows
        ``text``; "message to edit not found" / "can't be edited" are fatal.
        """
        bot = self._require_bot()
        chat, message_id = _message_ref(platform_id, address.chat)
        html: str | None = to_html(text)
        while True:
            try:
                await bot.edit_message_text(
                    html if html is not None else text,
                    chat_id=chat,
                    message_id=message_id,
                    parse_mode=ParseMode.HTML if html is not None else None,
                )
                return
            except BadRequest as exc:
                if "message is not modified" in exc.message.lower():
                    return
                if html is None or not _formatting_refused(exc.message):
                    raise _map_error(exc, self._token_or_empty()) from exc
                if self._plain_edits != platform_id:
                    self._plain_edits = platform_id
                    self._ctx_log("warning", "Telegram could not parse the formatting; edited "
                                  "as plain text", detail=exc.message)
                html = None
            except TelegramError as exc:
                raise _map_error(exc, self._token_or_empty()) from exc

    # ---- receiving -------------------------------------------------------------------------

    async def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """One POST from Telegram: check the secret, journal the update, then answer 200.

        Any non-2xx makes Telegram retry later, which is what we want when the
        journal could not take the message.
        """
        ctx, expected = self._ctx, self._secret("webhook_secret")
        if ctx is None or self._me is None or self.config.mode != "webhook" or not expected:
            return 503, "channel not running in webhook mode"
        given = _header(headers, SECRET_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            ctx.log("warning", "rejected a webhook call with a missing or wrong secret token")
            return (401 if given is None else 403), ""
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            ctx.log("error", "webhook body is not JSON; ignored", size=len(body))
            return 400, ""
        ctx.heartbeat()
        try:
            await self._deliver(raw)
        except PyclawError as exc:
            ctx.log("error", f"could not journal a Telegram update; Telegram will resend it: {exc}")
            return 500, ""
        return 200, ""

    async def _run(self, *, connected: bool) -> None:
        """Background task: (re)connect, then long-poll until cancelled or the token dies."""
        backoff = Backoff(base=0.5, cap=30.0)
        while not connected:
            try:
                await self._connect()
            except FatalConnectorError as exc:
                self._went_offline(exc)
                return
            except RetryableError as exc:
                await asyncio.sleep(backoff.next_delay(exc.retry_after or 0.0))
                continue
            connected = True
            backoff.reset()
            self._went_online()
            self._require_ctx().log("info", "connected to Telegram")
            await self._register_commands()
        if self.config.mode == "polling":
            await self._poll(backoff)

    async def _poll(self, backoff: Backoff) -> None:
        bot, ctx = self._require_bot(), self._require_ctx()
        healthy = True
        while True:
            try:
                batch = await bot.get_raw_updates(
                    offset=self._offset, timeout=self.config.poll_timeout
                )
                self._confirmed = self._offset
            except TelegramError as exc:
                error = _map_error(exc, self._token_or_empty())
                if isinstance(error, FatalConnectorError):
                    self._went_offline(error)
                    return
                if healthy:
                    healthy = False
                    ctx.set_state(ChannelState.DEGRADED, str(error))
                    ctx.log("warning", f"lost connection to Telegram, reconnecting: {error}")
                self._log.debug("poll failed: %s", error)
                await asyncio.sleep(backoff.next_delay(error.retry_after or 0.0))
                continue
            ctx.heartbeat()
            if not healthy:
                healthy = True
                backoff.reset()
                ctx.set_state(ChannelState.ONLINE, "reconnected")
                ctx.log("info", "reconnected to Telegram")
            if not isinstance(batch, list):
                ctx.log("error", "getUpdates answered with something other than a list; ignored")
                await asyncio.sleep(backoff.next_delay())
                continue
            try:
                for raw in batch:
                    await self._deliver(raw)
                    update_id = update_id_of(raw)
                    if update_id is not None and update_id >= (self._offset or 0):
                        self._offset = update_id + 1
            except PyclawError as exc:
                # Not confirmed: Telegram hands the rest of the batch over again next poll.
                ctx.log("error", f"could not journal a Telegram update, will retry: {exc}")
                await asyncio.sleep(backoff.next_delay())

    async def _deliver(self, raw: object) -> None:
        """Parse, gate and journal one update; returns once it may be acknowledged."""
        ctx, me = self._require_ctx(), self._me
        if me is None:
            raise ConnectorError("update arrived before getMe")
        inbound = parse_update(raw, channel=self.name, bot=me)
        if inbound is None:
            level, why = describe_skip(raw)
            ctx.log(level, why, update_id=update_id_of(raw))
            return
        if (
            inbound.is_group
            and self.config.group_mode == "mention"
            and not (inbound.mentioned or inbound.reply_to_bot)
        ):
            return  # group chatter not addressed to us: normal, not worth a log line
        await ctx.submit(inbound)  # a duplicate needs nothing more: acking it is all there is

    # ---- plumbing --------------------------------------------------------------------------

    async def _connect(self) -> None:
        """getMe (validates the token), then point Telegram at polling or our webhook."""
        bot = self._require_bot()
        try:
            await bot.initialize()
            me = bot.bot
            self._me = BotIdentity(id=me.id, username=me.username or "")
            if self.config.mode == "polling":
                await bot.delete_webhook(drop_pending_updates=False)
            else:
                await bot.set_webhook(
                    url=self.config.webhook_url,
                    secret_token=self._webhook_secret(),
                    allowed_updates=list(ALLOWED_UPDATES),
                )
        except InvalidToken as exc:
            raise _map_error(exc, self._token_or_empty()) from None  # its message embeds the token
        except TelegramError as exc:
            raise _map_error(exc, self._token_or_empty()) from exc

    def _make_bot(self, token: str) -> _RawBot:
        return _RawBot(
            token,
            base_url=self.config.base_url,
            base_file_url=self.config.base_file_url,
            request=AiohttpRequest(
                connection_pool_size=8, connect_timeout=10.0, read_timeout=20.0,
            ),
            get_updates_request=AiohttpRequest(
                connection_pool_size=1, connect_timeout=10.0, read_timeout=_READ_MARGIN
            ),
        )

    async def _register_commands(self) -> None:
        """Fill Telegram's command menu (the "/" button) with the assistant's commands.

        Best effort: the commands work when typed whether or not the menu lists them,
        so a refusal is a warning in the channel log, never a reason to stop.
        """
        ctx, bot = self._require_ctx(), self._require_bot()
        menu, refused = _command_menu(ctx.commands())
        if refused:
            ctx.log("warning", "left commands out of the Telegram menu: names must be 1-32 "
                    "lowercase letters, digits or underscores, at most 100 commands",
                    commands=refused)
        if not menu:
            return
        try:
            await bot.set_my_commands(menu)
        except TelegramError as exc:
            error = _map_error(exc, self._token_or_empty())
            ctx.log("warning", f"could not set the Telegram command menu: {error}")

    async def _confirm_offset(self) -> None:
        """Tell Telegram about updates journaled since the last poll, so a restart skips them."""
        bot = self._bot
        if bot is None or self._offset is None or self._offset == self._confirmed:
            return
        try:
            await bot.get_raw_updates(offset=self._offset, timeout=0, limit=1)
            self._confirmed = self._offset
        except TelegramError as exc:  # the journal dedups the redelivery, so this is cosmetic
            self._log.debug("final offset confirmation failed: %s", exc.message)

    async def _close_bot(self) -> None:
        bot, self._bot = self._bot, None
        if bot is not None:
            await bot.shutdown()

    def _spawn(self, coro: Any) -> None:
        self._task = asyncio.create_task(coro, name=f"telegram:{self.name}:poller")
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None or self._ctx is None:
            return
        exc = task.exception()
        self._log.error("poller crashed", exc_info=exc)
        self._ctx.set_state(ChannelState.OFFLINE, f"internal error: {exc!r}")
        self._ctx.log("error", f"Telegram poller crashed: {exc!r}")

    def _went_online(self) -> None:
        ctx = self._require_ctx()
        username = self._me.username if self._me else ""
        ctx.set_state(ChannelState.ONLINE, f"connected as @{username}")
        ctx.heartbeat()

    def _went_offline(self, error: ConnectorError) -> None:
        ctx = self._require_ctx()
        ctx.set_state(ChannelState.OFFLINE, str(error))
        ctx.log("error", f"stopped: {error}")

    def _ctx_log(self, level: str, message: str, **data: Any) -> None:
        if self._ctx is not None:
            self._ctx.log(level, message, **data)

    def _secret(self, field: str) -> str:
        value = getattr(self.config, field)
        return value.get_secret_value() if value is not None else ""

    def _token(self) -> str:
        token = self._secret("token")
        if not token:
            raise FatalConnectorError("no bot token set: create one with @BotFather")
        return token

    def _token_or_empty(self) -> str:
        return self._secret("token")

    def _webhook_secret(self) -> str:
        secret = self._secret("webhook_secret")
        if not _SECRET_CHARS.match(secret):
            raise FatalConnectorError(
                "webhook mode needs webhook_secret: 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        return secret

    def _require_bot(self) -> _RawBot:
        if self._bot is None:
            raise ConnectorError(f"telegram channel {self.name!r} is not running")
        return self._bot

    def _require_ctx(self) -> ConnectorContext:
        if self._ctx is None:
            raise ConnectorError(f"telegram channel {self.name!r} is not running")
        return self._ctx


CONNECTOR = TelegramConnector
