"""Build the fallback fonts in ``assets/fonts/`` from Debian's Noto packages (fontTools subset).

Why: Flutter's web renderer draws on a canvas with only the fonts it is given;
offline it cannot fetch Google's fallback fonts, so Arabic, Hebrew, CJK and
emoji would be boxes ("tofu"). The app registers these files (views/fonts.py)
and lists them as the theme's fallback. Roboto, the base font, ships with Flet;
Noto Sans, first in the list, covers the Latin, Greek and Cyrillic characters
Roboto lacks, so that they never fall through to the CJK font's full-width forms.

Reproducible: the sources are pinned to the Debian package versions below and
checked by SHA-256; fontTools keeps the sources' ``head.modified`` date, so the
same inputs give byte-identical outputs. fontTools is needed only here, never
when the app runs:

    apt-get install -y fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji
    .venv/bin/pip install fonttools==4.68.0
    .venv/bin/python .ci/build_fonts.py          # writes assets/fonts/*, prints sizes

Which characters (the CJK fonts are subset, the rest keep their whole script):
- Noto Sans SC: every hanzi of GB 2312 (levels 1 and 2: 6,763 characters, which
  cover over 99.9 % of modern Simplified Chinese text) and its symbol rows 1-9
  (CJK punctuation, fullwidth forms, kana, Greek, Cyrillic, box drawing).
- Noto Sans JP: Hiragana, Katakana (and the phonetic extensions, halfwidth
  forms) and the JIS X 0208 level-1 kanji (2,965) that GB 2312 lacks. The
  kanji both sets share come from the SC font, which is listed first.
- Noto Sans KR: the 2,350 Hangul syllables of KS X 1001 (nearly all of modern
  text) and the Hangul compatibility jamo.
- The character lists come from Python's own gb2312, euc_jp and euc_kr codecs,
  so they need no downloaded list.
- Noto Sans, Noto Sans Arabic, Noto Sans Hebrew: their whole repertoire, hinting dropped.
- Noto Color Emoji: every single-code-point emoji, keycaps and country flags;
  skin-tone variants, ZWJ sequences (families, professions) and subdivision
  flags are dropped to keep the size down: they show as their parts
  (a thumbs-up followed by a skin-tone swatch, a man and a laptop).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "assets" / "fonts"
NOTO = Path("/usr/share/fonts/truetype/noto")
CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
LICENSE_SOURCE = Path("/usr/share/doc/fonts-noto-cjk/copyright")  # has the whole OFL text
APACHE = Path("/usr/share/common-licenses/Apache-2.0")

PACKAGES = {  # the Debian 12 (bookworm) versions these files were built from
    "fonts-noto-core": "20201225-1",
    "fonts-noto-cjk": "1:20220127+repack1-1",
    "fonts-noto-color-emoji": "2.042-0+deb12u1",
}
SOURCE_SHA256 = {
    NOTO / "NotoSans-Regular.ttf":
        "89c3c497f618fdaa0b2d1e98fef93582f28c71debd2c4a8cdf41f190ced2909d",
    NOTO / "NotoSansArabic-Regular.ttf":
        "504d7407d86875acf7d04dfaa0fd7524d0b8797723bc4aa18022f29db25b0b6e",
    NOTO / "NotoSansHebrew-Regular.ttf":
        "436900d5ad77d33e4234247f3076eaecd25b92b9bea0519514f684140e3566a7",
    CJK: "b76b0433203017ca80401b2ee0dd69350349871c4b19d504c34dbdd80541690a",
    NOTO / "NotoColorEmoji.ttf":
        "e5899ed38b8ed83e08bd3ac5de09791e9d19d288333a796de1d35ad17396f1ec",
}

# Vertical-writing and locale-variant features: Flutter lays text out horizontally
# and picks no OpenType language, so these only pull in glyphs nobody sees.
_UNUSED_FEATURES = {"locl", "vert", "vrt2", "vkrn", "vpal", "valt", "vhal", "vjmo", "vchw"}


@dataclass(frozen=True)
class Target:
    output: str
    source: Path
    face: int  # index in a .ttc collection, 0 for a single font
    unicodes: frozenset[int] | None  # None: the font's whole repertoire
    what: str  # for SOURCES.txt
    emoji: bool = False  # colour bitmaps: subset by glyph (see emoji_glyphs)


def double_byte_rows(codec: str, first: int, last: int) -> set[int]:
    """The characters in rows ``first..last`` of an EUC-encoded 94x94 standard."""
    found = set()
    for row in range(first, last + 1):
        for cell in range(1, 95):
            try:
                found.update(map(ord, bytes([0xA0 + row, 0xA0 + cell]).decode(codec)))
            except UnicodeDecodeError:
                continue  # an unassigned cell
    return found


def _span(first: int, last: int) -> set[int]:
    return set(range(first, last + 1))


def cjk_sets() -> dict[str, set[int]]:
    gb_hanzi = double_byte_rows("gb2312", 16, 87)  # level 1: rows 16-55, level 2: 56-87
    jis_kanji = double_byte_rows("euc_jp", 16, 47)  # JIS X 0208 level 1
    hangul = double_byte_rows("euc_kr", 16, 40)  # KS X 1001 Hangul syllables
    punctuation = _span(0x3000, 0x303F) | _span(0xFF00, 0xFFEF)
    kana = _span(0x3040, 0x30FF) | _span(0x31F0, 0x31FF) | _span(0xFF61, 0xFF9F)
    return {
        "sc": gb_hanzi | double_byte_rows("gb2312", 1, 9) | punctuation,
        "jp": (jis_kanji - gb_hanzi) | kana,
        "kr": hangul | _span(0x3131, 0x318E),
    }


CJK_FACES = {"jp": 0, "kr": 1, "sc": 2}  # the order inside NotoSansCJK-Regular.ttc


def targets() -> list[Target]:
    sets = cjk_sets()
    return [
        Target("NotoSans-Regular.ttf", NOTO / "NotoSans-Regular.ttf", 0, None,
               "whole repertoire, no hinting"),
        Target("NotoSansArabic-Regular.ttf", NOTO / "NotoSansArabic-Regular.ttf", 0, None,
               "whole repertoire, no hinting"),
        Target("NotoSansHebrew-Regular.ttf", NOTO / "NotoSansHebrew-Regular.ttf", 0, None,
               "whole repertoire, no hinting"),
        Target("NotoSansSC-Regular-subset.otf", CJK, CJK_FACES["sc"], frozenset(sets["sc"]),
               "GB 2312 hanzi (levels 1-2) and symbol rows 1-9, CJK punctuation"),
        Target("NotoSansJP-Regular-subset.otf", CJK, CJK_FACES["jp"], frozenset(sets["jp"]),
               "kana and the JIS X 0208 level-1 kanji not in GB 2312"),
        Target("NotoSansKR-Regular-subset.otf", CJK, CJK_FACES["kr"], frozenset(sets["kr"]),
               "KS X 1001 Hangul syllables, compatibility jamo"),
        Target("NotoColorEmoji-subset.ttf", NOTO / "NotoColorEmoji.ttf", 0, None,
               "single-code-point emoji, keycaps, country flags", emoji=True),
    ]


def _options() -> subset.Options:
    options = subset.Options()
    options.layout_features = [f for f in options.layout_features if f not in _UNUSED_FEATURES]
    options.name_IDs = ["*"]  # keep copyright, licence and version strings
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.hinting = False  # CanvasKit does not use TrueType hints
    return options


def emoji_glyphs(font: TTFont) -> list[str]:
    """Single-code-point emoji plus the keycap and flag ligatures (see the module doc)."""
    cmap = font.getBestCmap()
    by_glyph: dict[str, int] = {}
    for code, name in sorted(cmap.items()):
        by_glyph.setdefault(name, code)
    keep = set(cmap.values())
    for lookup in font["GSUB"].table.LookupList.Lookup:
        if lookup.LookupType != 4:
            continue
        for table in lookup.SubTable:
            for first, ligatures in table.ligatures.items():
                for ligature in ligatures:
                    glyphs = (first, *ligature.Component)
                    if all(g in by_glyph for g in glyphs) and _flag_or_keycap(
                            by_glyph[g] for g in glyphs):
                        keep.add(ligature.LigGlyph)
    return sorted(keep)


def _flag_or_keycap(codes: Iterable[int]) -> bool:
    codes = list(codes)
    return all(0x1F1E6 <= c <= 0x1F1FF for c in codes) or 0x20E3 in codes


def build(target: Target) -> bytes:
    font = TTFont(target.source, fontNumber=target.face, recalcTimestamp=False)
    options = _options()
    subsetter = subset.Subsetter(options)
    if target.emoji:
        options.layout_closure = False  # keep exactly the chosen ligatures
        subsetter.populate(glyphs=emoji_glyphs(font))
    elif target.unicodes is None:
        subsetter.populate(unicodes=font.getBestCmap().keys())
    else:
        subsetter.populate(unicodes=sorted(target.unicodes))
    subsetter.subset(font)
    path = OUT / target.output
    font.save(path, reorderTables=True)
    return path.read_bytes()


def check_sources(strict: bool) -> list[str]:
    """Problems with the inputs: another package version, a missing or different file."""
    problems = []
    for package, version in PACKAGES.items():
        found = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                               capture_output=True, text=True, check=False).stdout
        if found != version:
            problems.append(f"{package}: found {found or 'not installed'!r}, pinned {version}")
    for source, digest in SOURCE_SHA256.items():
        if not source.exists():
            problems.append(f"missing {source}")
        elif hashlib.sha256(source.read_bytes()).hexdigest() != digest:
            problems.append(f"{source}: not the pinned file (SHA-256 differs)")
    if problems and strict:
        raise SystemExit("sources differ from the pinned ones (use --any-version to build "
                         "anyway):\n  " + "\n  ".join(problems))
    return problems


def write_license() -> None:
    """OFL.txt: the fonts' own copyright lines, then the licence text Debian ships."""
    notices = []
    for target in targets():
        font = TTFont(OUT / target.output)
        name = font["name"]
        notices.append(f"{name.getDebugName(4)} ({target.output}, subset by pyclaw):\n"
                       f"  {name.getDebugName(0)}")
    OUT.joinpath("OFL.txt").write_text(
        "The fonts in this folder are modified (subset) versions of Google's Noto fonts,\n"
        "redistributed under the SIL Open Font License, Version 1.1, reproduced below.\n"
        "They keep their Noto family names and use no Reserved Font Name. The emoji images in\n"
        "NotoColorEmoji-subset.ttf are Copyright Google Inc. under the Apache License 2.0.\n\n"
        + "\n".join(notices) + "\n\n" + _ofl_text(), encoding="utf-8")
    OUT.joinpath("LICENSE-Apache-2.0.txt").write_text(APACHE.read_text(encoding="utf-8"),
                                                      encoding="utf-8")


