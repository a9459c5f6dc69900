"""The kit's per-key turns (Slack's per-conversation journaling, shared instances'
takeovers): arrival order within a key, keys side by side, nothing kept once idle."""

from __future__ import annotations

import asyncio

from pyclaw_app.channels import Turns


async def test_turns_keep_arrival_order_per_conversation_and_forget_idle_ones() -> None:
    turns = Turns()
    done: list[tuple[str, int]] = []

    async def event(conversation: str, number: int, pause: int) -> None:
        async with turns.turn(conversation):
            for _ in range(pause):  # a journal write that takes a while
                await asyncio.sleep(0)
            done.append((conversation, number))

    await asyncio.gather(*(event(c, i, pause=(7 * i + len(c)) % 5)
                           for i in range(20) for c in ("C1", "C22", "C333")))
    for conversation in ("C1", "C22", "C333"):
        assert [n for c, n in done if c == conversation] == list(range(20))
    assert len(turns) == 0
