"""What every browser test needs: the app in a subprocess, fakes on a loop thread, Chromium.

Fixtures stay in the test modules and module-scoped: sync Playwright keeps an event loop
running on the main thread, and a session-scoped browser would break every async test
collected after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from views.i18n import LANGUAGES, catalog
from views.shell import WIDE_MIN_WIDTH

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--enable-unsafe-swiftshader"]
LOAD_TIMEOUT_MS = 60_000
"""How long a first page load may take: CanvasKit and the first frame took over 30 s on a
2-core machine busy with other tests."""

T = TypeVar("T")


class _Server(Protocol):
    async def start(self) -> Any: ...
    async def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path,
                  timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port}:\n{log.read_text()[-3000:]}")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = str(REPO)
    env.pop("DISPLAY", None)  # headless: Flet serves the page and opens no browser
    env.update(extra)
    return env


@contextlib.contextmanager
def serve(args: list[str], port: int, log: Path, env: dict[str, str] | None = None
          ) -> Iterator[str]:
    """Run ``python *args`` until the block ends; yields its URL once it listens."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env=env or clean_env())
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def app_args(port: int, data_dir: Path, config: Path) -> list[str]:
    """``pyclaw --web`` on a fresh data dir and config."""
    return ["-m", "cli", "--web", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), "--config", str(config)]


