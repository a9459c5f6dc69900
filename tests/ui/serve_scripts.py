"""Serve the real views, offline, with a chat in every script the app bundles fonts for.

Usage: python -m tests.ui.serve_scripts PORT ASSETS_DIR

ASSETS_DIR is the app's own (``views/app.py`` ASSETS_DIR) or, for the check
that the browser test can fail, a folder without the fonts. The chat history
holds one short word per script (``SAMPLES``), the same number of private-use
characters that no font has (``TOFU``: what a missing glyph looks like), and
two two-line messages whose short last line shows which side a paragraph
starts on (``RTL_PROBE``, ``LTR_PROBE``).
"""

from __future__ import annotations

import contextlib
import sys
import time

import flet as ft

from pyclaw_app.control import ChannelStatus
from tests.ui.fake_plane import FakeControlPlane
from views.app import make_main

# Five characters each, no spaces: drawn as boxes they would match TOFU box for box.
SAMPLES = {
    "Latin": "Hello",
    "Arabic": "مرحبا",
    "Hebrew": "עברית",
    "Chinese": "简体中文字",
    "Japanese": "日本語です",
    "Korean": "안녕하세요",
    "Emoji": "😀🎉👍🚀🌍",
}
TOFU = "\ue000\ue001\ue002\ue003\ue004"
RTL_PROBE = "هذا السطر الأول من رسالة عربية طويلة بما يكفي لتملأ الفقاعة\nنعم"
LTR_PROBE = "This is the first line of an English message long enough to fill it\nyes"
QUESTION = "Say hello in every script you know, please!"


def build_plane() -> FakeControlPlane:
    plane = FakeControlPlane([ChannelStatus("local", "local", "Local chat", "chat_bubble",
                                            "online", reason="ready")])
    now = time.time() - 60
    question = plane.receive("local", "app", "you", QUESTION, ts=now)
    for text in (*SAMPLES.values(), TOFU, RTL_PROBE, LTR_PROBE):
        plane.answer(question, text)
    return plane


def main() -> None:
    port, assets_dir = int(sys.argv[1]), sys.argv[2]
    plane = build_plane()

    async def get_plane() -> FakeControlPlane:
        return plane

    with contextlib.suppress(KeyboardInterrupt):
        ft.run(make_main(get_plane), view=ft.AppView.WEB_BROWSER, host="127.0.0.1", port=port,
               no_cdn=True, assets_dir=assets_dir)


if __name__ == "__main__":
    main()
