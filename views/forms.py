"""JSON Schema -> Flet form controls, so no channel ever needs a hand-built setup form.

The gateway sends each connector's config model as pydantic's JSON Schema
(design §5). ``parse_schema`` reads it into plain ``FieldSpec`` rows (testable
without Flet); ``SchemaForm`` turns those into labelled inputs, reads the
values back in the shape the ControlPlane validates, and shows field errors
under the fields they belong to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flet as ft

from pyclaw_app.control import FieldError

__all__ = [
    "SAVED_SECRET_HINT",
    "FieldSpec",
    "FormField",
    "SchemaForm",
    "labelled",
    "parse_schema",
]

_log = logging.getLogger(__name__)

SAVED_SECRET_HINT = "Saved — leave blank to keep"

# kinds a field can have; each gets one kind of input
TEXT, SECRET, INTEGER, NUMBER, BOOLEAN, CHOICE, LIST, JSON = (
    "text", "secret", "integer", "number", "boolean", "choice", "list", "json")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One config field as the form needs it: what input, what label, what help."""

    name: str
    title: str
    kind: str
    help: str = ""
    default: Any = None
    choices: tuple[Any, ...] = ()
    required: bool = False
    nullable: bool = False


def _resolve(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Inline ``$ref``/single ``allOf`` (pydantic's form for Enum classes); outer keys win."""
    out = dict(prop)
    ref = out.pop("$ref", None)
    all_of = out.pop("allOf", None)
    if ref is None and isinstance(all_of, list) and len(all_of) == 1:
        ref = all_of[0].get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"), {})
        out = {**_resolve(target, defs), **out}
    return out


def _field_spec(name: str, prop: Mapping[str, Any], defs: Mapping[str, Any],
                required: bool) -> FieldSpec:
    prop = _resolve(prop, defs)
    nullable = False
    body = prop
    branches = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(branches, list):
        resolved = [_resolve(b, defs) for b in branches]
        kept = [b for b in resolved if b.get("type") != "null"]
        nullable = len(kept) < len(resolved)
        body = {**kept[0], **{k: v for k, v in prop.items() if k not in ("anyOf", "oneOf")}} \
            if len(kept) == 1 else {k: v for k, v in prop.items() if k not in ("anyOf", "oneOf")}
    types = body.get("type")
    if isinstance(types, list):  # {"type": ["string", "null"]}
        nullable = nullable or "null" in types
        types = next((t for t in types if t != "null"), None)
    secret = bool(prop.get("secret") or body.get("secret") or body.get("format") == "password"
                  or body.get("writeOnly"))
    choices: tuple[Any, ...] = ()
    if "enum" in body:
        kind, choices = CHOICE, tuple(body["enum"])
    elif "const" in body:
        kind, choices = CHOICE, (body["const"],)
    elif secret:
        kind = SECRET
    elif types == "boolean":
        kind = BOOLEAN
    elif types == "integer":
        kind = INTEGER
    elif types == "number":
        kind = NUMBER
    elif types == "array" and _resolve(body.get("items", {}), defs).get("type", "string") in (
            "string", "integer", "number"):
        kind = LIST
    elif types == "string":
        kind = TEXT
    else:
        kind = JSON  # objects and anything richer: edited as JSON text, validated by the gateway
    return FieldSpec(
        name=name,
        title=str(prop.get("title") or name.replace("_", " ").capitalize()),
        kind=kind,
        help=str(prop.get("description") or ""),
        default=prop.get("default"),
        choices=choices,
        required=required,
        nullable=nullable,
    )


def parse_schema(schema: Mapping[str, Any]) -> list[FieldSpec]:
    """The fields of an object schema: secrets first (the thing to paste), then schema order."""
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    specs = [_field_spec(name, prop, defs, name in required)
             for name, prop in schema.get("properties", {}).items()]
    return sorted(specs, key=lambda s: (s.kind != SECRET and not s.required))


def labelled(control: ft.Control, label: str, *, expand: bool = False) -> ft.Control:
    """Give a control a name in the semantics tree (Flutter's dropdowns have none of their own).

    Screen readers and the browser tests find a dropdown by this label, like a text field.
    """
    return ft.Semantics(label=label, content=control, container=True, expand=expand or None)


def _display(spec: FieldSpec, value: Any) -> str:
    """A value as the text an input shows."""
    if value is None:
        return ""
    if spec.kind == LIST:
        return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if spec.kind == JSON:
        return json.dumps(value)
    return str(value)


class FormField:
    """One labelled input for a FieldSpec; knows how to read its value and show an error."""

    def __init__(self, spec: FieldSpec, value: Any = None, *, secret_saved: bool = False,
                 on_blur: Callable[[FormField], Any] | None = None) -> None:
        self.spec = spec
        self.secret_saved = secret_saved
        self._on_blur = on_blur
        self.error_text = ft.Text(color=ft.Colors.ERROR, size=12, visible=False)
        self.input: ft.TextField | ft.Dropdown | ft.Switch
        label = spec.title + (" *" if spec.required else "")
        if spec.kind == BOOLEAN:
            self.input = ft.Switch(label=spec.title, value=bool(value), on_change=self._blurred,
                                   tooltip=spec.help or None)
            help_text = ft.Text(spec.help, size=12, color=ft.Colors.ON_SURFACE_VARIANT,
                                visible=bool(spec.help))
            self.root: ft.Control = ft.Column([self.input, help_text, self.error_text],
                                              spacing=2)
        elif spec.kind == CHOICE:
            self.input = ft.Dropdown(
                label=label,
                value=None if value is None else str(value),
                options=[ft.DropdownOption(key=str(c), text=str(c)) for c in spec.choices],
                helper_text=spec.help or None,
                on_select=self._blurred,
                on_blur=self._blurred,
                expand=True,
            )
            self.root = ft.Row([labelled(self.input, spec.title, expand=True)])
        else:
            secret = spec.kind == SECRET
            self.input = ft.TextField(
                label=label,
                value="" if secret else _display(spec, value),
                password=secret,
                can_reveal_password=secret,
                hint_text=(SAVED_SECRET_HINT if secret and secret_saved
                           else "comma-separated" if spec.kind == LIST else None),
                helper=spec.help or None,
                helper_max_lines=4,
                keyboard_type=(ft.KeyboardType.NUMBER if spec.kind in (INTEGER, NUMBER)
                               else ft.KeyboardType.TEXT),
                prefix_icon=ft.Icons.KEY if secret else None,
                on_blur=self._blurred,
                on_submit=self._blurred,
            )
            self.root = self.input

    def _blurred(self, e: ft.Event[ft.Control]) -> Any:
        if self._on_blur is not None:
            return self._on_blur(self)
        return None

    @property
    def raw(self) -> Any:
        return self.input.value

    def value(self) -> Any:
        """The value to send, or None for "not given" (the gateway then keeps or defaults it)."""
        spec = self.spec
        if isinstance(self.input, ft.Switch):
            return bool(self.input.value)
        if isinstance(self.input, ft.Dropdown):
            key = self.input.value
            return next((c for c in spec.choices if str(c) == key), None)
        text = (self.input.value or "").strip()
        if spec.kind == LIST:
            parts = [p.strip() for p in text.replace("\n", ",").split(",")]
            return [p for p in parts if p] or None  # blank: unset, like any other field
        if not text:
            return None  # blank: default, or for a saved secret "keep it"
        if spec.kind == INTEGER:
            try:
                return int(text)
            except ValueError:
                return text  # the gateway's validation explains what is wrong
        if spec.kind == NUMBER:
            try:
                return float(text)
            except ValueError:
                return text
        if spec.kind == JSON:
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text

    def set_error(self, message: str | None) -> None:
        if isinstance(self.input, ft.TextField):
            self.input.error = message or None
        elif isinstance(self.input, ft.Dropdown):
            self.input.error_text = message or None
        else:
            self.error_text.value = message or ""
            self.error_text.visible = bool(message)

    @property
    def error(self) -> str | None:
        if isinstance(self.input, ft.TextField):
            return str(self.input.error) if self.input.error else None
        if isinstance(self.input, ft.Dropdown):
            return self.input.error_text or None
        return self.error_text.value or None


class SchemaForm:
    """All fields of a schema; ``values()`` feeds validate/probe/save, errors go back inline."""

    def __init__(self, schema: Mapping[str, Any], values: Mapping[str, Any] | None = None,
                 secrets_set: Iterable[str] = (), *,
                 on_blur: Callable[[FormField], Any] | None = None) -> None:
        values = values or {}
        saved = set(secrets_set)
        self.specs = parse_schema(schema)
        self.fields: dict[str, FormField] = {
            spec.name: FormField(spec, values.get(spec.name, spec.default),
                                 secret_saved=spec.name in saved, on_blur=on_blur)
            for spec in self.specs
        }
        # two columns on wide windows, one on phones: long forms stay readable either way
        self.root = ft.ResponsiveRow(
            spacing=16, run_spacing=16,
            controls=[ft.Container(f.root, col={"xs": 12, "md": 6})
                      for f in self.fields.values()])

    def __getitem__(self, name: str) -> FormField:
        return self.fields[name]

    def values(self) -> dict[str, Any]:
        """Every given value by field name; blank inputs are left out."""
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            value = field.value()
            if value is not None:
                out[name] = value
        return out

    def show_errors(self, errors: Sequence[FieldError], only: Iterable[str] | None = None
                    ) -> list[str]:
        """Put each error under its field (limited to ``only`` if given); returns the rest.

        The rest are errors for the form as a whole or for fields the form does
        not have (the channel name, say), for the caller to show.
        """
        shown = None if only is None else set(only)
        by_field: dict[str, list[str]] = {}
        rest: list[str] = []
        for error in errors:
            if error.field in self.fields:
                by_field.setdefault(error.field, []).append(error.message)
            else:
                rest.append(f"{error.field}: {error.message}" if error.field else error.message)
        for name, field in self.fields.items():
            if shown is None or name in shown:
                field.set_error("; ".join(by_field.get(name, [])) or None)
        return rest
