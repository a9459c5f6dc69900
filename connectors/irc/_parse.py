"""IRC lines, as pure functions that never raise: reusable by any IRC-based channel.

``parse_line`` reads one line of the wire (IRCv3 message tags, the source prefix, the
command and its parameters; RFC 1459/2812 plus ``message-tags.md``) and ``format_line``
writes one. Text helpers read what people type (formatting codes, CTCP ``ACTION`` and
``DCC SEND``, ``nick:`` mentions) and cut a reply part into the lines it is sent as. Twitch
chat is IRC with Twitch's tags: it can use this module unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyclaw_app.channels.mentions import addressed_text

__all__ = [
    "CtcpMessage",
    "Line",
    "Source",
    "casefold",
    "escape_tag",
    "format_line",
    "media_kind",
    "media_url",
    "message_lines",
    "parse_ctcp",
    "parse_line",
    "parse_source",
    "split_mention",
    "strip_formatting",
    "unescape_tag",
]

_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_ESCAPES = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
_FORMATTING = re.compile(
    r"\x03(?:\d{1,2}(?:,\d{1,2})?)?"  # mIRC colour, optional fg[,bg]
    r"|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"  # hex colour
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]")  # bold reset mono reverse italic strike underline
_UNSAFE = re.compile(r"[\x00\r\n]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_MEDIA = {
    "image": ("jpg", "jpeg", "png", "gif", "webp", "bmp", "heic", "avif", "svg"),
    "audio": ("mp3", "ogg", "oga", "opus", "m4a", "wav", "flac", "aac"),
    "video": ("mp4", "webm", "mov", "mkv", "avi", "m4v"),
}
_MEDIA_URL = re.compile(r"https?://\S+/[^/\s?#]+\.([A-Za-z0-9]{2,5})(?:[?#]\S*)?")


@dataclass(frozen=True, slots=True)
class Source:
    """``nick!user@host`` (or a server name, which has no ``!``)."""

    nick: str
    user: str = ""
    host: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    """One IRC message: tags (unescaped), source, command (upper-cased) and parameters."""

    command: str
    params: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    source: Source | None = None

    def param(self, i: int) -> str:
        """Parameter ``i``, or "" when the line has fewer: callers need no length checks."""
        return self.params[i] if -len(self.params) <= i < len(self.params) else ""


def unescape_tag(value: str) -> str:
    """A tag value as message-tags.md unescapes it (``\\:`` -> ``;``, a lone trailing ``\\``
    dropped, an unknown escape taken as the character itself)."""
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        out.append(_TAG_UNESCAPES.get(nxt, nxt))
    return "".join(out)


def escape_tag(value: str) -> str:
    return "".join(_TAG_ESCAPES.get(ch, ch) for ch in value)


def parse_source(prefix: str) -> Source:
    nick, _, rest = prefix.partition("!")
    user, _, host = rest.partition("@")
    if not rest and "@" in nick:  # nick@host without a user
        nick, _, host = nick.partition("@")
    return Source(nick=nick, user=user, host=host)


def parse_line(raw: str) -> Line | None:
    """One line without its CR LF; ``None`` for a line with no command (blank, or only tags
    and a source)."""
    rest = raw.rstrip("\r\n").lstrip(" ")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        tag_part, _, rest = rest[1:].partition(" ")
        for item in tag_part.split(";"):
            if not item:
                continue
            key, _, value = item.partition("=")
            tags[key] = unescape_tag(value)
        rest = rest.lstrip(" ")
    source = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
        source = parse_source(prefix)
        rest = rest.lstrip(" ")
    params: list[str] = []
    while rest:
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        word, _, rest = rest.partition(" ")
        params.append(word)
        rest = rest.lstrip(" ")
    if not params or not params[0]:
        return None
    return Line(command=params[0].upper(), params=tuple(params[1:]), tags=tags, source=source)


def format_line(command: str, *params: str, tags: dict[str, str] | None = None) -> str:
    """One line to send, without CR LF. The last parameter is always written as the trailing
    one (``:``-prefixed) when it could need it; NUL, CR and LF are dropped from every part, so
    no text can smuggle a second command onto the wire."""
    words = [_UNSAFE.sub("", command)]
    cleaned = [_UNSAFE.sub("", p) for p in params]
    for i, param in enumerate(cleaned):
        last = i == len(cleaned) - 1
        if last and (not param or " " in param or param.startswith(":")):
            words.append(f":{param}")
        else:
            words.append(param.replace(" ", ""))
    line = " ".join(words)
    if tags:
        encoded = ";".join(f"{_UNSAFE.sub('', k)}={escape_tag(v)}" if v else _UNSAFE.sub("", k)
                           for k, v in tags.items())
        line = f"@{encoded} {line}"
    return line


def strip_formatting(text: str) -> str:
    """Text without mIRC/IRCv3 formatting codes (bold, colours, italics...), as a reader sees
    it without the styling."""
    return _FORMATTING.sub("", text)


@dataclass(frozen=True, slots=True)
class CtcpMessage:
    command: str
    argument: str


def parse_ctcp(text: str) -> CtcpMessage | None:
    """``\\x01COMMAND args\\x01`` (the closing ``\\x01`` is optional in practice)."""
    if not text.startswith("\x01"):
        return None
    body = text[1:]
    if body.endswith("\x01"):
        body = body[:-1]
    command, _, argument = body.partition(" ")
    if not command:
        return None
    return CtcpMessage(command.upper(), argument)


_RFC1459_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


_UNFOLD = {"{": "[", "}": "]", "|": "\\", "^": "~", "[": "{", "]": "}", "\\": "|", "~": "^"}
"""RFC 1459's other spelling of each of its four special characters."""