class FakesThread:
    """Fake platforms / LLM APIs on one event loop in a thread, so sync tests can use them."""

    def __init__(self, *servers: _Server) -> None:
        self.servers = servers
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ui-fakes",
                                       daemon=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=15)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def on_loop() -> T:
            return fn(*args)

        return self.run(on_loop())

    def __enter__(self) -> FakesThread:
        self.thread.start()
        for server in self.servers:
            self.run(server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                self.run(server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextlib.contextmanager
def chromium(playwright_sync: Any) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_app(browser: Any, url: str, ready: str, width: int = 1280, height: int = 800) -> Any:
    """A page with Flutter's semantics tree on (so locators see the controls), once the
    navigation button ``ready`` is there."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=LOAD_TIMEOUT_MS)
    placeholder.dispatch_event("click")
    page.get_by_role("button", name=ready).wait_for(timeout=LOAD_TIMEOUT_MS)
    return page


FLET_ERROR_BOX = re.compile(
    r"^(?:"
    r"[A-Z]\w*\.\w+ (?:must|is empty)"  # Semantics.content must be provided and visible
    r"|(?:content|label)(?: \(string or visible Control\))? must be provided"
    r"|[A-Z]\w*(?: control)? (?:must (?:be enclosed|be used within|be placed|have)"
    r"|has nothing to display|has no content|should have at least|requires either"
    r"|cannot have both)"
    r"|Error (?:displaying|decoding|loading)|Unknown control:|at least one action in"
    r"|The length of \w|A valid src value|CrossAxisAlignment\.BASELINE is not supported"
    r"|Rive (?:failed|file could not)|[A-Z]\w* Error: "
    r")")
"""The first line of every box Flet draws instead of a control it cannot show (its
``ErrorControl``: "Semantics.content must be provided and visible", "Error displaying
ListViewControl: height is unbounded.", ...). ``tests/ui/test_forms.py`` checks it against
every message in the installed Flet web client, and against pyclaw's own texts."""

_SEMANTIC_TEXTS = """() => Array.from(document.querySelectorAll('flt-semantics')).flatMap(
    node => [node.getAttribute('aria-label') || '',
             ...Array.from(node.querySelectorAll(':scope > span')).map(s => s.textContent)])"""


def error_boxes(page: Any) -> list[str]:
    """The Flet error boxes on the page now, by their text (semantics must be on).

    An error box is a red rectangle with a message; in the semantics tree its text is a
    node of its own or a line of the label of the container it sits in.
    """
    texts: list[str] = page.evaluate(_SEMANTIC_TEXTS)
    lines = {line.strip() for text in texts for line in (text or "").splitlines()}
    return sorted(line for line in lines if FLET_ERROR_BOX.search(line))


def assert_no_error_box(page: Any, where: str) -> None:
    """Fail, with a picture, when any Flet error box is on the page."""
    boxes = error_boxes(page)
    if boxes:
        picture = Path(os.environ.get("TMPDIR", "/tmp")) / f"pyclaw-error-box-{_slug(where)}.png"
        page.screenshot(path=str(picture))
        raise AssertionError(f"Flet error box in {where}: {boxes} (picture: {picture})")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "page"


def screenshot(page: Any, name: str, *, height: int | None = None, settle_ms: int = 500) -> Path:
    """Save ``docs/screenshots/<name>.png``; ``height`` grows the viewport for the picture
    (a long form in one image) and puts it back after."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    if height is not None:
        page.set_viewport_size({"width": before["width"], "height": height})
    page.wait_for_timeout(settle_ms)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    if height is not None:
        page.set_viewport_size(before)
    return path


def type_into(page: Any, field: Any, typed: Any, text: str, attempts: int = 3) -> None:
    """Type ``text`` into ``field`` with the keyboard until ``typed`` (the same input once
    focused: a list field's name gains its hint then) holds exactly it.

    Flutter attaches its text-editing host on focus; keys typed before it attaches are lost,
    one or all of them, so each attempt selects what is there and types the whole text again.
    """
    for _ in range(attempts):
        field.click(position={"x": 24, "y": 20})
        page.wait_for_timeout(150)
        page.keyboard.press("Control+A")
        page.keyboard.type(text)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if typed.input_value() == text:
                return
            page.wait_for_timeout(100)
    raise AssertionError(f"typed {text!r}, the field holds {typed.input_value()!r}")


def brightness(page: Any, x: int, y: int) -> int:
    """R+G+B of one pixel of the page as drawn (the canvas cannot be read from the DOM).

    Decodes the 1x1 PNG screenshot by hand: one IDAT scanline, filter byte first.
    """
    png = page.screenshot(clip={"x": x, "y": y, "width": 1, "height": 1})
    pos, data = 8, b""
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        if png[pos + 4:pos + 8] == b"IDAT":
            data += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    return sum(zlib.decompress(data)[1:4])


def drawn_in_theme(page: Any, *, dark: bool, at: tuple[int, int],
                   timeout_ms: int = 10_000) -> bool:
    """Whether the background pixel ``at`` turns dark (or light) within the timeout: the
    theme's colours animate, for longer on a busy machine."""
    for _ in range(timeout_ms // 200):
        value = brightness(page, *at)
        if (value < 200) if dark else (value > 600):
            return True
        page.wait_for_timeout(200)
    return False


def _more_names() -> str:
    """The phone bar's "More" entry in every language the panel speaks."""
    return "|".join(re.escape(catalog(code).get("More", "More")) for code in LANGUAGES)


MORE_TAB = re.compile(rf"(^|\s)({_more_names()})( Tab|$)")
"""The phone bar's "More" tab ("1 failed More Tab 5 of 5" with a failure under it)."""


def nav(page: Any, name: str) -> Any:
    """A navigation destination as the page's width lays it out: a rail button ("Chat Tab 3
    of 7" to a screen reader) on a desktop; on a phone a tab of the bottom bar, or a row of
    its More page, which this opens first when the bar has no tab of that name.

    On a phone it waits for the bar: a page just narrowed still shows the rail until the app
    has laid itself out again, and a click on the rail then lands on what replaces it.
    """
    if page.viewport_size["width"] >= WIDE_MIN_WIDTH:
        return page.get_by_role("button", name=re.compile(rf"^{name}( Tab|$)")).first
    exact = re.compile(rf"^{name}$")
    tab = page.get_by_role("tab", name=exact)
    tab.or_(page.get_by_role("tab", name=MORE_TAB)).first.wait_for(timeout=LOAD_TIMEOUT_MS)
    if tab.count() > 0:
        return tab.first
    page.get_by_role("tab", name=MORE_TAB).first.click()
    row = page.get_by_role("button", name=exact).first
    row.wait_for(timeout=LOAD_TIMEOUT_MS)
    return row


# -- steps on the canvas ---------------------------------------------------------------------

STEP_TIMEOUT_MS = 15_000
"""How long one step (a control appearing, a value sticking) may take."""


def wait_until(check: Callable[[], T], timeout: float = 15.0) -> T:
    """``check()``'s first truthy value, or its last one after ``timeout`` seconds: the
    caller's assertion then says what was missing."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def reach(page: Any, target: Any) -> Any:
    """Scroll the view under the mouse until ``target`` is on screen. Flutter keeps
    semantics nodes for controls scrolled out of sight, but a click there would miss, and
    Playwright cannot scroll a canvas into view."""
    height = page.viewport_size["height"]
    target.wait_for(state="attached", timeout=STEP_TIMEOUT_MS)
    for _ in range(40):
        box = target.bounding_box()
        if box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height:
            return target
        page.mouse.move(page.viewport_size["width"] // 2, height // 2)
        up = box is not None and box["y"] < 0
        page.mouse.wheel(0, -240 if up else 240)
        page.wait_for_timeout(120)
    raise AssertionError(f"could not scroll {target} into view")


def fill(page: Any, label: str, text: str) -> None:
    """Fill the text field named ``label``. Flutter attaches its text-editing host on
    focus and a fill that lands before it is lost, so: focus, fill, check, again. The
    field's node spans the help below the input too: the click goes to the input."""
    from playwright.sync_api import expect

    field = reach(page, page.get_by_label(label, exact=True))
    for _ in range(3):
        field.click(position={"x": 24, "y": 20})
        page.wait_for_timeout(100)
        field.fill(text)
        if wait_until(lambda: field.input_value() == text, timeout=2.0):
            return
    expect(field).to_have_value(text, timeout=STEP_TIMEOUT_MS)


def choose(page: Any, label: str, option: str) -> None:
    """Open a dropdown (a button named by its label) and pick an option by its text."""
    reach(page, page.get_by_role("button", name=label, exact=True)).click()
    page.get_by_role("button", name=option, exact=True).last.click()
    page.wait_for_timeout(400)  # the menu closes with an animation


def click(page: Any, name: str | re.Pattern[str]) -> None:
    """Click the first button named ``name`` (exactly, when it is a string)."""
    exact = isinstance(name, str) or None
    reach(page, page.get_by_role("button", name=name, exact=exact).first).click()


@contextlib.contextmanager
def picture_on_failure(page: Any, name: str) -> Iterator[None]:
    """A failing step leaves a screenshot beside the test's temporary files, to see why."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) /
                                     f"pyclaw-{name}-failure.png"))
        raise
