"""JSON Schema -> Flet form controls, so no channel ever needs a hand-built setup form.

The gateway sends each connector's config model as pydantic's JSON Schema
(design §5). ``parse_schema`` reads it into plain ``FieldSpec`` rows (testable
without Flet); ``SchemaForm`` turns those into labelled inputs, reads the
values back in the shape the ControlPlane validates, and shows field errors
under the fields they belong to.

What the user reads comes from the models: a field's ``title`` (or, where a
model gives none, a label made from its name with acronyms kept: "Base URL"),
its ``description`` as help, read whole, and these schema extras:

- ``options``: ``{value: label}`` for the choices of a ``Literal``;
- ``shown_when``: ``{field: value or [values]}``: the field applies only then
  (webhook fields in polling mode are hidden, not just ignored);
- ``group``: ``essentials`` (shown first), ``access`` (who may talk) or
  ``advanced`` (collapsed). Without one: secrets, required fields and text
  fields with nothing to fall back to are essentials, everything with a real
  default is advanced.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flet as ft

from pyclaw_app.control import FieldError
from views.i18n import t

__all__ = [
    "ACCESS",
    "ADVANCED",
    "ESSENTIALS",
    "SAVED_SECRET_HINT",
    "SAVED_SECRET_NOTE",
    "FieldSpec",
    "FormField",
    "SchemaForm",
    "labelled",
    "parse_schema",
    "readable_label",
]

_log = logging.getLogger(__name__)

SAVED_SECRET_HINT = "Saved — leave blank to keep"
SAVED_SECRET_NOTE = "A value is saved (not shown). Leave blank to keep it, or type a new one."
HELP_LINES = 12
"""Help under a field is shown whole up to this many lines (Flutter's default is one)."""
WIDE_OPTION = 40
"""A menu with an option longer than this many characters gets a whole line, so the
chosen option is read whole, not cut off in half a form."""

# kinds a field can have; each gets one kind of input
TEXT, SECRET, INTEGER, NUMBER, BOOLEAN, CHOICE, LIST, JSON = (
    "text", "secret", "integer", "number", "boolean", "choice", "list", "json")

# where a field goes in the form, in this order
ESSENTIALS, ACCESS, ADVANCED = "essentials", "access", "advanced"
GROUPS = (ESSENTIALS, ACCESS, ADVANCED)
ACCESS_TITLE = "Access: who may talk to the assistant"
ADVANCED_TITLE = "Advanced settings"

_ACRONYMS = {
    "aes": "AES", "api": "API", "ca": "CA", "cpu": "CPU", "dm": "DM", "dms": "DMs",
    "dns": "DNS", "html": "HTML", "http": "HTTP", "https": "HTTPS", "id": "ID", "ids": "IDs",
    "imap": "IMAP", "ip": "IP", "irc": "IRC", "jid": "JID", "json": "JSON", "llm": "LLM",
    "mcp": "MCP", "mqtt": "MQTT", "oapi": "OAPI", "oauth": "OAuth", "openai": "OpenAI",
    "openid": "OpenID", "pem": "PEM", "qq": "QQ", "sasl": "SASL", "sdk": "SDK", "sid": "SID",
    "sms": "SMS", "smtp": "SMTP", "ssl": "SSL", "starttls": "STARTTLS", "tcp": "TCP",
    "tls": "TLS", "ttl": "TTL", "uri": "URI", "url": "URL", "urls": "URLs", "utc": "UTC",
    "uuid": "UUID", "ws": "WS", "xmpp": "XMPP",
}


def readable_label(name: str) -> str:
    """A label for a field or option that its model gave no title: "base_url" -> "Base URL".

    Words split on ``_``, ``-``, spaces and camelCase; sentence case; acronyms
    (URL, API, LLM, ID, TLS, HTTP...) kept as people write them.
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = [w for w in re.split(r"[\s_\-]+", spaced) if w]
    out: list[str] = []
    for i, word in enumerate(words):
        lower = word.lower()
        if lower in _ACRONYMS:
            out.append(_ACRONYMS[lower])
        elif i == 0:
            out.append(lower[:1].upper() + lower[1:])
        else:
            out.append(lower)
    return " ".join(out)


def _pydantic_title(name: str) -> str:
    """The title pydantic invents for a field without one (``GenerateJsonSchema``'s rule)."""
    return name.title().replace("_", " ").strip()


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One config field as the form needs it: what input, what label, what help, where."""

    name: str
    title: str
    kind: str
    help: str = ""
    default: Any = None
    choices: tuple[Any, ...] = ()
    required: bool = False
    nullable: bool = False
    options: tuple[str, ...] = ()
    """The label of each of ``choices``, in the same order."""
    shown_when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """(field, allowed values) pairs that must all hold for this field to apply."""
    group: str = ESSENTIALS

    def option_label(self, value: Any) -> str:
        for choice, label in zip(self.choices, self.options, strict=False):
            if choice == value:
                return label
        return _choice_label(value)

    def applies(self, values: Mapping[str, Any]) -> bool:
        """True when the fields this one depends on have one of the values it needs."""
        return all(values.get(name) in allowed for name, allowed in self.shown_when)


def _choice_label(value: Any) -> str:
    """The label of a choice its model gave none, in the page's language."""
    if value is None or value == "":
        return t("None")
    if isinstance(value, bool):
        return t("Yes") if value else t("No")
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_\- ]*", value):
        return t(readable_label(value))
    return str(value)


def _help_text(text: str) -> str:
    """A description in the page's language. One the plane extended with a sentence of its
    own ("... Channels: telegram, slack.") is read as the model's part, translated, and
    that sentence as it is: it names what the config holds."""
    translated = t(text)
    head, dot, tail = text.partition(". ")
    if translated != text or not dot or t(head) == head:
        return translated
    return t("{description}. {more}", description=t(head), more=tail)


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


def _shown_when(raw: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(raw, Mapping):
        return ()
    return tuple((str(name), tuple(allowed) if isinstance(allowed, list | tuple) else (allowed,))
                 for name, allowed in raw.items())


def _default_group(kind: str, default: Any, required: bool) -> str:
    """Secrets and required fields are essentials; so is a text field with nothing to fall
    back to (an app id, a server address): hiding it would leave the channel unusable."""
    if kind == SECRET or required or (kind == TEXT and default in (None, "")):
        return ESSENTIALS
    return ADVANCED


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
    title = str(prop.get("title") or "")
    if not title or title == _pydantic_title(name):
        title = readable_label(name)
    # the models speak English; each text is put in the page's language here, when a form
    # is built (assets/locale/*/config.json), never at import. Help gets no values: it is
    # shown as written, "{channel}" and all.
    labels = prop.get("options") if isinstance(prop.get("options"), Mapping) else {}
    required = required or bool(prop.get("required_secret"))
    default = prop.get("default")
    group = prop.get("group")
    return FieldSpec(
        name=name,
        title=t(title),
        kind=kind,
        help=_help_text(str(prop.get("description") or "")),
        default=default,
        choices=choices,
        required=required,
        nullable=nullable,
        options=tuple(t(str(labels[str(c)])) if labels.get(str(c)) else _choice_label(c)
                      for c in choices),
        shown_when=_shown_when(prop.get("shown_when")),
        group=group if group in GROUPS else _default_group(kind, default, required),
    )


def parse_schema(schema: Mapping[str, Any]) -> list[FieldSpec]:
    """The fields of an object schema, in form order.

    Group by group (essentials, access, advanced); in each, the model's order with
    switches last, and a field others depend on (``mode``) before them.
    """
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    specs = [_field_spec(name, prop, defs, name in required)
             for name, prop in schema.get("properties", {}).items()]
    position = {s.name: float(i) for i, s in enumerate(specs)}
    by_name = {s.name: s for s in specs}
    for spec in specs:
        for controller, _ in spec.shown_when:
            ruling = by_name.get(controller)
            if ruling is not None and ruling.group == spec.group:
                position[controller] = min(position[controller], position[spec.name] - 0.5)
    return sorted(specs, key=lambda s: (GROUPS.index(s.group), s.kind == BOOLEAN,
                                        position[s.name]))


def labelled(control: ft.Control, label: str, *, expand: bool = False) -> ft.Control:
    """Give a control a name in the semantics tree (Flutter's dropdowns have none of their own).

    Screen readers and the browser tests find a dropdown by this label, like a text field.
    Hide the wrapper (or what holds it), never ``control`` itself: a Semantics whose
    content is invisible is drawn as Flet's red error box.
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


def _help(text: str) -> ft.Text:
    return ft.Text(text, size=12, color=ft.Colors.ON_SURFACE_VARIANT, visible=bool(text))


class FormField:
    """One labelled input for a FieldSpec; knows how to read its value and show an error."""

    def __init__(self, spec: FieldSpec, value: Any = None, *, secret_saved: bool = False,
                 on_blur: Callable[[FormField], Any] | None = None,
                 on_change: Callable[[FormField], Any] | None = None) -> None:
        self.spec = spec
        self.secret_saved = secret_saved
        self._on_blur = on_blur
        self._on_change = on_change
        self.error_text = ft.Text(color=ft.Colors.ERROR, size=12, visible=False)
        self.saved_note: ft.Control | None = None
        self.input: ft.TextField | ft.Dropdown | ft.Switch
        label = spec.title + (" *" if spec.required else "")
        if spec.kind == BOOLEAN:
            self.input = ft.Switch(label=spec.title, value=bool(value), on_change=self._changed,
                                   tooltip=spec.help or None)
            self.root: ft.Control = ft.Column([self.input, _help(spec.help), self.error_text],
                                              spacing=2)
        elif spec.kind == CHOICE:
            self.input = ft.Dropdown(
                label=label,
                value=None if value is None else str(value),
                options=[ft.DropdownOption(key=str(c), text=text)
                         for c, text in zip(spec.choices, spec.options, strict=False)],
                on_select=self._changed,
                on_blur=self._blurred,
                expand=True,
            )
            # the help below the menu, whole: a dropdown's own helper is one line
            self.root = ft.Column([ft.Row([labelled(self.input, spec.title, expand=True)]),
                                   _help(spec.help)], spacing=4)
        else:
            secret = spec.kind == SECRET
            saved = secret and secret_saved
            self.input = ft.TextField(
                label=label,
                value="" if secret else _display(spec, value),
                password=secret,
                can_reveal_password=secret,
                hint_text=(t(SAVED_SECRET_HINT) if saved
                           else t("comma-separated") if spec.kind == LIST else None),
                helper=spec.help or None,
                helper_max_lines=HELP_LINES,
                keyboard_type=(ft.KeyboardType.NUMBER if spec.kind in (INTEGER, NUMBER)
                               else ft.KeyboardType.TEXT),
                prefix_icon=(ft.Icons.LOCK_OUTLINE if saved else ft.Icons.KEY if secret
                             else None),
                on_blur=self._blurred,
                on_submit=self._blurred,
            )
            self.root = self.input
            if saved:
                # a hint shows only in a focused, empty field: say it where it is always seen
                self.saved_note = ft.Row(
                    spacing=6, vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                        ft.Icon(ft.Icons.CHECK_CIRCLE_OUTLINE, size=16,
                                color=ft.Colors.GREEN_700),
                        ft.Text(t(SAVED_SECRET_NOTE), size=12, color=ft.Colors.GREEN_700,
                                expand=True)])
                self.root = ft.Column([self.input, self.saved_note], spacing=4)

    def _changed(self, e: ft.Event[ft.Control]) -> Any:
        if self._on_change is not None:
            self._on_change(self)
        return self._blurred(e)

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


def _wide(spec: FieldSpec) -> bool:
    return spec.kind == CHOICE and max(map(len, spec.options), default=0) > WIDE_OPTION


def _differs(spec: FieldSpec, value: Any) -> bool:
    """A stored value the user set away from the default (so its section opens)."""
    if value is None or spec.kind == SECRET:
        return False
    empty = (None, "", [], {})
    return value != spec.default and not (value in empty and spec.default in empty)


class SchemaForm:
    """All fields of a schema; ``values()`` feeds validate/probe/save, errors go back inline.

    ``grouped``: essentials, then access under a heading, then the advanced fields in a
    collapsed tile; without it one flat grid, for a view that arranges parts itself.
    """

    def __init__(self, schema: Mapping[str, Any], values: Mapping[str, Any] | None = None,
                 secrets_set: Iterable[str] = (), *,
                 on_blur: Callable[[FormField], Any] | None = None,
                 grouped: bool = True) -> None:
        given = dict(values or {})
        saved = set(secrets_set)
        self.specs = parse_schema(schema)
        self.fields: dict[str, FormField] = {
            spec.name: FormField(spec, given.get(spec.name, spec.default),
                                 secret_saved=spec.name in saved, on_blur=on_blur,
                                 on_change=self._changed)
            for spec in self.specs
        }
        # two columns on wide windows, one on phones: long forms stay readable either way
        self.cells: dict[str, ft.Container] = {
            name: ft.Container(f.root, col=12 if _wide(f.spec) else {"xs": 12, "md": 6})
            for name, f in self.fields.items()}
        self.sections: dict[str, ft.ResponsiveRow] = {}
        self.advanced: ft.ExpansionTile | None = None
        self.access_heading: ft.Control | None = None
        if not grouped:
            self.sections[ESSENTIALS] = self._grid(list(self.fields))
            self.root = ft.Column([self.sections[ESSENTIALS]], spacing=16)
        else:
            self.root = self._grouped(given)
        self.update_visibility()

    @staticmethod
    def _row() -> ft.ResponsiveRow:
        return ft.ResponsiveRow(spacing=16, run_spacing=16)

    def _grid(self, names: Sequence[str]) -> ft.ResponsiveRow:
        row = self._row()
        row.controls = [self.cells[n] for n in names]
        return row

    def _grouped(self, given: Mapping[str, Any]) -> ft.Column:
        names = {g: [s.name for s in self.specs if s.group == g] for g in GROUPS}
        parts: list[ft.Control] = []
        self.sections = {g: self._grid(names[g]) for g in GROUPS}
        parts.append(self.sections[ESSENTIALS])
        if names[ACCESS]:
            self.access_heading = ft.Text(t(ACCESS_TITLE),
                                          theme_style=ft.TextThemeStyle.TITLE_SMALL,
                                          weight=ft.FontWeight.W_600)
            parts += [self.access_heading, self.sections[ACCESS]]
        if names[ADVANCED]:
            titles = [self.fields[n].spec.title for n in names[ADVANCED]]
            self.advanced = ft.ExpansionTile(
                title=ft.Text(t(ADVANCED_TITLE)),
                subtitle=ft.Text(", ".join(titles[:4]) + (", …" if len(titles) > 4 else ""),
                                 size=12, color=ft.Colors.ON_SURFACE_VARIANT),
                expanded=any(_differs(self.fields[n].spec, given.get(n))
                             for n in names[ADVANCED] if n in given),
                tile_padding=ft.Padding.symmetric(horizontal=4),
                controls_padding=ft.Padding.only(top=8, bottom=8),
                controls=[self.sections[ADVANCED]])
            parts.append(self.advanced)
        return ft.Column(parts, spacing=16, horizontal_alignment=ft.CrossAxisAlignment.STRETCH)

    def __getitem__(self, name: str) -> FormField:
        return self.fields[name]

    # -- layout helpers for views that add their own controls ---------------------------------

    def widen(self, name: str) -> None:
        """Give a field the full width (a long text)."""
        self.cells[name].col = 12

    def insert_after(self, name: str, control: ft.Control) -> ft.Container:
        """Put an extra control (a model picker, say) on its own line after a field."""
        cell = ft.Container(control, col=12)
        for row in self.sections.values():
            if self.cells[name] in row.controls:
                row.controls.insert(row.controls.index(self.cells[name]) + 1, cell)
        return cell

    # -- visibility -----------------------------------------------------------------------------

    def current(self) -> dict[str, Any]:
        """Every field's value as the inputs hold it now (blank ones as None)."""
        return {name: field.value() for name, field in self.fields.items()}

    def shown(self, name: str) -> bool:
        return bool(self.cells[name].visible)

    def update_visibility(self) -> None:
        """Hide the fields that do not apply to what the form says now (polling: no webhook)."""
        now = self.current()
        for name, field in self.fields.items():
            self.cells[name].visible = field.spec.applies(now)
        if self.access_heading is not None:
            self.access_heading.visible = any(
                self.shown(s.name) for s in self.specs if s.group == ACCESS)

    def _changed(self, field: FormField) -> None:
        if any(name == field.spec.name for s in self.specs for name, _ in s.shown_when):
            self.update_visibility()

    # -- values and errors ----------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """Every given value by field name; blank inputs are left out.

        Hidden fields keep what they hold (switching the mode back loses nothing);
        the gateway ignores what the mode does not use.
        """
        return {name: value for name, value in self.current().items() if value is not None}

    def show_errors(self, errors: Sequence[FieldError], only: Iterable[str] | None = None
                    ) -> list[str]:
        """Put each error under its field (limited to ``only`` if given); returns the rest.

        The rest are errors for the form as a whole, for fields the form does not
        have (the channel name, say) and for hidden fields, for the caller to show.
        An error in the advanced section opens it.
        """
        shown = None if only is None else set(only)
        by_field: dict[str, list[str]] = {}
        rest: list[str] = []
        for error in errors:
            if error.field in self.fields and self.shown(error.field):
                by_field.setdefault(error.field, []).append(error.message)
            elif error.field in self.fields:
                rest.append(f"{self.fields[error.field].spec.title}: {error.message}")
            else:
                rest.append(f"{error.field}: {error.message}" if error.field else error.message)
        for name, field in self.fields.items():
            if shown is None or name in shown:
                field.set_error("; ".join(by_field.get(name, [])) or None)
        if self.advanced is not None and any(
                self.fields[n].error for n in by_field if self.fields[n].spec.group == ADVANCED):
            self.advanced.expanded = True
        return rest
