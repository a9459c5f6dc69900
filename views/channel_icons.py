"""A channel type's icon: the platform's logo on its colour, or a Material icon on a tile.

The logos are bundled in ``assets/icons/channels/`` (sources and licences in the
README there): the panel renders offline, so nothing is fetched at run time. Each
logo is one colour and is drawn white on the platform's colour, which reads the
same in light and dark theme; a type without a logo (IRC, email, webhook) gets its
Material icon on the theme's secondary container colour.
"""

from __future__ import annotations

import flet as ft

from pyclaw_app.control import ChannelType
from views import style

__all__ = ["ICON_DIR", "channel_badge", "icon_src"]

ICON_DIR = "icons/channels"
"""Where the logos are, under the app's assets directory."""


def icon_src(brand_icon: str) -> str:
    """The asset path Flet loads a logo from."""
    return f"{ICON_DIR}/{brand_icon}.svg"


def channel_badge(kind: ChannelType | None, size: int = 40, *, fallback: str = "",
                  dimmed: bool = False) -> ft.Container:
    """The tile for ``kind`` (None: a channel whose type this gateway does not know, drawn
    with the Material icon ``fallback``). ``dimmed``: a type that cannot be added here.

    Decorative (excluded from semantics): the title beside it says the same in words.
    """
    glyph = round(size * 0.58)
    material = style.channel_icon(kind.icon if kind else fallback)
    if kind is not None and kind.brand_icon and kind.brand_color:
        bgcolor: str = kind.brand_color
        content: ft.Control = ft.Image(
            src=icon_src(kind.brand_icon), width=glyph, height=glyph, fit=ft.BoxFit.CONTAIN,
            color=ft.Colors.WHITE, exclude_from_semantics=True,
            error_content=ft.Icon(material, size=glyph, color=ft.Colors.WHITE))
    else:
        bgcolor = ft.Colors.SECONDARY_CONTAINER
        content = ft.Icon(material, size=glyph, color=ft.Colors.ON_SECONDARY_CONTAINER)
    return ft.Container(
        width=size, height=size, border_radius=round(size * 0.26), bgcolor=bgcolor,
        # a dark logo colour (Matrix, Webex) on a dark theme keeps its edge
        border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
        alignment=ft.Alignment.CENTER, content=content, opacity=0.45 if dimmed else 1.0,
    )
