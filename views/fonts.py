"""The fallback fonts bundled in ``assets/fonts/`` and the text theme that uses them.

Flutter's web renderer knows only the fonts it is given: offline (the app
serves everything itself) it cannot fetch Google's fallbacks, and Arabic,
Hebrew, Chinese, Japanese, Korean and emoji would show as boxes. Roboto, which
Flet ships for the web and Android has built in, stays the base font; these
fill in every glyph it lacks (where there is no Roboto, as on iOS or Windows,
Noto Sans takes its place). The files are subsets built by
``.ci/build_fonts.py`` (see ``assets/fonts/SOURCES.txt``).
"""

from __future__ import annotations

import flet as ft

__all__ = ["BASE_FONT", "CODE_FONTS", "FALLBACK_FONTS", "MONO_FONT", "text_theme"]

BASE_FONT = "Roboto"

FALLBACK_FONTS: dict[str, str] = {
    # family -> file under the assets dir; order is the fallback order. Noto Sans first: a
    # Latin, Greek or Cyrillic character Roboto lacks is not drawn from the CJK font's
    # full-width forms.
    # Simplified Chinese comes before Japanese: a kanji both have is drawn in its Chinese form.
    "Noto Sans": "fonts/NotoSans-Regular.ttf",
    "Noto Sans Arabic": "fonts/NotoSansArabic-Regular.ttf",
    "Noto Sans Hebrew": "fonts/NotoSansHebrew-Regular.ttf",
    "Noto Sans SC": "fonts/NotoSansSC-Regular-subset.otf",
    "Noto Sans JP": "fonts/NotoSansJP-Regular-subset.otf",
    "Noto Sans KR": "fonts/NotoSansKR-Regular-subset.otf",
    "Noto Color Emoji": "fonts/NotoColorEmoji-subset.ttf",
}

MONO_FONT = "monospace"
"""The family code is drawn in. Flutter's Markdown asks for "monospace" for inline code and
the Chat view's code style names it too; a browser offline has no such font, so the
bundled file is registered under that very name and both pick it up as they are."""

CODE_FONTS: dict[str, str] = {
    # DejaVu Sans Mono 2.37 (Debian fonts-dejavu-core), whole file; licence LICENSE-DejaVu.txt
    MONO_FONT: "fonts/DejaVuSansMono.ttf",
}
"""Registered beside ``FALLBACK_FONTS`` (``page.fonts``) but not in the fallback list:
prose is never drawn in a monospace font."""

_STYLES = ("display_large", "display_medium", "display_small", "headline_large",
           "headline_medium", "headline_small", "title_large", "title_medium", "title_small",
           "label_large", "label_medium", "label_small", "body_large", "body_medium",
           "body_small")


def text_theme(color: str | None = None) -> ft.TextTheme:
    """Every Material text style with the bundled fonts as its fallback list.

    Flet's Theme has no fallback list of its own; Material widgets (Text,
    fields, buttons, tabs, tooltips, Markdown) draw from these styles, and a
    control's own style (a size, a colour, a font family) keeps the fallback.
    The base family is named too: a style with a fallback list and no family
    puts the list first (Noto Sans would replace Roboto everywhere). The dark theme gives a
    ``color`` (its ``onSurface``): a text theme given to Flet replaces Material's rather
    than merging into it, and styles without a colour drew dark text on the dark theme.
    """
    style = ft.TextStyle(font_family=BASE_FONT, font_family_fallback=list(FALLBACK_FONTS),
                         color=color)
    return ft.TextTheme(**{name: style for name in _STYLES})
