"""Profiles: the assistant's settings for one channel, or one chat of it.

A profile names what a channel or chat gets instead of the ``agent:`` section's
settings: system prompt, language, provider chain (provider, model, fallbacks),
temperature, built-in tools and MCP servers or tools. Every field is optional; an
unset one is inherited from ``agent:``. Which profile a message gets is written in the
profile itself (``match``), so the YAML section and the Settings form are one place:

    profiles:
      support:
        match: [telegram, "slack:C0123"]   # a channel, or channel:chat
        system_prompt: You are the support desk of ACME.
        temperature: 0.2
        tools: [clock]
      family:
        match: ["telegram:-1001234"]       # this group gets its own, over telegram's
        language: German

A chat's own profile wins over its channel's; two profiles may not claim the same
channel or chat (a config error, the first keeps it). The older
``agent.system_prompts: {channel: prompt}`` stays a shorthand: it is that channel's
system prompt unless the message's profile sets one.

Kept beside ``config.py`` (which loads it) and free of the agent: this module is the
model, the resolution and the checks, all pure; ``pyclaw_app.agent.profiled`` builds
the chains and tool sets a turn runs with.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from pyclaw_app.config import AgentConfig

__all__ = ["MCP_SEPARATOR", "PROFILE_NAME", "Effective", "FallbackConfig", "Problem",
           "ProfileConfig", "ProfileMatcher", "check_profiles", "effective", "language_note",
           "mcp_allows", "mcp_servers_of", "parse_target", "resolve_profile"]

PROFILE_NAME = r"^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$"
"""Letters, digits and single ``-``/``_`` between them, like channel and server names."""
MCP_SEPARATOR = "__"
"""Between an MCP server's name and its tool's in the name the model sees."""
_ESSENTIAL = {"group": "essentials"}


class FallbackConfig(BaseModel):
    """One more link of the failover chain, tried when the ones before it fail."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(..., min_length=1, description="A configured provider's name")
    model: str | None = Field(None, description="The provider's own model when unset")


def parse_target(target: str) -> tuple[str, str | None]:
    """``"telegram"`` -> ("telegram", None); ``"telegram:-100123"`` -> ("telegram",
    "-100123"). Only the first colon splits: chat ids may hold colons (Matrix rooms)."""
    channel, sep, chat = target.partition(":")
    return channel, (chat if sep else None)


