"""Secrets live in the OS keyring, or a 0600 file where there is no keyring.

Every secret that is read is also registered with the :class:`Redactor`, so a
token that an SDK prints in an exception never reaches a log line, the channel
log table or the UI in clear.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Protocol

from pyclaw_app.paths import private_dir

__all__ = ["FileSecretStore", "KeyringSecretStore", "RedactingFilter", "Redactor", "SecretStore",
           "open_secret_store", "redactor"]

_log = logging.getLogger(__name__)
SERVICE = "pyclaw"


class SecretStore(Protocol):
    backend: str

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str) -> None: ...
    def delete(self, key: str) -> None: ...


class FileSecretStore:
    """JSON file readable only by its owner; used where no keyring backend exists."""

    backend = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def get(self, key: str) -> str | None:
        value = self._read().get(key)
        if value:
            redactor.add(value)
        return value

    def set(self, key: str, value: str) -> None:
        with self._lock:
            data = self._read()
            data[key] = value
            self._write(data)
        redactor.add(value)

    def delete(self, key: str) -> None:
        with self._lock:
            data = self._read()
            if data.pop(key, None) is not None:
                self._write(data)

    def _write(self, data: dict[str, str]) -> None:
        private_dir(self.path.parent)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)
        os.chmod(self.path, 0o600)


class KeyringSecretStore:
    backend = "keyring"

    def __init__(self) -> None:
        import keyring

        self._keyring = keyring

    def get(self, key: str) -> str | None:
        value = self._keyring.get_password(SERVICE, key)
        if value:
            redactor.add(value)
        return value

    def set(self, key: str, value: str) -> None:
        self._keyring.set_password(SERVICE, key, value)
        redactor.add(value)

    def delete(self, key: str) -> None:
        import keyring.errors

        try:
            self._keyring.delete_password(SERVICE, key)
        except keyring.errors.PasswordDeleteError:
            pass


def open_secret_store(data_dir: Path, *, prefer_keyring: bool = True) -> SecretStore:
    """The OS keyring when a real backend exists, else ``secrets.json`` (0600) in the data dir."""
    if prefer_keyring and os.environ.get("PYCLAW_SECRETS") != "file":
        try:
            import keyring
            from keyring.backends import fail

            backend = keyring.get_keyring()
            if not isinstance(backend, fail.Keyring) and backend.priority > 0:
                return KeyringSecretStore()
        except Exception as exc:  # noqa: BLE001 - any keyring failure means "use the file"
            _log.info("no usable keyring (%s); secrets go to a 0600 file", exc)
    return FileSecretStore(data_dir / "secrets.json")


# Token shapes worth hiding even when we never stored them ourselves.
_PATTERNS = [
    re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"),  # Telegram bot token
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}\b"),  # Slack bot/user tokens
    re.compile(r"\bxapp-[A-Za-z0-9-]{8,}\b"),  # Slack app-level token
    re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16,}\b"),  # OpenAI / Anthropic keys
    re.compile(r"\b[MNO][A-Za-z\d_-]{23,25}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,}\b"),  # Discord
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
]
MASK = "***"


class Redactor:
    """Replaces known secrets and token-shaped strings with ``***``."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._regex: re.Pattern[str] | None = None

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < 4:
            return
        with self._lock:
            if secret not in self._known:
                self._known.add(secret)
                self._regex = re.compile("|".join(re.escape(s) for s in
                                                  sorted(self._known, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        """Every known secret and token shape is found in the original text and the union
        of their spans masked: replacing one after another let a known secret that is part
        of a token break the token's shape, so the token's rest went out in clear."""
        spans: list[tuple[int, int]] = []
        regex = self._regex
        if regex is not None:
            spans += [m.span() for m in regex.finditer(text)]
        for pattern in _PATTERNS:
            for m in pattern.finditer(text):
                start = m.end(1) if pattern.groups else m.start()
                spans.append((start, m.end()))
        if not spans:
            return text
        out: list[str] = []
        done = 0
        for start, end in sorted(spans):
            if end <= done:
                continue
            if start > done:
                out.append(text[done:start])
                out.append(MASK)
            elif not out:
                out.append(MASK)
            done = max(done, end)
        out.append(text[done:])
        return "".join(out)


redactor = Redactor()


class RedactingFilter(logging.Filter):
    """Attach to every handler: formats the record once, then redacts the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redactor(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.msg, record.args = cleaned, None
        return True
