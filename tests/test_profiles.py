"""Profiles: which one a message gets, what it inherits, the config's errors about them, and
end to end through real channels: Telegram (the real connector against the fake Bot API),
a Telegram group with its own profile, and local chat, each seen by the LLM fakes with its
own system prompt, model, temperature and tools (Anthropic's current API takes no
temperature: it is left out there)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pyclaw_app.agent import Agent, build_chain
from pyclaw_app.agent.tools import Tool, ToolContext
from pyclaw_app.config import AgentConfig, Config, ProviderConfig, load_config, save_config
from pyclaw_app.control.chat import ask
from pyclaw_app.model import Address, ChannelState, Inbound
from pyclaw_app.profiles import (
    FallbackConfig,
    ProfileConfig,
    ProfileMatcher,
    effective,
    language_note,
    mcp_allows,
    mcp_servers_of,
    parse_target,
    resolve_profile,
)
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, StoreFactory, provider_section
from tests.contract.harness_telegram import GROUP_CHAT, TelegramHarness
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually

GROUP = str(GROUP_CHAT)
WAIT = 20.0


def profiles(**raw: dict[str, Any]) -> dict[str, ProfileConfig]:
    return {name: ProfileConfig.model_validate(body) for name, body in raw.items()}


# -- resolution and inheritance ---------------------------------------------------------------


def test_a_target_is_a_channel_or_a_chat_split_at_the_first_colon() -> None:
    assert parse_target("telegram") == ("telegram", None)
    assert parse_target("telegram:-100123") == ("telegram", "-100123")
    assert parse_target("matrix:!room:example.org") == ("matrix", "!room:example.org")


def test_a_chats_profile_wins_over_its_channels_and_others_get_none() -> None:
    book = profiles(support={"match": ["telegram", "slack:C1"]},
                    family={"match": [f"telegram:{GROUP}"]})
    assert resolve_profile(book, "telegram", "1001") == "support"
    assert resolve_profile(book, "telegram", GROUP) == "family"
    assert resolve_profile(book, "slack", "C1") == "support"
    assert resolve_profile(book, "slack", "C2") is None
    assert resolve_profile(book, "local", "app") is None
    assert resolve_profile({}, "telegram", "1") is None


def test_the_first_profile_keeps_a_claimed_chat_and_the_clash_is_named() -> None:
    matcher = ProfileMatcher(profiles(a={"match": ["telegram"]},
                                      b={"match": ["local", "telegram"]}))
    assert matcher.resolve("telegram", "1") == "a" and matcher.resolve("local", "x") == "b"
    (clash,) = matcher.clashes
    assert clash.loc == ("profiles", "b", "match", 1) and clash.error
    assert "already used by profile 'a'" in clash.message


def test_unset_fields_inherit_from_the_agent_section() -> None:
    agent = AgentConfig(system_prompt="Default.", system_prompts={"telegram": "On Telegram."},
                        provider="main", tools=["calculate"], temperature=0.7,
                        fallbacks=[FallbackConfig(provider="spare")])
    plain = effective(agent, None, None, "local")
    assert (plain.profile, plain.system_prompt, plain.temperature, plain.provider) == (
        None, "Default.", 0.7, "main")
    assert plain.tools == ("calculate",) and plain.mcp is None
    assert [f.provider for f in plain.fallbacks] == ["spare"]
    # the shorthand is the channel's prompt, unless the profile sets one
    assert effective(agent, None, None, "telegram").system_prompt == "On Telegram."
    bare = ProfileConfig(match=["telegram"], language="German")
    inherited = effective(agent, "p", bare, "telegram")
    assert inherited.system_prompt == "On Telegram." and inherited.language == "German"
    own = ProfileConfig(system_prompt="Mine.", temperature=0.0, tools=[], fallbacks=[],
                        model="small", mcp=["files"])
    chosen = effective(agent, "p", own, "telegram")
    assert chosen.system_prompt == "Mine." and chosen.temperature == 0.0  # 0 is a setting
    assert chosen.tools == () and chosen.fallbacks == () and chosen.model == "small"
    assert chosen.provider == "main" and chosen.mcp == ("files",)
    assert not bare.own_chain and own.own_chain


def test_the_language_line_and_mcp_allowlists() -> None:
    assert language_note(None) == ""
    assert "Always answer in Deutsch" in language_note("Deutsch")
    assert mcp_allows(None, "files__read") and mcp_allows(["files"], "files__read")
    assert mcp_allows(["web__search"], "web__search")
    assert not mcp_allows(["web__search"], "web__fetch") and not mcp_allows([], "files__read")
    assert mcp_servers_of(["files", "web__search"]) == {"files", "web"}
    assert mcp_servers_of(None) is None


@pytest.mark.parametrize("body, words", [
    ({"match": ["telegram:"]}, "write a channel name"),
    ({"match": [":123"]}, "write a channel name"),
    ({"match": ["local", "local"]}, "listed twice"),
    ({"temperature": 2.5}, "less than or equal to 2"),
    ({"colour": "blue"}, "Extra inputs"),
])
def test_bad_profiles_are_refused_with_the_reason(body: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ProfileConfig.model_validate(body)


def test_one_target_may_be_written_without_a_list() -> None:
    assert ProfileConfig.model_validate({"match": "telegram"}).match == ["telegram"]


def test_blank_text_fields_are_unset() -> None:
    profile = ProfileConfig(system_prompt="  ", language="", provider=" ", model="")
    assert (profile.system_prompt, profile.language, profile.provider, profile.model) == (
        None, None, None, None)


# -- the config file ------------------------------------------------------------------------


CONFIG = """\
# my assistant
providers:
  - name: main
    model: m1