def casefold(name: str, casemapping: str = "rfc1459") -> str:
    """A nick or channel name in the server's CASEMAPPING, so ``#Foo`` and ``#foo`` are one."""
    return name.translate(_ASCII_FOLD if casemapping == "ascii" else _RFC1459_FOLD)


def split_mention(text: str, nick: str, casemapping: str = "rfc1459") -> tuple[bool, str]:
    """(addressed, text): ``nick: hi`` / ``nick, hi`` is addressed, the IRC way, and the
    address is cut (the kit's rule, ``pyclaw_app.channels.mentions``; a bare ``nick:`` reads
    as the call it is); the nick as a word elsewhere is addressed with the text kept whole."""
    if not nick:
        return False, text
    address = re.compile(rf"{nick_pattern(nick, casemapping)}(?=[:,])")
    rest = addressed_text(text, address, bot_name=nick)
    if rest != text:
        return True, rest
    folded = casefold(nick, casemapping)
    pattern = rf"(?<![\w\[\]\\`^{{}}|-]){re.escape(folded)}(?![\w\[\]\\`^{{}}|-])"
    return re.search(pattern, casefold(text, casemapping)) is not None, text


def nick_pattern(nick: str, casemapping: str = "rfc1459") -> str:
    """A regex matching ``nick`` in any case the server's CASEMAPPING calls the same nick."""
    def spellings(char: str) -> str:
        same = {c for c in (char, char.upper(), char.lower(), *_UNFOLD.get(char, ""))
                if casefold(c, casemapping) == casefold(char, casemapping)}
        return f"[{''.join(re.escape(c) for c in sorted(same))}]" if len(same) > 1 else (
            re.escape(char))

    return "".join(spellings(char) for char in nick)


def media_kind(filename: str) -> str:
    """The attachment kind a file name's extension suggests ("file" when none does)."""
    ext = filename.rpartition(".")[2].lower() if "." in filename else ""
    return next((kind for kind, exts in _MEDIA.items() if ext in exts), "file")


def media_url(text: str) -> tuple[str, str] | None:
    """(kind, url) when the whole text is one link to a media file: what IRC clients post
    after uploading an image to a file host (the IRC way of sending a picture)."""
    match = _MEDIA_URL.fullmatch(text.strip())
    if match is None:
        return None
    kind = media_kind(f"x.{match.group(1)}")
    return (kind, match.group(0)) if kind != "file" else None


def message_lines(text: str) -> list[str]:
    """The PRIVMSG lines one reply part is sent as: one per line of the text, blank lines
    left out (an empty PRIVMSG is refused, and a blank one costs a flood token for nothing),
    NUL dropped."""
    return [line for line in _LINE_BREAKS.split(text.replace("\x00", "")) if line.strip()]
