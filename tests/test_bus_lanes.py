import asyncio

from pyclaw_app.bus import Bus
from pyclaw_app.lanes import Lanes
from pyclaw_app.model import Event, EventKind
from tests.support import eventually


async def test_slow_subscriber_drops_oldest_and_counts() -> None:
    bus = Bus()
    slow = bus.subscribe(maxsize=10)
    fast = bus.subscribe(maxsize=1000)
    for i in range(25):
        bus.publish(Event(EventKind.LOG, "x", {"i": i}))
    batch = await slow.get_batch(100)
    assert [e.data["i"] for e in batch] == list(range(15, 25))
    assert slow.dropped == 15
    assert len(await fast.get_batch(1000)) == 25 and fast.dropped == 0


async def test_get_batch_times_out_empty_and_close_ends_iteration() -> None:
    bus = Bus()
    sub = bus.subscribe()
    assert await sub.get_batch(timeout=0.01) == []
    sub.close()
    assert bus.subscribers == 0
    assert [e async for e in sub] == []


async def test_order_kept_within_a_conversation_under_concurrency() -> None:
    lanes = Lanes(max_concurrent_llm=8)
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def job(key: str, i: int):
        async def run() -> None:
            await asyncio.sleep(0.001 * ((i * 7) % 3))  # jobs take different times
            seen[key].append(i)
        return run

    for i in range(30):
        for key in seen:
            lanes.submit(key, job(key, i))
    await lanes.join()
    assert all(v == list(range(30)) for v in seen.values())


async def test_conversations_run_in_parallel_measured_by_overlap() -> None:
    lanes = Lanes()
    running = 0
    peak = 0
    release = asyncio.Event()

    async def job() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    for key in ("a", "b", "c", "d"):
        lanes.submit(key, job)
        lanes.submit(key, job)
    await eventually(lambda: running == 4)
    await asyncio.sleep(0.01)  # give a wrongly started second job of a lane the chance to run
    assert peak == 4  # one per conversation at once, never two of the same conversation
    release.set()
    await lanes.join()
    assert running == 0


async def test_failed_job_does_not_stall_its_lane() -> None:
    lanes = Lanes()
    done: list[str] = []

    async def boom() -> None:
        raise RuntimeError("boom")

    async def ok() -> None:
        done.append("ok")

    lanes.submit("k", boom)
    lanes.submit("k", ok)
    await lanes.join()
    assert done == ["ok"]


async def test_backlog_is_bounded_by_waiting_for_room() -> None:
    lanes = Lanes(max_backlog=3)
    release = asyncio.Event()

    async def job() -> None:
        await release.wait()

    for chat in range(3):  # three lanes, each with one job that is running and stuck
        lanes.submit(f"c{chat}", job)
    room = asyncio.create_task(lanes.wait_for_room())
    await asyncio.sleep(0.05)
    assert not room.done() and lanes.pending() == 3

    release.set()  # the jobs finish: the backlog drains, room again
    await asyncio.wait_for(room, 5)
    await lanes.join()
    assert lanes.pending() == 0
    await asyncio.wait_for(lanes.wait_for_room(), 5)


async def test_failed_and_cancelled_jobs_give_their_room_back() -> None:
    lanes = Lanes(max_backlog=2)

    async def boom() -> None:
        raise ValueError("job failed")

    lanes.submit("a", boom)
    lanes.submit("a", boom)
    await asyncio.wait_for(lanes.wait_for_room(), 5)
    await lanes.join()
    assert lanes.pending() == 0

    lanes.submit("b", asyncio.Event().wait)
    lanes.submit("c", asyncio.Event().wait)
    await lanes.close()  # stuck jobs cancelled at shutdown
    assert lanes.pending() == 0
    await asyncio.wait_for(lanes.wait_for_room(), 5)
