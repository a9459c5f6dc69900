"""The Add channel catalog against the fake admin plane (real registry, no browser):
categories in order, search as you type, the empty result, logos on cards and forms."""

from __future__ import annotations

import flet as ft
import pytest

from pyclaw_app.control import ChannelType
from tests.ui.fake_admin_plane import FakeAdminPlane
from views.app import ASSETS_DIR
from views.channel_catalog import ALL, OTHER, ChannelCatalog, matches
from views.channel_icons import icon_src
from views.channels import ChannelsView

CATEGORIES = ["Chat apps", "Team chat", "Open protocols", "Developer"]


def _add(type_name: str) -> object:
    async def clicked(e: object) -> None:
        raise AssertionError("not clicked in these tests")

    return clicked


def _texts(node: object) -> list[str]:
    """Every Text value under ``node``."""
    if isinstance(node, ft.Text):
        return [str(node.value)]
    children = [getattr(node, "content", None), *(getattr(node, "controls", None) or [])]
    return [t for child in children if child is not None for t in _texts(child)]


def _logo(badge: ft.Container) -> str:
    """The asset a badge draws ("" when it shows a Material icon)."""
    content = badge.content
    return str(content.src) if isinstance(content, ft.Image) else ""


@pytest.fixture
def plane() -> FakeAdminPlane:
    return FakeAdminPlane()


@pytest.fixture
def catalog(plane: FakeAdminPlane) -> ChannelCatalog:
    catalog = ChannelCatalog(_add)  # type: ignore[arg-type]
    catalog.show(plane.channel_types(), {})
    return catalog


def test_types_are_grouped_by_category_in_catalog_order(catalog: ChannelCatalog) -> None:
    assert [g.name for g in catalog.groups] == CATEGORIES
    by_group = {g.name: {c.type.type for c in g.cards} for g in catalog.groups}
    assert {"telegram", "whatsapp", "signal", "line", "wechat"} <= by_group["Chat apps"]
    assert {"slack", "discord", "teams", "feishu", "dingtalk"} <= by_group["Team chat"]
    assert {"irc", "xmpp", "matrix", "mqtt", "email"} <= by_group["Open protocols"]
    assert {"webhook", "openai_api", "local"} <= by_group["Developer"]
    chips = [c.label.value for c in catalog.chips.controls if isinstance(c, ft.Chip)]
    assert chips == ["All", *CATEGORIES]
    assert len(catalog.shown) == len(catalog.cards) and not catalog.empty.visible


def test_search_matches_title_type_description_and_category(catalog: ChannelCatalog) -> None:
    catalog.search("tele")
    assert catalog.shown == ["telegram"]
    assert catalog.summary.visible and catalog.summary.value == (
        f"1 of {len(catalog.cards)} channel types")
    assert catalog.clear_button.visible
    visible_groups = [g.name for g in catalog.groups if g.root.visible]
    assert visible_groups == ["Chat apps"]  # the other headings go with their cards

    catalog.search("openai_api")  # the type name
    assert catalog.shown == ["openai_api"]
    catalog.search("企业微信")  # in WeCom's description
    assert catalog.shown == ["wecom"]
    catalog.search("  OPEN protocols ")  # the category, any case and spacing
    assert set(catalog.shown) == {"irc", "xmpp", "matrix", "mqtt", "email"}
    catalog.search("bot token")  # every word must appear, not the phrase
    assert "telegram" in catalog.shown and "irc" not in catalog.shown


def test_an_empty_result_says_so_and_offers_every_type(catalog: ChannelCatalog) -> None:
    catalog.search("carrier pigeon")
    assert catalog.shown == []
    assert catalog.empty.visible and catalog.empty.value == (
        "No channel type matches “carrier pigeon”.")
    assert catalog.show_all.visible and not catalog.summary.visible
    assert not any(g.root.visible for g in catalog.groups)
    catalog.search("")
    assert len(catalog.shown) == len(catalog.cards)
    assert not catalog.empty.visible and not catalog.clear_button.visible


