"""What each turn runs with: the prompt, chain, temperature and tools of its profile.

``pyclaw_app.profiles`` says which profile a message gets and what it inherits; this
module turns that into the agent's own objects, once per agent (chains are built by
the agent, which owns the providers): a :class:`TurnProfile` per profile and channel,
asked for at the start of every turn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyclaw_app.agent.failover import Failover
from pyclaw_app.agent.tools.registry import Tool, ToolRegistry
from pyclaw_app.config import AgentConfig
from pyclaw_app.model import Inbound
from pyclaw_app.profiles import (
    ProfileConfig,
    ProfileMatcher,
    effective,
    language_note,
    mcp_allows,
    mcp_servers_of,
)

__all__ = ["ProfileBook", "TurnProfile", "select_tools"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TurnProfile:
    """One turn's settings after inheritance."""

    name: str | None
    """The profile's name; None: the assistant's own settings."""
    system_prompt: str
    """The template; :attr:`language_note` goes after it once it is rendered."""
    language_note: str
    temperature: float | None
    failover: Failover
    tools: ToolRegistry
    """The built-in tools allowed."""
    mcp: tuple[str, ...] | None
    """MCP servers or ``server__tool`` names allowed; None: all."""

    def mcp_tools(self, tools: Sequence[Tool]) -> list[Tool]:
        return [tool for tool in tools if mcp_allows(self.mcp, tool.name)]

    @property
    def mcp_servers(self) -> set[str] | None:
        return mcp_servers_of(self.mcp)


def select_tools(available: ToolRegistry, names: Sequence[str] | None, where: str
                 ) -> ToolRegistry:
    """``names`` of ``available`` (all when None); unknown ones are logged and left out."""
    if names is None:
        return available.select(None)
    unknown = sorted(set(names) - set(available.names()))
    if unknown:
        _log.error("%s: unknown tools %s ignored; known: %s", where, unknown,
                   available.names())
    return available.select([n for n in names if n not in unknown])


class ProfileBook:
    """The profiles of one agent, ready for its turns."""

    def __init__(self, agent: AgentConfig, profiles: Mapping[str, ProfileConfig],
                 default: Failover, chains: Mapping[str, Failover], *,
                 tools: ToolRegistry, available: ToolRegistry) -> None:
        """``default`` and ``tools`` are the assistant's own chain and tools; ``chains``
        the profiles that have a chain of their own; ``available`` every built-in tool a
        profile may pick from."""
        self.agent = agent
        self.profiles = dict(profiles)
        self.default = default
        self.chains = dict(chains)
        self.matcher = ProfileMatcher(self.profiles)
        self._tools = {name: select_tools(available, p.tools, f"profiles.{name}.tools")
                       for name, p in self.profiles.items() if p.tools is not None}
        self._default_tools = tools
        self._made: dict[tuple[str | None, str], TurnProfile] = {}

    def for_inbound(self, inbound: Inbound) -> TurnProfile:
        channel = inbound.address.channel
        name = self.matcher.resolve(channel, inbound.address.chat)
        key = (name, channel)  # the channel matters: agent.system_prompts is per channel
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._make(name, channel)
        return made

    def _make(self, name: str | None, channel: str) -> TurnProfile:
        settings = effective(self.agent, name, self.profiles.get(name or ""), channel)
        return TurnProfile(
            name=name, system_prompt=settings.system_prompt,
            language_note=language_note(settings.language),
            temperature=settings.temperature,
            failover=self.chains.get(name or "", self.default),
            tools=self._tools.get(name or "", self._default_tools),
            mcp=settings.mcp)

    def failovers(self) -> list[Failover]:
        """Every chain a turn may use (to close their providers)."""
        return [self.default, *self.chains.values()]
