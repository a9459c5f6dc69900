"""Shared work: this gateway as one of several active instances on one PostgreSQL.

What changes for an instance that shares (``storage.shared``), and nothing else does:

- **A conversation is answered by the instance holding its claim** (``store/cluster.py``).
  Intake claims it after journaling; when another instance holds it, that one is woken
  with a WORK notification and picks the row up from the journal. A claim is let go
  ``CLAIM_LINGER`` seconds after the conversation's lane ran dry, so conversations spread
  over the instances while each one's replies stay in order.
- **A channel that allows one consumer is received by the lease holder only.** The
  others run it send-only where its replies go over the platform's REST API
  (``Capabilities.send_only``: they may answer its conversations), or not at all (then
  its conversations stay with the receiver). Webhook and local channels run everywhere.
- **A dead instance's work is taken over** by the sweep, under the restart's custody
  rules (``Intake.resume_row``): its claims are free the moment its session ends, and its
  leases too, which a live instance takes within ``SWEEP_INTERVAL``.
- **Events fan out** through NOTIFY, so the panel and the control API of any instance show
  every instance's traffic (tagged with ``instance``); metrics count only their own.
- **A configuration saved in one instance's panel** is stored in ``shared_config`` and
  written over the others' config files, which apply it (``Gateway.adopt``). Secrets stay
  in each instance's own secret store or environment.

An instance whose lock session falls can no longer tell whether the others have taken
its conversations over, so it is *fenced*: ``on_fenced`` ends the process (the
orchestrator starts it again as a new instance) rather than risk answering twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyclaw_app.channels.contract import Transport
from pyclaw_app.channels.turns import Turns
from pyclaw_app.config_file import replace_config_file
from pyclaw_app.model import Event, EventKind
from pyclaw_app.store.cluster import (
    ALIVE_IDS,
    CONFIG,
    EVENTS,
    WORK,
    claim,
    release,
    release_all,
    save_document,
)

if TYPE_CHECKING:
    from pyclaw_app.config import Config
    from pyclaw_app.gateway.core import Gateway
    from pyclaw_app.store.cluster_link import ClusterLink

__all__ = ["CLAIM_LINGER", "SWEEP_INTERVAL", "SharedWork"]

_log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0
"""Seconds between sweeps: the longest a dead instance's work or a free lease waits."""
CLAIM_LINGER = 5.0
"""Seconds a quiet conversation stays claimed: its next message needs no claim round trip."""
FANNED_OUT = frozenset({EventKind.MESSAGE_RECEIVED, EventKind.MESSAGE_DUPLICATE,
                        EventKind.MESSAGE_PROCESSING, EventKind.LLM_CALL,
                        EventKind.REPLY_SENT, EventKind.MESSAGE_FAILED,
                        EventKind.MESSAGE_SKIPPED, EventKind.LOG})
"""Streamed deltas stay local (one per token would flood the server); channel states stay
local too: each instance reports its own connection to a channel."""
JOINED = "joined"
"""The WORK payload a starting instance sends: every instance sweeps (and counts it)."""
MAX_NOTIFY = 7000
"""Bytes per NOTIFY payload (the server's limit is 8000)."""
MAX_TEXT = 1000
"""Characters of a message text an event carries to the other instances."""