def write_sources(built: dict[Target, bytes]) -> None:
    """SOURCES.txt: what each file was made from, so a rebuild can be checked byte for byte."""
    lines = ["Built by .ci/build_fonts.py (fontTools subset) from Debian 12 packages:"]
    lines += [f"  {package} {version}" for package, version in PACKAGES.items()]
    lines.append("")
    for target, data in built.items():
        face = f" face {target.face}" if target.source.suffix == ".ttc" else ""
        count = "" if target.unicodes is None else f", {len(target.unicodes)} code points"
        lines += [f"{target.output}  ({len(data)} bytes{count})",
                  f"  what   {target.what}",
                  f"  from   {target.source}{face}",
                  f"  source sha256 {SOURCE_SHA256[target.source]}",
                  f"  output sha256 {hashlib.sha256(data).hexdigest()}"]
    OUT.joinpath("SOURCES.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _ofl_text() -> str:
    """The standalone "License: SIL-1.1" paragraph of a Debian copyright file, as plain text."""
    lines = LICENSE_SOURCE.read_text(encoding="utf-8").splitlines()
    start = len(lines) - lines[::-1].index("License: SIL-1.1")
    body = []
    for line in lines[start:]:
        if not line.startswith(" "):
            break
        body.append("" if line.strip() == "." else line[1:])
    return "\n".join(body).strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--any-version", action="store_true",
                        help="build even if the Debian packages differ from the pinned ones")
    args = parser.parse_args(argv)
    for problem in check_sources(strict=not args.any_version):
        print(f"warning: {problem}", file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    built = {target: build(target) for target in targets()}
    for target, data in built.items():
        print(f"{target.output:34} {len(data) / 1e6:6.2f} MB")
    write_license()
    write_sources(built)
    print(f"{'total':34} {sum(map(len, built.values())) / 1e6:6.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
