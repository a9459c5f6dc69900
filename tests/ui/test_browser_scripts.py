"""Every script readable offline, and right-to-left text laid out right to left, in Chromium.

The views run on a fake plane (``serve_scripts``) whose chat holds a five-letter
word in Latin, Arabic, Hebrew, Chinese, Japanese, Korean and emoji, and five
private-use characters that no font has: the picture of a missing glyph
("tofu"). Each word's bubble must differ from the tofu bubble and carry ink.
The same page served from an assets folder without the fonts is the control:
there every non-Latin word must match the tofu bubble, which shows that the
comparison does see boxes (and that without the bundled fonts this test fails).

Pixels are compared once the page has settled: every registered font file
has been answered (200, or 404 without the fonts) and two pictures in a row
are the same, since Flet loads the fonts one after the other after the first
frame. Helpers and the browser fixture come from ``test_browser``.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from tests.ui.browser_support import CHROMIUM, LOAD_TIMEOUT_MS, SCREENSHOTS, free_port, serve
from tests.ui.serve_scripts import LTR_PROBE, RTL_PROBE, SAMPLES, TOFU
from tests.ui.test_browser import STEP_TIMEOUT_MS  # importing it skips without Playwright
from views.app import ASSETS_DIR
from views.fonts import FALLBACK_FONTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

SETTLE_TIMEOUT = 30.0  # seconds for the fonts to arrive and the page to stop changing
SAME_PICTURE = 2.0  # mean difference per channel (0-255) below which two pictures match
INK = 60  # how far (per channel) a pixel must be from the bubble's fill to count as ink
MIN_INK_PIXELS = 30
# Mean difference (0-255) between a word's ink and the tofu's, scaled to the same size,
# below which the word is boxes. Measured here: boxes 0-26 (Arabic's boxes sit a pixel
# closer), real glyphs 47-68.
LIKE_TOFU = 36.0


Settled = tuple[Any, dict[str, Image.Image]]
"""The Chat page, and the bubble of each label in ``LABELS`` as drawn once it settled."""
LABELS = [*SAMPLES.values(), TOFU, RTL_PROBE, LTR_PROBE]


@pytest.fixture(scope="module")
def with_fonts(browser: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settled]:
    with _serve(ASSETS_DIR, tmp_path_factory.mktemp("scripts_app")) as url:
        page, bubbles = _settled(browser, url)
        try:
            yield page, bubbles
        finally:
            page.close()


@pytest.fixture(scope="module")
def without_fonts(browser: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settled]:
    """The same app with the assets minus ``fonts/``: what a build that lost them shows."""
    tmp = tmp_path_factory.mktemp("fontless_app")
    assets = tmp / "assets"
    shutil.copytree(ASSETS_DIR, assets, ignore=shutil.ignore_patterns("fonts"))
    with _serve(assets, tmp) as url:
        page, bubbles = _settled(browser, url)
        try:
            yield page, bubbles
        finally:
            page.close()


def _serve(assets: Path, tmp: Path) -> Any:
    port = free_port()
    return serve(["-m", "tests.ui.serve_scripts", str(port), str(assets)], port,
                 tmp / "server.log")


# -- pictures ------------------------------------------------------------------------------


def _grab(page: Any) -> dict[str, Image.Image]:
    """Each label's bubble: its chat row cut from one screenshot, less the page background."""
    boxes = {label: page.get_by_text(label, exact=True).bounding_box(timeout=STEP_TIMEOUT_MS)
             for label in LABELS}
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    bubbles = {}
    for label, box in boxes.items():
        assert box is not None, f"no node shows {label!r}"
        row = shot.crop((round(box["x"]), round(box["y"]), round(box["x"] + box["width"]),
                         round(box["y"] + box["height"])))
        page_colour = row.getpixel((row.width - 1, row.height // 2))
        background = Image.new("RGB", row.size, page_colour)
        bubble = ImageChops.difference(row, background).convert("L").point(
            lambda v: 255 if v > 8 else 0).getbbox()
        assert bubble is not None, f"the row of {label!r} is empty"
        bubbles[label] = row.crop(bubble)
    return bubbles


def _same_picture(a: Image.Image, b: Image.Image) -> bool:
    if a.size != b.size:
        return False
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean) < SAME_PICTURE


def _ink_level(bubble: Image.Image) -> Image.Image:
    """How far each pixel is from the bubble's fill (its commonest colour), 0-255."""
    colours = bubble.getcolors(bubble.width * bubble.height) or []
    fill = max(colours)[1]
    return ImageChops.difference(bubble, Image.new("RGB", bubble.size, fill)).convert("L")


def _ink(bubble: Image.Image) -> Image.Image:
    """A mask of the glyph pixels."""
    return _ink_level(bubble).point(lambda v: 255 if v > INK else 0)


def _ink_pixels(bubble: Image.Image) -> int:
    return int(ImageStat.Stat(_ink(bubble)).sum[0] // 255)


def _looks_like_tofu(bubble: Image.Image, tofu: Image.Image) -> bool:
    """Whether the word's glyphs, cut to their ink and scaled to the tofu's, match its boxes."""
    word, boxes = _ink_level(bubble), _ink_level(tofu)
    word = word.crop(_ink(bubble).getbbox())
    boxes = boxes.crop(_ink(tofu).getbbox())
    scaled = word.resize(boxes.size, Image.Resampling.BILINEAR)
    return ImageStat.Stat(ImageChops.difference(scaled, boxes)).mean[0] < LIKE_TOFU


def _last_line_centre(bubble: Image.Image) -> float:
    """Where, as a fraction of the bubble's width, the ink of its lower half is centred."""
    lower = _ink(bubble).crop((0, bubble.height // 2, bubble.width, bubble.height))
    ink = lower.getbbox()
    assert ink is not None, "no text in the bubble's last line"
    return (ink[0] + ink[2]) / 2 / bubble.width


def _settled(chromium: Any, url: str) -> Settled:
    """The Chat page once every font file was answered and two pictures in a row match."""
    # tall enough for every bubble with its time and copy row, none scrolled out of the shot
    page = chromium.new_page(viewport={"width": 1280, "height": 1500})
    answered: set[str] = set()
    page.on("response", lambda r: answered.add(r.url.rsplit("/", 1)[1]))
    fonts = {path.rsplit("/", 1)[1] for path in FALLBACK_FONTS.values()}
    page.goto(f"{url}/chat")
    placeholder = page.locator("flt-semantics-placeholder")  # see browser_support.open_app
    placeholder.wait_for(state="attached", timeout=LOAD_TIMEOUT_MS)
    placeholder.dispatch_event("click")
    page.get_by_text(TOFU, exact=True).wait_for(timeout=LOAD_TIMEOUT_MS)
    before: dict[str, Image.Image] = {}
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if fonts <= answered:
            now = _grab(page)
            if before and all(_same_picture(now[k], before[k]) for k in LABELS):
                return page, now
            before = now
        page.wait_for_timeout(400)
    page.close()
    if not fonts <= answered:
        pytest.fail(f"the page never fetched {sorted(fonts - answered)}: are they registered "
                    "(page.fonts in views/app.py)?")
    pytest.fail("the page kept changing after its fonts were answered")


# -- the tests -----------------------------------------------------------------------------


def _when_drawn(page: Any, bubbles: dict[str, Image.Image]) -> dict[str, Image.Image]:
    """Flet registers the fonts one after another after the first frame, and on a busy
    machine the last ones (Korean, emoji) can be drawn seconds after the page looked
    settled: look again until no word is boxes, or the time is up (then the test says
    which script stayed boxes)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (any(_looks_like_tofu(bubbles[word], bubbles[TOFU]) for word in SAMPLES.values())
           and time.monotonic() < deadline):
        page.wait_for_timeout(500)
        bubbles = _grab(page)
    return bubbles


def test_every_script_renders_glyphs_not_boxes(with_fonts: Settled) -> None:
    page, bubbles = with_fonts
    bubbles = _when_drawn(page, bubbles)
    tofu = bubbles[TOFU]
    assert _ink_pixels(tofu) >= MIN_INK_PIXELS, "the tofu reference drew nothing"
    for script, word in SAMPLES.items():
        assert _ink_pixels(bubbles[word]) >= MIN_INK_PIXELS, f"{script} ({word}) is blank"
        assert not _looks_like_tofu(bubbles[word], tofu), f"{script} ({word}) is boxes"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chat-scripts.png"))


def test_without_the_fonts_the_same_words_are_boxes(without_fonts: Settled) -> None:
    _, bubbles = without_fonts
    boxed = [s for s, word in SAMPLES.items() if _looks_like_tofu(bubbles[word], bubbles[TOFU])]
    assert boxed == [s for s in SAMPLES if s != "Latin"]  # Roboto ships with Flet


def test_an_arabic_bubble_is_laid_out_right_to_left(with_fonts: Settled) -> None:
    """A two-line message whose last line is one short word: that word sits at the right
    end of an Arabic bubble and at the left end of an English one."""
    _, bubbles = with_fonts
    assert _last_line_centre(bubbles[RTL_PROBE]) > 0.8
    assert _last_line_centre(bubbles[LTR_PROBE]) < 0.2


def test_latin_keeps_the_base_font(with_fonts: Settled, without_fonts: Settled) -> None:
    """The fallbacks only fill gaps: Latin is drawn exactly as without them (in Roboto)."""
    word = SAMPLES["Latin"]
    assert _same_picture(with_fonts[1][word], without_fonts[1][word])
