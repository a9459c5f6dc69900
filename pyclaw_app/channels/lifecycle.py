"""The lifecycle every connector shares, so a channel writes only its platform's part.

:class:`ConnectorBase` implements ``start``/``stop`` around two hooks, ``open``
(acquire clients, connect, spawn tasks) and ``close`` (release them), with an
explicit state, named tasks whose crashes reach the supervisor, one reconnect
loop on the shared :class:`Backoff`, one secret accessor and the webhook
receive path (verify, parse, journal, then acknowledge), whose refusals go
through a :class:`RejectionLog` so a flood of forgeries cannot fill the disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import SecretStr

from pyclaw_app.backoff import Backoff
from pyclaw_app.channels.contract import ChannelConfig, Connector, ConnectorContext
from pyclaw_app.channels.rejections import RejectionLog
from pyclaw_app.channels.webhook import WebhookRejected, WebhookRequest, WebhookResponse
from pyclaw_app.errors import (
    ConnectorError,
    FatalConnectorError,
    PyclawError,
    RetryableError,
)
from pyclaw_app.model import ChannelState

__all__ = ["ConnectorBase", "Phase"]

TASK_STOP_TIMEOUT = 4.0
"""Seconds a task may take to end after cancellation (the gateway allows stop() 10 s)."""


class Phase(StrEnum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class ConnectorBase(Connector):
    """A connector on the kit: implement ``open``, ``close``, ``send_part`` and ``probe``."""

    rejected_noun: ClassVar[tuple[str, str]] = ("a", "webhook request")
    """Article and noun for what ``log_rejection`` refused, in the channel log's words."""

    def __init__(self, name: str, config: ChannelConfig) -> None:
        super().__init__(name, config)
        self.log = logging.getLogger(f"pyclaw.connector.{self.spec.name}.{name}")
        self.phase = Phase.NEW
        self._ctx: ConnectorContext | None = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._online = False
        self._was_online = False
        self._rejections: RejectionLog | None = None

    # ---- hooks ------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and spawn background tasks. Raise FatalConnectorError when retrying cannot
        help; a RetryableError here is logged and ``open`` is not retried by the kit (use
        ``run_connected`` in a task for channels that should keep trying)."""

    async def close(self) -> None:
        """Release clients; runs after every task has ended, also after a failed ``open``."""

    # ---- lifecycle --------------------------------------------------------------------------
    @property
    def ctx(self) -> ConnectorContext:
        if self._ctx is None or self.phase is not Phase.RUNNING:
            raise ConnectorError(f"{self.spec.title} channel {self.name!r} is not running")
        return self._ctx

    @property
    def running(self) -> bool:
        return self._ctx is not None and self.phase is Phase.RUNNING

    async def start(self, ctx: ConnectorContext) -> None:
        if self.phase is not Phase.NEW:
            raise RuntimeError(f"{self.spec.title} channel {self.name!r} was already started "
                               "(a connector object runs once; make a new one to restart)")
        self._ctx = ctx
        article, noun = self.rejected_noun
        self._rejections = RejectionLog(ctx.log, noun=noun, article=article)
        self.phase = Phase.RUNNING
        ctx.set_state(ChannelState.CONNECTING, f"connecting to {self.spec.title}")
        try:
            await self.open()
        except FatalConnectorError as exc:
            ctx.set_state(ChannelState.OFFLINE, str(exc))
            ctx.log("error", f"cannot start: {exc}")
            await self._shutdown()
            raise
        except BaseException:
            await self._shutdown()
            raise

    async def stop(self) -> None:
        if self.phase in (Phase.STOPPING, Phase.STOPPED):
            return
        ctx = self._ctx
        await self._shutdown()
        if ctx is not None:
            ctx.set_state(ChannelState.STOPPED, "stopped")

    async def _shutdown(self) -> None:
        self.phase = Phase.STOPPING
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            # One bounded wait for all of them: waiting for each in turn let a few stuck
            # tasks outlast the gateway's stop timeout (4 s each).
            done, _ = await asyncio.wait(tasks, timeout=TASK_STOP_TIMEOUT)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: a task that failed while stopping is over
        try:
            await self.close()
        finally:
            if self._rejections is not None:
                self._rejections.close()  # the counts not yet written, while ctx still logs
                self._rejections = None
            self.phase = Phase.STOPPED
            self._ctx = None

    # ---- tasks ------------------------------------------------------------------------------
    def spawn(self, role: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as the named task ``<type>:<channel>:<role>``, kept and awaited on stop.

        A task that ends with an exception is reported through ``ctx.crashed`` (the
        supervisor restarts the channel); one that returns normally simply ends.
        """
        if not self.running:
            coro.close()
            raise ConnectorError(f"{self.spec.title} channel {self.name!r} is not running")
        old = self._tasks.get(role)
        if old is not None and not old.done():
            coro.close()
            raise RuntimeError(f"task {role!r} is already running")
        task = asyncio.create_task(coro, name=f"{self.spec.name}:{self.name}:{role}")
        self._tasks[role] = task
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self.phase is not Phase.RUNNING:
            return
        exc = task.exception()
        if exc is None or self._ctx is None:
            return
        self.log.error("task %s crashed", task.get_name(), exc_info=exc)
        reason = f"{task.get_name()} crashed: {exc!r}"
        self._ctx.crashed(reason, fatal=isinstance(exc, FatalConnectorError))

    async def connect_and_keep(self, task: str, connect: Callable[[], Awaitable[str | None]],
                               serve: Callable[[], Awaitable[None]], *, platform: str,
                               explain: Callable[[Exception], str] = str) -> None:
        """Connect once now, then keep the connection in the supervised task ``task``
        (:meth:`run_connected`). Connecting inside ``open`` makes a refused credential fail
        the start itself, so the form and the channel log say why at once; a platform that
        cannot be reached yet is no reason to fail: the channel starts degraded and the task
        keeps trying. ``explain`` adds what a user can do to a retryable error's words."""
        try:
            self.went_online(await connect() or "")
            connected = True
        except RetryableError as exc:
            said = explain(exc)
            self.ctx.log("warning", f"cannot reach {platform} yet, will keep trying: {said}")
            self.went_degraded(said)
            connected = False
        self.spawn(task, self.run_connected(connect, serve, connected=connected))

    async def run_connected(self, connect: Callable[[], Awaitable[str | None]],
                            serve: Callable[[], Awaitable[None]], *,
                            connected: bool = False, backoff: Backoff | None = None) -> None:
        """Keep a connection: ``connect`` (unless already ``connected``), then ``serve`` until
        the connection ends; reconnect with backoff, honouring Retry-After. ``connect`` may
        return what the channel state should say ("connected as @bot").

        ``serve`` returning or raising any other ConnectorError (RetryableError, a lost
        answer) means the connection was lost; a FatalConnectorError from either ends the
        loop with the channel offline. Anything else escapes to the task's crash report.
        """
        backoff = backoff or Backoff(base=0.5, cap=30.0)
        while True:
            wait = 0.0
            try:
                if not connected:
                    who = await connect()
                    connected = True
                    backoff.reset()
                    self.went_online(who or "")
                await serve()
                reason = "connection closed"
            except FatalConnectorError as exc:
                self.went_offline(str(exc))
                return
            except ConnectorError as exc:  # retryable, or an answer lost on the way back
                reason = str(exc)
                wait = (exc.retry_after if isinstance(exc, RetryableError) else None) or 0.0
            connected = False
            delay = backoff.next_delay(wait)
            self.went_degraded(f"{reason}; reconnecting in {delay:.1f}s")
            await asyncio.sleep(delay)

    # ---- state ------------------------------------------------------------------------------
    def went_online(self, reason: str = "") -> None:
        """Connected (or reconnected): state ONLINE, a fresh heartbeat, one log line."""
        ctx = self.ctx
        ctx.set_state(ChannelState.ONLINE, reason or "connected")
        ctx.heartbeat()
        ctx.log("info", f"{'reconnected' if self._was_online else 'connected'}"
                f"{f' ({reason})' if reason else ''}")
        self._online = self._was_online = True

    def went_degraded(self, reason: str) -> None:
        """The connection was lost and is being retried; logged once per outage."""
        ctx = self.ctx
        ctx.set_state(ChannelState.DEGRADED, reason)
        if self._online:
            ctx.log("warning", f"lost connection: {reason}")
        else:
            self.log.info("still not connected: %s", reason)
        self._online = False

    def went_offline(self, reason: str) -> None:
        """Retrying cannot help (revoked token, refused intent): the channel stays down."""
        ctx = self.ctx
        ctx.set_state(ChannelState.OFFLINE, reason)
        ctx.log("error", f"stopped: {reason}", fatal=True)
        self._online = False

    # ---- config -----------------------------------------------------------------------------
    def secret(self, field: str) -> str:
        """The secret config field's value; a clear FatalConnectorError naming it when unset."""
        value = self.secret_or_none(field)
        if value is None:
            info = type(self.config).model_fields.get(field)
            hint = f": {info.description}" if info is not None and info.description else ""
            raise FatalConnectorError(f"the {self.spec.title} {field} is not set{hint}")
        return value

    def secret_or_none(self, field: str) -> str | None:
        value = getattr(self.config, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return value.strip() or None if isinstance(value, str) else None

    # ---- webhooks ---------------------------------------------------------------------------
    def log_rejection(self, request: WebhookRequest, reason: str, *,
                      level: str = "warning") -> None:
        """Log a refused request, a few per source and then one count per minute: anyone
        who can reach the URL can send forgeries, and each must not cost a log row."""
        if self._rejections is None:
            raise ConnectorError(f"{self.spec.title} channel {self.name!r} is not running")
        self._rejections.rejected(request.remote, reason, level=level,
                                  size=len(request.body))

    async def receive(self, request: WebhookRequest,
                      verify: Callable[[WebhookRequest], None],
                      handle: Callable[[Any], Awaitable[WebhookResponse | None]], *,
                      parse: Callable[[WebhookRequest], Any] = WebhookRequest.json,
                      ) -> WebhookResponse:
        """The webhook path in the order that keeps it safe: not running -> 503; ``verify``
        (raise WebhookRejected) before the body is parsed; ``handle`` journals through
        ``ctx.submit``; 200 only after it returned, 500 when the journal refused (the
        platform resends). ``handle`` may answer a challenge with its own response."""
        if not self.running:
            return WebhookResponse(503, "channel is not running")
        ctx = self.ctx
        try:
            verify(request)
            payload = parse(request)
        except WebhookRejected as exc:
            self.log_rejection(request, exc.message, level=exc.level)
            return WebhookResponse(exc.status, exc.message)
        ctx.heartbeat()
        try:
            response = await handle(payload)
        except WebhookRejected as exc:
            ctx.log(exc.level, f"skipped a webhook request: {exc.message}")
            return WebhookResponse(exc.status, exc.message)
        except PyclawError as exc:
            ctx.log("error", f"could not journal a webhook event; {self.spec.title} will "
                    f"resend it: {exc}")
            return WebhookResponse(500, "not stored")
        return response or WebhookResponse(200, "")