class SharedWork:
    def __init__(self, gateway: Gateway, link: ClusterLink, on_fenced: Callable[[str], None],
                 reload: Callable[[], Config] | None = None) -> None:
        self._gw = gateway
        self.link = link
        self.me = link.id
        self._on_fenced = on_fenced
        self._reload = reload
        """Reads this instance's config file again (with its secrets): how a change saved
        on another instance is adopted here."""
        self._held: set[str] = set()
        self._taking = Turns()
        """Conversations being taken, while their open rows are read and queued: a message
        of theirs waits for that, or it would be answered before them."""
        self._live: list[int] = [link.id]
        """The live instances' ids as of the last sweep (the hash's choice, see ``offer``)."""
        self._linger: dict[str, asyncio.TimerHandle] = {}
        self._wake = asyncio.Event()
        self._sweeping = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._fenced = False

    # ---- roles -----------------------------------------------------------------------------
    def everywhere(self, channel: str) -> bool:
        """Whether every instance receives for the channel: webhooks (behind a load
        balancer) and the local chat; the rest allow one consumer."""
        rt = self._gw.channels.get(channel)
        if rt is None or rt.spec is None or rt.entry.config is None:
            return True
        return rt.spec.transport in (Transport.WEBHOOK, Transport.LOCAL) \
            or rt.entry.config.needs_webhook()

    def receives(self, channel: str) -> bool:
        return self.everywhere(channel) or self.link.holds_lease(channel)

    def sends_only(self, channel: str) -> bool:
        """Whether to run the channel without receiving: another instance holds its lease
        and its replies need no connection of ours."""
        rt = self._gw.channels.get(channel)
        return not self.receives(channel) and rt is not None and rt.spec is not None \
            and rt.spec.capabilities.send_only

    async def standby_reason(self, channel: str) -> str:
        holder = await self.link.lease_holder(channel)
        return f"standby: {holder or 'another instance'} receives for this channel"

    # ---- claims ----------------------------------------------------------------------------
    async def offer(self, conv: str, channel: str, journal_id: int) -> bool:
        """Whether this instance answers ``conv`` now (it holds, or just took, its claim);
        if another one does, that one is woken to pick the message up.

        A free conversation is claimed for the instance that receives its message, except
        on a single-consumer channel the others can send on: there the one receiver would
        take every conversation, so it claims each for a live instance chosen by the
        conversation's hash instead (itself included), which spreads them evenly.

        A conversation taken here may hold a dead instance's open rows, older than
        ``journal_id``: they are queued first, or this message would be answered before
        them."""
        if conv in self._held and not self._taking.busy(conv):
            self._keep(conv)
            return True
        async with self._taking.turn(conv):
            if conv in self._held:  # the sweep took it meanwhile, open rows queued
                self._keep(conv)
                return True
            target = self._target(conv, channel)
            holder: int = await self._gw.store.db.write(lambda conn: claim(conn, conv, target))
            if holder == self.me:
                self._held.add(conv)
                await self._resume_open(conv, None, before=journal_id)
                return True
        self._notify(WORK, str(holder))
        return False

    @property
    def live_instances(self) -> int:
        """How many instances (this one included) were alive at the last sweep."""
        return len(self._live)

    def _target(self, conv: str, channel: str) -> int:
        if self.everywhere(channel) or len(self._live) < 2:
            return self.me
        rt = self._gw.channels.get(channel)
        if rt is None or rt.spec is None or not rt.spec.capabilities.send_only:
            return self.me
        return self._live[zlib.crc32(conv.encode()) % len(self._live)]

    def lane_idle(self, conv: str) -> None:
        """``Lanes.on_idle``: the conversation is let go after ``CLAIM_LINGER``."""
        if conv not in self._held or self._fenced:
            return
        self._keep(conv)
        loop = asyncio.get_running_loop()
        self._linger[conv] = loop.call_later(CLAIM_LINGER, self._let_go, conv)

    def _keep(self, conv: str) -> None:
        timer = self._linger.pop(conv, None)
        if timer is not None:
            timer.cancel()

    def _let_go(self, conv: str) -> None:
        """Dropped from ``_held`` first, on the loop: a message that arrives from now on
        claims anew through the writer, behind this release, so it can never be queued
        here while another instance takes the conversation."""
        self._linger.pop(conv, None)
        if self._gw.lanes.busy(conv) or conv not in self._held:
            return
        self._held.discard(conv)
        me = self.me
        self._gw.store.db.write_nowait(lambda conn: release(conn, conv, me))
        self._wake.set()  # another instance may have journaled for it while we held it

    # ---- sweeping --------------------------------------------------------------------------
    async def sweep(self) -> None:
        """Pick up what this instance should answer and no lane has: rows journaled by
        another instance in conversations it holds or claimed for it, and the open rows of
        conversations nobody alive holds (a dead instance's, or ones whose claim was just
        let go)."""
        async with self._sweeping:
            if self._fenced:
                return
            self._live = await self._live_ids()
            taken: dict[str, str | None] = {}
            for row in await self._gw.store.journal.unfinished(claimed_by=self.me):
                if row.conv not in self._held:
                    taken.setdefault(row.conv, None)  # claimed for us by its receiver
                elif row.status == "received" or self._stranded(row.channel, row.id):
                    await self._gw.intake.resume_row(row, None)  # a processing one is
                    # in our lane already, unless its channel was not running for it
            for conv, channel in await self._orphans():
                if self._runs(channel):
                    taken.setdefault(conv, "taken over (no live instance holds its "
                                           "conversation)")
            for conv, why in taken.items():
                await self._take(conv, why)

    async def _take(self, conv: str, why: str | None) -> None:
        """Make ``conv`` ours and queue its open rows. Claimed again through the writer even
        when another instance claimed it for us: that orders this behind a release of ours
        still in the writer's queue, so the conversation is never held here and free there."""
        me = self.me
        if self._fenced:
            return
        async with self._taking.turn(conv):
            holder = await self._gw.store.db.write(lambda conn: claim(conn, conv, me))
            if holder != me:
                return
            self._held.add(conv)
            await self._resume_open(conv, why)
        if not self._gw.lanes.busy(conv):
            self.lane_idle(conv)

    async def _resume_open(self, conv: str, why: str | None, *,
                           before: int | None = None) -> None:
        """Queue the open rows of a conversation just taken, oldest first. A ``processing``
        one was a turn of an instance that died (a live one would still hold the claim)."""
        for row in await self._gw.store.journal.unfinished(conv=conv):
            if before is not None and row.id >= before:
                break
            await self._gw.intake.resume_row(
                row, "taken over from an instance that stopped"
                if row.status == "processing" else why)

    def _stranded(self, channel: str, row_id: int) -> bool:
        rt = self._gw.channels.get(channel)
        return rt is not None and row_id in rt.stranded

    def _runs(self, channel: str) -> bool:
        rt = self._gw.channels.get(channel)
        return rt is not None and rt.connector is not None

    async def _live_ids(self) -> list[int]:
        rows = await self._gw.store.db.fetchall(f"{ALIVE_IDS} ORDER BY 1")
        return sorted({int(r[0]) for r in rows} | {self.me})

    async def _orphans(self) -> list[tuple[str, str]]:
        rows = await self._gw.store.db.fetchall(
            "SELECT DISTINCT m.conv, m.channel FROM messages m WHERE m.direction='in'"
            " AND m.status IN ('received', 'processing') AND NOT EXISTS (SELECT 1 FROM"
            f" conv_claims c WHERE c.conv = m.conv AND c.instance IN ({ALIVE_IDS}))")
        return [(str(r["conv"]), str(r["channel"])) for r in rows]

    # ---- leases ----------------------------------------------------------------------------
    async def take_leases(self) -> list[str]:
        """Try for the lease of every single-consumer channel not ours yet; returns the
        channels this instance has just become the receiver of."""
        taken = []
        for name, rt in list(self._gw.channels.items()):
            config = rt.entry.config
            if self.everywhere(name) or self.link.holds_lease(name) or config is None \
                    or not config.enabled:
                continue
            if await self.link.try_lease(name):
                taken.append(name)
        return taken

    async def let_lease_go(self, channel: str) -> None:
        await self.link.release_lease(channel)

    # ---- running ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Before the channels start: the leases free now are ours, so the first instance
        up receives at once."""
        self._gw.lanes.on_idle = self.lane_idle
        await self.take_leases()
        self._tasks = [asyncio.create_task(self._keep_sweeping(), name="shared:sweep"),
                       asyncio.create_task(self._listen(), name="shared:listen"),
                       asyncio.create_task(self._fan_out(), name="shared:fan-out")]
        self._notify(WORK, JOINED)  # the others count us in at once, not at their next sweep

    async def pause(self) -> None:
        """First of the gateway's stop: no sweep restarts a channel or takes work now."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def leave(self) -> None:
        """Last of the gateway's stop, after the lanes closed: what this instance held is
        free for the others."""
        await self.pause()
        self._gw.lanes.on_idle = None
        for timer in self._linger.values():
            timer.cancel()
        self._linger.clear()
        self._held.clear()
        if not self._fenced:
            me = self.me
            with contextlib.suppress(Exception):
                await self._gw.store.db.write(lambda conn: release_all(conn, me))
        await self.link.close()

    async def _keep_sweeping(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SWEEP_INTERVAL)
            self._wake.clear()
            if not await self.link.alive():
                self._fence("this instance lost its session with PostgreSQL, so the others "
                            "may be answering its conversations already")
                return
            try:
                for name in await self.take_leases():
                    await self._gw.restart_channel(name, "this instance now receives for it")
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - an outage must not end the sweeping
                _log.warning("shared work: sweep failed, again in %.0f s: %s",
                             SWEEP_INTERVAL, exc)

    def _fence(self, why: str) -> None:
        self._fenced = True
        self._held.clear()
        _log.critical("shared work: %s; stopping at once", why)
        self._on_fenced(why)

    async def _listen(self) -> None:
        async for notice in self.link.notices():
            if notice.channel == WORK:
                if notice.payload in (str(self.me), JOINED):
                    self._wake.set()
            elif notice.channel == EVENTS:
                self._republish(notice.payload)
            elif notice.channel == CONFIG and notice.payload != str(self.me):
                try:
                    await self._adopt_config()
                except Exception as exc:  # noqa: BLE001 - a bad document must not end listening
                    self._gw.channel_log("gateway", "error", "could not adopt the "
                                         f"configuration another instance saved: {exc}")

    # ---- configuration ---------------------------------------------------------------------
    async def publish_config(self) -> None:
        """This instance's panel saved its config file: the others adopt the same file."""
        path = self._gw.config.path
        if path is None or not path.exists():
            return
        document, who = path.read_text("utf-8"), self.link.who
        await self._gw.store.db.write(lambda conn: save_document(conn, document, who))
        self._notify(CONFIG, str(self.me))

    async def _adopt_config(self) -> None:
        """Write the saved document over this instance's config file and apply it, as if
        saved here; one that cannot be written (a read-only ConfigMap) is said and skipped:
        this instance keeps running the file it has."""
        row = await self._gw.store.db.fetchone(
            "SELECT document, saved_by FROM shared_config WHERE id = 1")
        path = self._gw.config.path
        if row is None or path is None or self._reload is None:
            return
        document, who = str(row["document"]), str(row["saved_by"])
        try:
            changed = replace_config_file(path, document)
        except OSError as exc:
            self._gw.channel_log("gateway", "error", f"{who} saved a configuration change, "
                                 f"but {path} cannot be written here ({exc}); this instance "
                                 "keeps running its own configuration")
            return
        if changed:
            await self._gw.adopt(self._reload())
            self._gw.channel_log("gateway", "info", f"configuration saved on {who} applied")

    def _republish(self, payload: str) -> None:
        try:
            batch = json.loads(payload)
        except ValueError:
            return
        if not isinstance(batch, dict) or batch.get("from") == self.me:
            return
        instance = str(batch.get("name", batch.get("from")))
        for item in batch.get("events", []):
            try:
                kind = EventKind(item["k"])
                data = {**item.get("d", {}), "instance": instance}
                self._gw.bus.publish(Event(kind, str(item.get("c", "")), data,
                                           float(item.get("ts", 0))))
            except (KeyError, TypeError, ValueError):
                continue

    async def _fan_out(self) -> None:
        sub = self._gw.bus.subscribe()
        try:
            while True:
                events = await sub.get_batch(200, timeout=None)
                own = [e for e in events if e.kind in FANNED_OUT and "instance" not in e.data]
                for payload in _payloads(own, self.me, self.link.who):
                    self._notify(EVENTS, payload)
        finally:
            sub.close()

    def _notify(self, channel: str, payload: str) -> None:
        self._gw.store.db.write_nowait(
            lambda conn: conn.execute("SELECT pg_notify(?, ?)", (channel, payload)))


def _payloads(events: list[Event], me: int, name: str) -> list[str]:
    """The events as NOTIFY payloads under ``MAX_NOTIFY`` bytes each, texts shortened."""
    out: list[str] = []
    items: list[dict[str, Any]] = []
    size = 0
    for event in events:
        data = {k: (v[:MAX_TEXT] if isinstance(v, str) else v) for k, v in event.data.items()}
        item = {"k": event.kind.value, "c": event.channel, "d": data, "ts": event.ts}
        try:
            encoded = len(json.dumps(item, default=str).encode())
        except (TypeError, ValueError):
            continue
        if encoded > MAX_NOTIFY - 100:
            continue
        if size + encoded > MAX_NOTIFY - 100 and items:
            out.append(json.dumps({"from": me, "name": name, "events": items}, default=str))
            items, size = [], 0
        items.append(item)
        size += encoded
    if items:
        out.append(json.dumps({"from": me, "name": name, "events": items}, default=str))
    return out
