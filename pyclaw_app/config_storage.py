"""The ``storage`` section: SQLite in the data directory, or a PostgreSQL server.

SQLite is the embedded default and needs nothing. A ``postgresql://`` URL makes every
store live on that server instead, which several gateway instances can share. The
password is a secret like a bot token: the secret store's ``storage.password`` or the
``PYCLAW_STORAGE_PASSWORD`` variable, never the YAML (one written into the URL still
works, with the same warning as any secret in the file).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from pyclaw_app.secrets import redactor

__all__ = ["STORAGE_PASSWORD_ENV", "STORAGE_PASSWORD_KEY", "StorageConfig"]

STORAGE_PASSWORD_KEY = "storage.password"
STORAGE_PASSWORD_ENV = "PYCLAW_STORAGE_PASSWORD"
_SCHEMES = ("postgresql://", "postgres://")


class StorageConfig(BaseModel):
    """Where messages, logs, usage and settings are kept."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, title="Database URL",
        description="Blank: SQLite in the data directory (one gateway). "
        "postgresql://user@host:5432/dbname: a PostgreSQL server several gateways share; "
        f"its password goes in the secret store ({STORAGE_PASSWORD_KEY}) or "
        f"{STORAGE_PASSWORD_ENV}.")
    password: SecretStr | None = Field(None, exclude=True, json_schema_extra={"secret": True})
    """Filled from the secret store after validation; never read from or written to YAML."""
    standby: bool = Field(
        False, title="Stand by for another gateway",
        description="PostgreSQL only. When another gateway is already running on the "
        "database, wait as its hot standby (serving /healthz, not ready) and take over its "
        "channels and unfinished messages the moment it stops or dies, instead of refusing "
        "to start.")

    shared: bool = Field(
        False, title="Share the work with other gateways",
        description="PostgreSQL only. Every gateway on the database with this on is active: "
        "conversations spread over them (each conversation's replies stay in order), a "
        "channel that allows one connection (Telegram polling, Discord, IMAP...) is "
        "received by one of them at a time, and when one dies the others take over its "
        "channels and unfinished messages within seconds. Webhooks may reach any of them "
        "behind a load balancer.")

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        if not url.startswith(_SCHEMES):
            raise ValueError("must start with postgresql:// (leave it out for SQLite)")
        return url.strip()

    @model_validator(mode="after")
    def _standby_needs_a_server(self) -> StorageConfig:
        for name, on in (("standby", self.standby), ("shared", self.shared)):
            if on and self.url is None:
                raise ValueError(f"{name} needs a PostgreSQL url: two gateways never share "
                                 "one SQLite file")
        if self.standby and self.shared:
            raise ValueError("standby and shared exclude each other: a shared gateway is "
                             "active, and takes over a dead one's work without standing by")
        return self

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def password_in_url(self) -> str | None:
        """A password written into the URL (``user:secret@host``), so it can be redacted and
        warned about."""
        if self.url is None:
            return None
        from psycopg.conninfo import conninfo_to_dict

        try:
            password = conninfo_to_dict(self.url).get("password")
        except Exception:  # noqa: BLE001 - a malformed URL fails later, at connect, with words
            return None
        if password:
            redactor.add(str(password))
        return str(password) if password else None