class ProfileConfig(BaseModel):
    """What one channel or chat gets instead of the assistant's settings; blank fields are
    inherited from them."""

    model_config = ConfigDict(extra="forbid")

    match: list[str] = Field(
        default_factory=list, title="Used on", json_schema_extra=_ESSENTIAL,
        description="Channels (telegram) or single chats (telegram:-1001234, the chat id "
        "as Logs shows it) that get this profile; a chat's own profile wins over its "
        "channel's")
    system_prompt: str | None = Field(
        None, title="System prompt", json_schema_extra=_ESSENTIAL,
        description="Replaces the assistant's system prompt here. Variables: {channel}, "
        "{user}, {date}, {time}; blank: the assistant's")
    language: str | None = Field(
        None, title="Answer in", json_schema_extra=_ESSENTIAL,
        description="The language the assistant answers in here (German, 日本語...), whatever "
        "the user writes in; blank: the assistant's setting")
    provider: str | None = Field(
        None, title="Provider", json_schema_extra=_ESSENTIAL,
        description="The provider that answers here first; blank: the assistant's default")
    model: str | None = Field(
        None, title="Model", json_schema_extra=_ESSENTIAL,
        description="A model of that provider; blank: the provider's own")
    temperature: float | None = Field(
        None, ge=0, le=2, title="Temperature", json_schema_extra=_ESSENTIAL,
        description="0 to 2: lower is steadier, higher more varied (OpenAI-compatible "
        "providers; Anthropic's API takes none, so it is not sent there); blank: the "
        "assistant's setting")
    fallbacks: list[FallbackConfig] | None = Field(
        None, title="Fallback chain",
        description='Tried in order when the provider fails, e.g. [{"provider": "local"}]; '
        "blank: the assistant's chain, [] for none")
    tools: list[str] | None = Field(
        None, title="Built-in tools",
        description="The built-in tools the assistant may use here (current_time, calculate, "
        "save_note...); blank: the assistant's")
    mcp: list[str] | None = Field(
        None, title="MCP servers and tools",
        description="MCP servers (files) or single tools (files__read_file) allowed here, "
        "within what each server allows its channels; blank: all of them")

    @field_validator("match", mode="before")
    @classmethod
    def _one_target(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value  # `match: telegram` reads well

    @field_validator("match")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        cleaned = [t.strip() for t in value]
        for target in cleaned:
            channel, chat = parse_target(target)
            if not channel or chat == "":
                raise ValueError(f"{target!r}: write a channel name, or channel:chat")
        twice = sorted({t for t in cleaned if cleaned.count(t) > 1})
        if twice:
            raise ValueError(f"listed twice: {', '.join(twice)}")
        return cleaned

    @field_validator("system_prompt", "language", "provider", "model")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None

    @property
    def own_chain(self) -> bool:
        """True when this profile answers through another chain than the assistant's."""
        return (self.provider, self.model, self.fallbacks) != (None, None, None)


class ProfileMatcher:
    """Which profile each channel and chat gets: the first profile that names it."""

    def __init__(self, profiles: Mapping[str, ProfileConfig]) -> None:
        self._owner: dict[tuple[str, str | None], str] = {}
        self.clashes: list[Problem] = []
        """Entries another profile named first (config errors)."""
        for name, profile in profiles.items():
            for index, target in enumerate(profile.match):
                key = parse_target(target)
                if key in self._owner:
                    self.clashes.append(Problem(
                        ("profiles", name, "match", index),
                        f"{target} is already used by profile {self._owner[key]!r}; not here",
                        True))
                    continue
                self._owner[key] = name

    def resolve(self, channel: str, chat: str | None) -> str | None:
        """The profile of a message on ``channel`` in ``chat``, or None for the assistant's
        own settings: the chat's profile, else the channel's."""
        if chat is not None and (channel, chat) in self._owner:
            return self._owner[(channel, chat)]
        return self._owner.get((channel, None))


def resolve_profile(profiles: Mapping[str, ProfileConfig], channel: str,
                    chat: str | None) -> str | None:
    """:meth:`ProfileMatcher.resolve` for a one-off question."""
    return ProfileMatcher(profiles).resolve(channel, chat)


@dataclass(frozen=True, slots=True)
class Effective:
    """The settings one turn runs with, after inheritance."""

    profile: str | None
    """The profile's name; None: the assistant's own settings."""
    system_prompt: str
    """The template (variables not yet filled in)."""
    language: str | None
    temperature: float | None
    provider: str | None
    model: str | None
    fallbacks: tuple[FallbackConfig, ...]
    tools: tuple[str, ...] | None
    """Built-in tool names; None: every one."""
    mcp: tuple[str, ...] | None
    """MCP servers or ``server__tool`` names; None: every one the channel may use."""


def effective(agent: AgentConfig, name: str | None, profile: ProfileConfig | None,
              channel: str) -> Effective:
    """``profile`` over ``agent`` (its ``system_prompts`` shorthand over its prompt)."""
    p = profile or ProfileConfig()
    prompt = p.system_prompt or agent.system_prompts.get(channel) or agent.system_prompt
    tools = p.tools if p.tools is not None else agent.tools
    return Effective(
        profile=name if profile is not None else None,
        system_prompt=prompt,
        language=p.language or agent.language,
        temperature=p.temperature if p.temperature is not None else agent.temperature,
        provider=p.provider or agent.provider,
        model=p.model,
        fallbacks=tuple(p.fallbacks if p.fallbacks is not None else agent.fallbacks),
        tools=tuple(tools) if tools is not None else None,
        mcp=tuple(p.mcp) if p.mcp is not None else None)


def language_note(language: str | None) -> str:
    """The line the system prompt ends with when a language is set."""
    if not language:
        return ""
    return (f"\n\nAlways answer in {language}, whatever language the user writes in, unless "
            "they ask you to translate.")


def mcp_allows(allowed: Sequence[str] | None, exposed: str) -> bool:
    """True when an MCP tool (by the name the model sees) is allowed by ``allowed``."""
    if allowed is None:
        return True
    return exposed in allowed or exposed.split(MCP_SEPARATOR, 1)[0] in allowed


def mcp_servers_of(allowed: Sequence[str] | None) -> set[str] | None:
    """The MCP servers ``allowed`` lets in, wholly or for one tool (None: all)."""
    if allowed is None:
        return None
    return {entry.split(MCP_SEPARATOR, 1)[0] for entry in allowed}


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem with the ``profiles`` section; ``loc`` is its path in the YAML."""

    loc: tuple[str | int, ...]
    message: str
    error: bool
    """True: the entry is not used as written; False: a warning, it is used anyway."""


def check_profiles(profiles: Mapping[str, ProfileConfig], *, channels: Collection[str],
                   providers: Collection[str], mcp_servers: Collection[str]) -> list[Problem]:
    """What does not add up between the profiles and the rest of the config."""
    problems = list(ProfileMatcher(profiles).clashes)
    for name, profile in profiles.items():
        at = ("profiles", name)
        for index, target in enumerate(profile.match):
            channel, _ = parse_target(target)
            if channel not in channels:
                problems.append(Problem((*at, "match", index),
                                        f"no channel is called {channel!r}: this entry "
                                        "applies to nothing", False))
        if profile.provider is not None and profile.provider not in providers:
            problems.append(Problem((*at, "provider"),
                                    f"no provider is called {profile.provider!r}: this "
                                    "profile answers through the assistant's chain", True))
        for index, step in enumerate(profile.fallbacks or ()):
            if step.provider not in providers:
                problems.append(Problem((*at, "fallbacks", index, "provider"),
                                        f"no provider is called {step.provider!r}; this "
                                        "fallback is skipped", True))
        for index, entry in enumerate(profile.mcp or ()):
            server = entry.split(MCP_SEPARATOR, 1)[0]
            if server not in mcp_servers:
                problems.append(Problem((*at, "mcp", index),
                                        f"no MCP server is called {server!r}", False))
    return problems
