"""Every channel type has a place in the Add channel catalog and an icon the app bundles.

The logos are assets of the app (``assets/icons/channels/``, rendered offline): a
manifest that names one the folder does not have, a logo of more than one colour
(it is tinted white on the platform's colour), or a file nobody uses or credits
fails here rather than as a blank tile in the panel.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import flet as ft
import pytest

from pyclaw_app.channels import Category, ConnectorSpec, registry
from pyclaw_app.control.admin import channel_types

ICONS = Path(__file__).resolve().parents[1] / "assets" / "icons" / "channels"
SPECS = sorted([*registry.specs().values(),
                *(m.spec for m in registry.unavailable().values() if m.spec)],
               key=lambda s: s.name)
"""Every registered type, those whose SDK is missing here included."""
COLOUR = re.compile(r"^#[0-9A-F]{6}$")
ONE_COLOUR = {"#000000", "none"}


def _colours(svg: Path) -> set[str]:
    """Every fill and stroke colour the file names (attributes and inline styles)."""
    found: set[str] = set()
    for node in ET.parse(svg).iter():
        for attr in ("fill", "stroke"):
            if attr in node.attrib:
                found.add(node.attrib[attr].lower())
        style = node.attrib.get("style", "")
        found |= {v.strip().lower() for _, v in re.findall(r"(fill|stroke)\s*:\s*([^;]+)", style)}
    return found


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_type_has_a_category_and_an_icon_that_exists(spec: ConnectorSpec) -> None:
    assert spec.category in {c.value for c in Category}, (
        f"{spec.name}: category {spec.category!r} is not one of {[c.value for c in Category]}")
    assert hasattr(ft.Icons, spec.icon.upper()), f"{spec.name}: {spec.icon} is no Material icon"
    if not spec.brand_icon:
        assert not spec.brand_color, f"{spec.name}: a colour without a logo"
        return
    svg = ICONS / f"{spec.brand_icon}.svg"
    assert svg.is_file(), f"{spec.name}: {svg} is missing"
    assert COLOUR.match(spec.brand_color), f"{spec.name}: brand_color {spec.brand_color!r}"
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox")
    assert _colours(svg) <= ONE_COLOUR, f"{svg.name} is not one colour: {_colours(svg)}"


def test_every_bundled_logo_is_used_and_credited() -> None:
    used = {s.brand_icon for s in SPECS if s.brand_icon}
    files = {p.stem for p in ICONS.glob("*.svg")}
    assert files == used, f"unused: {files - used}, missing: {used - files}"
    credits = (ICONS / "README.md").read_text("utf-8")
    for name in files:
        assert f"`{name}.svg`" in credits, f"{name}.svg has no source line in README.md"
    for licence in ("LICENSE-CC0-1.0.txt", "LICENSE-MIT-tabler.txt",
                    "LICENSE-MIT-ant-design.txt", "LICENSE-Apache-2.0.txt"):
        assert (ICONS / licence).is_file(), licence


def test_the_catalog_comes_in_category_order() -> None:
    """Known categories in their order, installable types before those to install, then
    by title: the view shows groups in the order they first appear."""
    order = [c.value for c in Category]
    types = channel_types()
    ranks = [order.index(t.category) for t in types]
    assert ranks == sorted(ranks) and set(ranks) == set(range(len(order)))
    for category in order:
        group = [t for t in types if t.category == category]
        keys = [(bool(t.install), t.title.casefold()) for t in group]
        assert keys == sorted(keys), category
    telegram = next(t for t in types if t.type == "telegram")
    assert (telegram.category, telegram.brand_icon, telegram.brand_color) == (
        "Chat apps", "telegram", "#26A5E4")


PLUGIN = """
from pyclaw_app.channels import ChannelConfig, ConnectorSpec

class FaxConfig(ChannelConfig):
    pass

FAX = ConnectorSpec("fax", "Fax", FaxConfig, category="Paper")
PAGER = ConnectorSpec("pager", "Pager", FaxConfig)
TELEX = ConnectorSpec("telex", "Telex", FaxConfig, category="Chat apps", brand_icon="line",
                      brand_color="#00C300", requires=("telex_sdk_that_is_not_installed",))
"""


@pytest.fixture
def plugins(tmp_path: Path) -> Iterator[None]:
    """A package installed beside pyclaw with three channel types (one needs a missing SDK)."""
    (tmp_path / "pyclaw_channel_paper.py").write_text(PLUGIN, "utf-8")
    info = tmp_path / "pyclaw_channel_paper-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pyclaw-channel-paper\n"
                                   "Version: 0.1\n", "utf-8")
    (info / "entry_points.txt").write_text(
        "[pyclaw.channels]\nfax = pyclaw_channel_paper:FAX\npager = pyclaw_channel_paper:PAGER\n"
        "telex = pyclaw_channel_paper:TELEX\n", "utf-8")
    sys.path.insert(0, str(tmp_path))
    registry._discover.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pyclaw_channel_paper", None)
        registry._discover.cache_clear()


def test_a_type_to_install_keeps_its_category_and_logo(plugins: None) -> None:
    """A type whose SDK is missing is still found where people look for it, with its logo;
    a plugin's own category comes after the known ones, and one with none last."""
    types = channel_types()
    telex = next(t for t in types if t.type == "telex")
    assert telex.install and (telex.category, telex.brand_icon) == ("Chat apps", "line")
    chat_apps = [t.type for t in types if t.category == "Chat apps"]
    assert chat_apps[-1] == "telex"  # after the ones that can be added now
    assert [(t.type, t.category) for t in types[-2:]] == [("fax", "Paper"), ("pager", "")]