def test_a_category_chip_narrows_and_combines_with_the_search(catalog: ChannelCatalog) -> None:
    catalog.pick("Open protocols")
    assert set(catalog.shown) == {"irc", "xmpp", "matrix", "mqtt", "email"}
    selected = [c.data for c in catalog.chips.controls if isinstance(c, ft.Chip) and c.selected]
    assert selected == ["Open protocols"]
    assert catalog.summary.value == f"5 of {len(catalog.cards)} channel types in Open protocols"
    catalog.search("mail")
    assert catalog.shown == ["email"]
    catalog.search("slack")  # a Team chat type, not in this category
    assert catalog.shown == [] and catalog.empty.value == (
        "No channel type matches “slack” in Open protocols.")
    catalog.pick(ALL)
    assert catalog.shown == ["slack"]


def test_a_rebuild_keeps_the_search_and_category(plane: FakeAdminPlane,
                                                 catalog: ChannelCatalog) -> None:
    catalog.pick("Team chat")
    catalog.search("slack")
    catalog.show(plane.channel_types(), {"slack": 2})  # a channel was saved meanwhile
    assert catalog.shown == ["slack"] and catalog.category == "Team chat"
    assert "websocket · 2 configured" in _texts(catalog.cards["slack"].root)


def test_plugin_types_without_a_known_category_come_last(plane: FakeAdminPlane) -> None:
    plane.extra_types += [
        ChannelType("fax", "Fax", "print", "Send faxes.", "", "polling", {}, category="Paper"),
        ChannelType("pager", "Pager", "", "Beeps.", "", "polling", {}),
    ]
    catalog = ChannelCatalog(_add)  # type: ignore[arg-type]
    catalog.show(plane.channel_types(), {})
    assert [g.name for g in catalog.groups] == [*CATEGORIES, "Paper", OTHER]
    catalog.search("other")
    assert "pager" in catalog.shown
    assert matches(plane.channel_types()[-1], "beeps") and not matches(
        plane.channel_types()[-1], "faxes")


def test_every_card_shows_the_platforms_logo_or_a_material_icon(
        catalog: ChannelCatalog) -> None:
    for name, card in catalog.cards.items():
        kind = card.type
        if kind.brand_icon:
            assert _logo(card.badge) == icon_src(kind.brand_icon), name
            assert (ASSETS_DIR / _logo(card.badge)).is_file(), name
            assert card.badge.bgcolor == kind.brand_color
            assert card.badge.content.color == ft.Colors.WHITE  # tinted, reads in any theme
        else:
            assert isinstance(card.badge.content, ft.Icon), name
            assert card.badge.bgcolor == ft.Colors.SECONDARY_CONTAINER
    assert _logo(catalog.cards["telegram"].badge) == "icons/channels/telegram.svg"
    assert not _logo(catalog.cards["irc"].badge)


async def test_configured_cards_and_the_form_show_the_same_logo(plane: FakeAdminPlane) -> None:
    plane.configure("tg", "telegram", {"token": "1:secret"})
    plane.configure("chan", "irc", {"host": "irc.example.org"})
    view = ChannelsView(plane)
    await view.load()
    assert _logo(view.cards["tg"].icon) == _logo(view.catalog.cards["telegram"].badge)
    assert isinstance(view.cards["chan"].icon.content, ft.Icon)
    editor = await view.edit("tg")
    assert _logo(editor.icon.content) == "icons/channels/telegram.svg"


async def test_add_from_a_search_result_opens_that_form(plane: FakeAdminPlane) -> None:
    view = ChannelsView(plane)
    await view.load()
    view.catalog.search("matrix")
    assert view.catalog.shown == ["matrix"]
    editor = await view.add(view.catalog.shown[0])
    assert editor.title.value == "Add a Matrix channel"
    editor.pick_type("slack")  # the picker follows the catalog order and swaps the logo
    assert _logo(editor.icon.content) == "icons/channels/slack.svg"
    options = [o.key for o in editor.type_picker.options]
    assert options == [t.type for t in plane.channel_types()]


class _ToInstallFirst(FakeAdminPlane):
    """A plane whose first type in catalog order cannot be added here."""

    def channel_types(self) -> list[ChannelType]:
        acme = ChannelType("acme", "Acme", "", "", "", "", {}, install="pip install acme",
                           category="Chat apps")
        return [acme, *super().channel_types()]


async def test_add_channel_opens_an_installed_type_not_configured_yet() -> None:
    plane = _ToInstallFirst()
    first, second = [t.type for t in plane.channel_types() if not t.install][:2]
    plane.configure(first, first, {})
    view = ChannelsView(plane)
    await view.load()
    editor = await view.add_default()
    assert editor.type.type == second and editor.type_picker.visible
