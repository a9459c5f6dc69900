"""Serve the real views against FakeControlPlane in Flet web mode, for the browser tests.

Usage: python -m tests.ui.serve_fake PORT

It seeds a few channels, one config error and some traffic, and keeps a
telegram "user" talking every few seconds so the live feed has something to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time

import flet as ft

from pyclaw_app.control import ChannelStatus
from tests.ui.fake_plane import FakeControlPlane
from views.app import ASSETS_DIR, make_main

CHANNELS = [
    ChannelStatus("telegram", "telegram", "Telegram", "send", "online", reason="polling",
                  last_message_ts=time.time() - 42),
    ChannelStatus("work-slack", "slack", "Slack", "workspaces", "degraded",
                  reason="rate limited", last_error="429 Too Many Requests, retry in 30 s"),
    ChannelStatus("discord", "discord", "Discord", "sports_esports", "connecting"),
    ChannelStatus("local", "local", "Local chat", "chat_bubble", "online", reason="ready"),
    ChannelStatus("matrix", "matrix", "Matrix", "grid_view", "stopped"),
]
CONFIG_ERROR = "config.yaml:12 channels.matrix.homeserver: field required"


def build_plane() -> FakeControlPlane:
    plane = FakeControlPlane(CHANNELS, config_errors=[CONFIG_ERROR])
    now = time.time()
    samples = [("telegram", "1001", "alice", "Hi! Can you summarise today's standup notes?"),
               ("work-slack", "C042", "bob", "deploy status?"),
               ("telegram", "1002", "carol", "What's the weather like in Lisbon tomorrow?")]
    for i, (channel, chat, sender, text) in enumerate(samples):
        inbound = plane.receive(channel, chat, sender, text, ts=now - 300 + i * 60)
        if i == 1:
            plane.fail(inbound, "provider fake: 500 Internal Server Error")
        else:
            plane.answer(inbound, f"Sure, {sender}: here is what I found.", latency_ms=840 + i)
    return plane


async def chatter(plane: FakeControlPlane) -> None:
    for n in itertools.count(1):
        await asyncio.sleep(3)
        inbound = plane.receive("telegram", "1001", "alice", f"live message {n}")
        plane.answer(inbound, f"reply {n}", latency_ms=95.0)




def main() -> None:
    port = int(sys.argv[1])
    plane = build_plane()
    background: list[asyncio.Task[None]] = []

    async def get_plane() -> FakeControlPlane:
        if not background:
            background.append(asyncio.create_task(chatter(plane), name="serve_fake:chatter"))
        return plane

    with contextlib.suppress(KeyboardInterrupt):
        ft.run(make_main(get_plane), view=ft.AppView.WEB_BROWSER, host="127.0.0.1", port=port,
               no_cdn=True, assets_dir=str(ASSETS_DIR))


if __name__ == "__main__":
    main()
