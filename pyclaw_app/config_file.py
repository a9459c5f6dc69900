"""Writing the config back into the user's YAML file without rewriting the user's file.

People keep comments, their own key order and blank lines in ``pyclaw.yaml``; a save from
the app that replaced all of it with a machine dump would teach them not to use the app.
So the file is loaded round-trip (ruamel.yaml) and only what changed is changed: a value
that differs is set, a key that went back to its default is removed (unless the file
spells out that default, which then stays), a new key is added at the end of its section,
and empty sections the user never wrote (``server: {}``) are not written. The previous
file is kept beside it as ``<name>.bak``.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

__all__ = ["replace_config_file", "write_config_file"]


def write_config_file(path: Path, changed: Mapping[str, Any], full: Mapping[str, Any]) -> None:
    """Make the YAML at ``path`` say ``changed`` (the values that differ from their defaults)
    while keeping the rest of the user's file; ``full`` is every value, defaults included,
    which tells a default the file spells out (kept) from a value that went back to its
    default (removed)."""
    old_text = path.read_text("utf-8") if path.exists() else ""
    yaml = YAML()
    document: Any = None
    if old_text.strip():
        document, sequence, offset = load_yaml_guess_indent(old_text)
        mapping = _mapping_indent(old_text)
        yaml.indent(mapping=mapping, sequence=sequence or mapping, offset=offset or 0)
    if not isinstance(document, CommentedMap):
        document = CommentedMap()
    _merge_map(document, changed, full)
    out = io.StringIO()
    yaml.dump(document, out)
    _replace(path, old_text, out.getvalue())


def replace_config_file(path: Path, text: str) -> bool:
    """Make the file at ``path`` hold ``text`` (another instance's saved configuration,
    ``gateway/shared.py``), keeping the previous one as ``.bak``; False if it already did."""
    old_text = path.read_text("utf-8") if path.exists() else ""
    return _replace(path, old_text, text)


def _replace(path: Path, old_text: str, text: str) -> bool:
    if text == old_text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    if old_text:
        shutil.copy2(path, path.with_name(path.name + ".bak"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, "utf-8")
    if path.exists():
        shutil.copymode(path, tmp)
    os.replace(tmp, path)
    return True


_ABSENT = object()


def _mapping_indent(text: str) -> int:
    """The file's indentation of nested keys (ruamel guesses only the sequences')."""
    widths = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        if body and not body.startswith(("#", "-")) and len(body) < len(line):
            widths.append(len(line) - len(body))
    return min(widths, default=2)


def _merge_map(old: CommentedMap, new: Mapping[str, Any], full: Mapping[str, Any]) -> None:
    for key in [k for k in old if k not in new]:
        current, wanted = old[key], full.get(key, _ABSENT)
        if isinstance(current, CommentedMap) and isinstance(wanted, Mapping):
            _merge_map(current, {}, wanted)  # keeps the defaults the file spells out
            if not current:
                del old[key]
        elif current != wanted:
            del old[key]
    for key, value in new.items():
        wanted = full.get(key, value) if isinstance(full, Mapping) else value
        if key not in old:
            if value not in ({}, []):
                old[key] = value
            continue
        current = old[key]
        if isinstance(current, CommentedMap) and isinstance(value, Mapping):
            _merge_map(current, value, wanted if isinstance(wanted, Mapping) else value)
            if not current and not value:
                del old[key]
        elif isinstance(current, CommentedSeq) and _named_items(value):
            old[key] = _merge_named(current, value, wanted)
        elif current != value:
            old[key] = value


def _named_items(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, Mapping) and "name" in v for v in value)


def _merge_named(old: CommentedSeq, new: list[Mapping[str, Any]], full: object) -> CommentedSeq:
    """Lists of named sections (providers): each merged with the old entry of its name, in
    the new order (failover order matters); an entry's comments travel with it."""
    by_name = {item.get("name"): item for item in old if isinstance(item, CommentedMap)}
    full_by_name = ({f.get("name"): f for f in full if isinstance(f, Mapping)}
                    if isinstance(full, list) else {})
    merged: list[Any] = []
    for entry in new:
        item = by_name.get(entry["name"])
        if item is None:
            merged.append(dict(entry))
            continue
        _merge_map(item, entry, full_by_name.get(entry["name"], entry))
        merged.append(item)
    if len(merged) == len(old) and all(a is b for a, b in zip(merged, old, strict=True)):
        return old
    return CommentedSeq(merged)