agent:
  system_prompts:
    local: Old style prompt.
profiles:
  support:          # the help desk
    match: [local, "local:vip"]
    temperature: 0.3
  ghost:
    match: [nowhere]
    provider: missing
  copycat:
    match: [local]
    fallbacks: [{provider: nobody}]
  "bad name":
    match: local
  broken:
    temperature: hot
channels:
  local: {type: local}
"""


def test_the_config_names_each_problem_with_its_line_and_keeps_the_rest(
        tmp_path: Path) -> None:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(CONFIG, "utf-8")
    cfg = load_config(path)
    assert list(cfg.profiles) == ["support", "ghost", "copycat"]
    errors = [str(e) for e in cfg.errors]
    warnings = [str(w) for w in cfg.warnings]
    expect = {
        "[profiles.ghost.provider]": (errors, "no provider is called 'missing'", 14),
        "[profiles.copycat.match.0]": (errors, "already used by profile 'support'", 16),
        "[profiles.copycat.fallbacks.0.provider]": (errors, "no provider is called 'nobody'",
                                                    17),
        "[profiles.bad name]": (errors, "letters, digits", 18),
        "[profiles.broken.temperature]": (errors, "valid number", 21),
        "[profiles.ghost.match.0]": (warnings, "no channel is called 'nowhere'", 13),
    }
    for where, (found, words, line) in expect.items():
        (hit,) = [e for e in found if where in e]
        assert words in hit and f"pyclaw.yaml:{line} " in hit, hit
    # the old shorthand still works where no profile sets a prompt
    assert cfg.agent.system_prompts == {"local": "Old style prompt."}


def test_saving_writes_the_section_and_keeps_the_users_comments(tmp_path: Path) -> None:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(CONFIG, "utf-8")
    cfg = load_config(path)
    secrets = FileSecretStore(tmp_path / "secrets.json")
    cfg.profiles["support"] = cfg.profiles["support"].model_copy(
        update={"language": "French"})
    cfg.profiles["new"] = ProfileConfig(match=["local:kids"], system_prompt="Be kind.")
    del cfg.profiles["ghost"]
    save_config(cfg, secrets)
    text = path.read_text("utf-8")
    assert "# my assistant" in text and "# the help desk" in text
    again = load_config(path)
    assert again.profiles["support"].language == "French"
    assert again.profiles["support"].temperature == 0.3
    assert again.profiles["new"] == ProfileConfig(match=["local:kids"],
                                                  system_prompt="Be kind.")
    assert "ghost" not in again.profiles
    assert yaml.safe_load(text)["agent"]["system_prompts"] == {"local": "Old style prompt."}
    cfg.profiles.clear()
    save_config(cfg, secrets)
    assert "profiles" not in yaml.safe_load(path.read_text("utf-8"))


# -- the agent: MCP tools and the built-in ones per profile ----------------------------------


class TwoServers:
    """A tool source as the MCP manager is one: ``files`` is up, ``db`` is down."""

    def __init__(self) -> None:
        self.asked: list[Collection[str] | None] = []

    def tools_for(self, inbound: Inbound) -> Sequence[Tool]:
        async def handler(arguments: dict[str, Any], ctx: ToolContext) -> str:
            return "ok"

        schema: dict[str, Any] = {"type": "object", "properties": {}}
        return [Tool(name, "a tool", schema, handler)
                for name in ("files__read", "files__write")]

    def unavailable_note(self, inbound: Inbound,
                         servers: Collection[str] | None = None) -> str | None:
        self.asked.append(servers)
        return "db is down." if servers is None or "db" in servers else None


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(models=("fake-model", "fake-small")) as server:
        yield server  # type: ignore[misc]


async def test_each_profile_offers_its_own_tools_and_mcp_servers(
        llm: FakeOpenAI, open_store: StoreFactory, tmp_path: Path) -> None:
    store = await open_store(tmp_path / "data")
    config = Config(path=None, providers=[ProviderConfig.model_validate(provider_section(llm))],
                    profiles=profiles(
                        narrow={"match": ["work"], "tools": ["calculate"],
                                "mcp": ["files__read"]},
                        closed={"match": ["kids"], "tools": [], "mcp": []}))
    source = TwoServers()
    chain = build_chain(config)
    agent = Agent(chain, store.journal, store.usage, config=config.agent, tool_source=source,
                  profiles=config.profiles)
    try:
        offered = {}
        for channel in ("local", "work", "kids"):
            inbound = Inbound(Address(channel, "c1"), uuid.uuid4().hex, "hi", sender_id="u1")
            journal_id = (await store.journal.submit(inbound)).journal_id
            await agent.reply(inbound, journal_id)
            request = llm.requests[-1]
            offered[channel] = sorted(t["function"]["name"] for t in request.get("tools", []))
            offered[channel + " note"] = "db is down." in request["messages"][0]["content"]
    finally:
        await agent.close()
    assert "calculate" in offered["local"] and "files__write" in offered["local"]
    assert offered["work"] == ["calculate", "files__read"]
    assert offered["kids"] == []
    # a profile is told only about the servers it may use
    assert offered["local note"] and not offered["work note"] and not offered["kids note"]
    assert source.asked == [None, {"files"}]  # "closed" never asks: it allows no MCP at all


# -- end to end: Telegram, a Telegram group and local chat -----------------------------------


async def settled(harness: TelegramHarness, gateway: Any, pid: str) -> None:
    async def done() -> bool:
        row = await gateway.store.db.fetchone(
            "SELECT status FROM messages WHERE direction='in' AND platform_id=?", (pid,))
        return row is not None and row["status"] in ("replied", "skipped", "failed")

    await eventually(done, timeout=WAIT)
    await gateway.lanes.join()


def seen(request: dict[str, Any]) -> tuple[str, str, float | None, list[str]]:
    """What the model was asked with: system prompt, model, temperature, tool names."""
    tools = sorted(t["function"]["name"] for t in request.get("tools", []))
    return request["messages"][0]["content"], request["model"], request.get("temperature"), \
        tools


async def test_two_channels_and_a_group_each_get_their_profile(
        telegram: TelegramHarness, llm: FakeOpenAI, make_gateway: GatewayFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    async with FakeAnthropic(models=("claude-fake",)) as claude:
        gateway = await make_gateway({
            "providers": [provider_section(llm),
                          {"name": "claude", "kind": "anthropic", "base_url": claude.base_url,
                           "model": "claude-fake", "max_retries": 0, "timeout": 10}],
            "agent": {"system_prompt": "Default prompt on {channel}."},
            "profiles": {
                "support": {"match": ["telegram"], "system_prompt": "Support desk on {channel}.",
                            "model": "fake-small", "temperature": 0.2,
                            "tools": ["current_time"]},
                "family": {"match": [f"telegram:{GROUP}"], "system_prompt": "Family helper.",
                           "language": "German", "provider": "claude", "temperature": 1.5}},
            "channels": {
                "local": {"type": "local"},
                "telegram": {"type": "telegram", "group_policy": "open", "dm_policy": "open",
                             "rate_limit_per_minute": 0, **telegram.channel_config()}}})
        assert gateway.config.errors == []
        await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                         timeout=WAIT)

        dm = telegram.chat(0)
        await settled(telegram, gateway, await telegram.inject_message(dm, "need help"))
        assert telegram.visible(dm) == ["Echo: need help"]
        prompt, model, temperature, tools = seen(llm.requests[-1])
        assert (prompt, model, temperature, tools) == (
            "Support desk on telegram.", "fake-small", 0.2, ["current_time"])

        assert await ask(gateway, "hello", chat="app", timeout=WAIT) == "Echo: hello"
        prompt, model, temperature, tools = seen(llm.requests[-1])
        assert prompt == "Default prompt on local." and model == "fake-model"
        assert temperature is None and "calculate" in tools and "current_time" in tools
        assert len(llm.requests) == 2

        pid = await telegram.inject_group_message(GROUP, "/status", mention=True)
        await settled(telegram, gateway, pid)
        status = [m.text for m in telegram.sent(GROUP)][-1]
        assert "Profile: family" in status and "Model: claude/claude-fake" in status

        pid = await telegram.inject_group_message(GROUP, "hallo zusammen", mention=True)
        await settled(telegram, gateway, pid)
        assert len(llm.requests) == 2  # the group's profile answers through Claude
        request = claude.requests[-1]
        assert request["system"].startswith("Family helper.\n\nAlways answer in German")
        # the Messages API of the SDK's version (2026-10-21) refuses sampling parameters
        assert "temperature" not in request
        assert any("temperature is not sent" in r.getMessage() for r in caplog.records)
        assert request["model"] == "claude-fake"
        assert [m.text for m in telegram.sent(GROUP)][-1].startswith("Echo:")
