"""Per-conversation ordering with conversations in parallel, and a global cap on LLM calls.

A lane is a FIFO of jobs for one conversation key, drained by one task that
exists only while the lane has work, so 100,000 quiet conversations cost
nothing. The cap is a semaphore the agent holds only around the provider call:
lanes waiting for the LLM never block lanes that are, say, sending a reply.
The backlog (jobs queued or running, over all lanes) is bounded too, by making
inbound paths wait for room: see ``wait_for_room``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["Lanes"]

_log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class Lanes:
    def __init__(self, max_concurrent_llm: int = 4, max_backlog: int = 2000) -> None:
        self.on_idle: Callable[[str], None] | None = None
        """Told a conversation's key when its lane has run dry (shared instances release
        the conversation's claim then)."""
        self.llm_slots = asyncio.Semaphore(max_concurrent_llm)
        self.max_backlog = max_backlog
        self._backlog = 0
        self._room = asyncio.Event()
        self._room.set()
        self._queues: dict[str, deque[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._job_ids: set[int] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, key: str, job: Job, job_id: int | None = None) -> None:
        """Queue ``job`` behind earlier jobs of the same conversation.

        ``job_id`` (a journal row id) lets ``has_job`` tell whether that row is already queued
        or running, so resuming after a restart never queues a message twice; a second job
        for a row that has one is dropped (a resume can read the row between its journaling
        and its own job being queued).
        """
        if job_id is not None and job_id in self._job_ids:
            return
        queue = self._queues.setdefault(key, deque())
        if job_id is not None:
            self._job_ids.add(job_id)
            job = self._tracked(job, job_id)
        queue.append(job)
        self._backlog += 1
        if self._backlog >= self.max_backlog:
            self._room.clear()
        if key not in self._workers:
            self._idle.clear()
            self._workers[key] = asyncio.create_task(self._drain(key), name=f"lane:{key}")

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue[0]
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a failed job must not stall its lane
                    _log.exception("lane %s: job failed", key)
                queue.popleft()
                self._backlog -= 1
                if self._backlog < self.max_backlog:
                    self._room.set()
        finally:
            del self._workers[key]
            if not queue:
                self._queues.pop(key, None)
                if self.on_idle is not None:
                    self.on_idle(key)
            if not self._workers:
                self._idle.set()

    def _tracked(self, job: Job, job_id: int) -> Job:
        async def run() -> None:
            try:
                await job()
            finally:
                self._job_ids.discard(job_id)

        return run

    def has_job(self, job_id: int) -> bool:
        return job_id in self._job_ids

    def busy(self, key: str) -> bool:
        """Whether the conversation has a job queued or running."""
        return key in self._workers

    @property
    def active(self) -> int:
        return len(self._workers)

    def pending(self) -> int:
        """Jobs queued or running, over all lanes."""
        return self._backlog

    async def wait_for_room(self) -> None:
        """Return once fewer than ``max_backlog`` jobs are queued or running.

        Inbound paths await this after journaling, so while the gateway is behind a
        poller stops fetching and a webhook answers later: the surplus waits at the
        platform, not as jobs in memory (a 100,000-message burst otherwise held them all).
        """
        await self._room.wait()

    async def join(self) -> None:
        """Wait until every lane is empty."""
        await self._idle.wait()

    async def close(self) -> None:
        tasks = list(self._workers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queues.clear()
        self._job_ids.clear()
        self._backlog = 0
        self._room.set()
