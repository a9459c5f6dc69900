"""The in-process ControlPlane against a real gateway and the fake Telegram Bot API."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.control.chat import ask
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.support import eventually


@pytest.fixture
async def telegram():
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def plane(tmp_path: Path, fake_llm: FakeOpenAI):
    path = tmp_path / "pyclaw.yaml"
    path.write_text(yaml.safe_dump({"providers": [provider_section(fake_llm)]}))
    secrets = FileSecretStore(tmp_path / "data" / "secrets.json")
    store = await Store(tmp_path / "data").open()
    gateway = Gateway(load_config(path, secrets), store, Bus())
    await gateway.start()
    yield LocalControlPlane(gateway, secrets, path)
    await gateway.stop()
    await store.close()


def form_values(telegram: FakeTelegram, **extra: object) -> dict[str, object]:
    return {"token": telegram.token, "base_url": f"{telegram.url}/bot",
            "base_file_url": f"{telegram.url}/file/bot", "poll_timeout": 1,
            "dm_policy": "open", **extra}


async def test_types_carry_json_schema_with_secret_hints(plane: LocalControlPlane) -> None:
    types = {t.type: t for t in plane.channel_types()}
    assert {"local", "telegram", "discord", "slack"} <= set(types)
    schema = types["telegram"].schema
    assert schema["properties"]["token"]["secret"] is True
    assert "description" in schema["properties"]["token"]
    assert types["telegram"].docs_url.startswith("https://")


async def test_configure_telegram_from_the_form_goes_online_without_restart(
        plane: LocalControlPlane, telegram: FakeTelegram, tmp_path: Path) -> None:
    errors = plane.validate_channel("tg", "telegram", {**form_values(telegram),
                                                       "poll_timeout": "soon"})
    assert [e.field for e in errors] == ["poll_timeout"]

    bad = await plane.probe_channel("tg", "telegram", form_values(telegram, token="1:wrong"))
    assert not bad.ok and "token" in bad.message.lower()
    good = await plane.probe_channel("tg", "telegram", form_values(telegram))
    assert good.ok and telegram.username in good.message

    assert await plane.save_channel("tg", "telegram", form_values(telegram)) == []
    await eventually(lambda: plane.gateway.channels["tg"].state == ChannelState.ONLINE)
    telegram.inject_message(1001, "hi from telegram")
    sent = await eventually(lambda: telegram.sent_to(1001))
    assert sent[0].text == "Echo: hi from telegram"

    written = (tmp_path / "pyclaw.yaml").read_text()
    assert telegram.token not in written and "tg:" in written
    assert telegram.token in (tmp_path / "data" / "secrets.json").read_text()
    form = plane.channel_form("tg")
    assert form.secrets_set == ("token",) and "token" not in form.values
    assert telegram.token not in json.dumps(form.values)

    # a blank secret keeps the stored one; disabling applies live
    assert await plane.set_channel_enabled("tg", False) == []
    assert plane.gateway.channels["tg"].state == ChannelState.DISABLED
    assert await plane.save_channel("tg", "telegram", {**form_values(telegram), "token": ""}) \
        == []
    await eventually(lambda: plane.gateway.channels["tg"].state == ChannelState.ONLINE)
    reloaded = load_config(tmp_path / "pyclaw.yaml",
                           FileSecretStore(tmp_path / "data" / "secrets.json"))
    assert reloaded.errors == [] and reloaded.channels["tg"].config is not None

    await plane.delete_channel("tg")
    assert "tg" not in plane.gateway.channels
    assert telegram.token not in (tmp_path / "data" / "secrets.json").read_text()


async def test_invalid_names_and_types_are_field_errors(plane: LocalControlPlane) -> None:
    errors = await plane.save_channel("Bad Name!", "carrier-pigeon", {})
    fields = {e.field for e in errors}
    assert fields == {"name", "type"}
    assert "known types" in next(e.message for e in errors if e.field == "type")


async def test_logs_filter_export_and_message_detail(plane: LocalControlPlane) -> None:
    reply = await ask(plane.gateway, "detail please", chat="d", timeout=10)
    assert reply == "Echo: detail please"
    await plane.gateway.lanes.join()
    plane.gateway.channel_log("local", "warning", "disk is getting full, token=abc")
    lines = await eventually(lambda: plane.logs(channel="local", level="warning"))
    assert lines[0].message.startswith("disk is getting full")
    assert await plane.logs(channel="local", search="no such text") == []
    everything = await plane.logs(channel="local")
    older = await plane.logs(channel="local", before_id=everything[0].id)
    assert [r.id for r in older] == [r.id for r in everything[1:]]

    jsonl = await plane.export_logs("jsonl", channel="local")
    assert len(jsonl.splitlines()) == len(everything)
    assert json.loads(jsonl.splitlines()[0])["channel"] == "local"
    table = list(csv.DictReader(io.StringIO(await plane.export_logs("csv", channel="local"))))
    assert len(table) == len(everything) and table[0]["level"]

    traffic = await plane.recent_traffic(10)
    inbound = next(r for r in traffic if r.direction == "in")
    detail = await plane.message_detail(inbound.id)
    assert detail is not None and detail.reply is not None
    assert detail.reply.text == "Echo: detail please"
    await eventually(lambda: plane.gateway.store.db.fetchall("SELECT 1 FROM llm_calls"))
    detail = await plane.message_detail(inbound.id)
    assert detail.llm_calls and detail.llm_calls[0]["provider"] == "fake"


async def test_settings_keep_keys_secret_and_apply_live(plane: LocalControlPlane,
                                                         tmp_path: Path) -> None:
    async with FakeOpenAI(api_key="sk-settings-key-0123456789", models=("m-1", "m-2")) as llm:
        form = plane.settings_form()
        assert form.providers[0]["name"] == "fake" and "api_key" not in form.providers[0]
        assert form.provider_schema["properties"]["api_key"]["secret"] is True
        new = {"name": "second", "base_url": llm.base_url, "model": "m-2",
               "api_key": "sk-settings-key-0123456789", "max_retries": 0}
        models, outcome = await plane.list_models(new)
        assert outcome.ok and models == ["m-1", "m-2"]
        _, bad = await plane.list_models({**new, "api_key": "sk-wrong-key-000000000000"})
        assert not bad.ok and "401" in bad.message

        errors = plane.validate_settings([new], {"history_tokens": 5})
        assert [e.field for e in errors] == ["agent.history_tokens"]
        errors = plane.validate_settings([new, new], {"provider": "nope"})
        assert {e.field for e in errors} == {"providers", "agent.provider"}

        assert await plane.save_settings([*form.providers, new], {"provider": "second"}) == []
        written = (tmp_path / "pyclaw.yaml").read_text()
        assert "sk-settings" not in written and "second" in written
        assert "sk-settings-key" in (tmp_path / "data" / "secrets.json").read_text()
        assert plane.settings_form().keys_set == ("second",)
        reply = await ask(plane.gateway, "switched?", timeout=10)
        assert reply == "Echo: switched?" and llm.requests[-1]["model"] == "m-2"

        # a blank key keeps the stored one
        keep = {**new, "api_key": ""}
        assert await plane.save_settings([keep], {"provider": "second"}) == []
        assert await ask(plane.gateway, "still?", timeout=10) \
            == "Echo: still?"

        await plane.gateway.lanes.join()
        usage = await eventually(plane.usage)
        assert {(u.provider, u.model) for u in usage} >= {("second", "m-2")}
        assert sum(u.calls for u in usage) >= 2


async def test_group_requests_are_listed_and_decided_through_the_plane(
        plane: LocalControlPlane) -> None:
    access = plane.gateway.store.access
    await access.admit_group("tg", "-1001", requested_by="stranger")
    await access.admit_group("tg", "-1002", requested_by="someone")
    rows = await plane.group_requests()
    assert {(r.channel, r.chat, r.requested_by) for r in rows} == {
        ("tg", "-1001", "stranger"), ("tg", "-1002", "someone")}
    assert await plane.decide_group("tg", "-1001", True)
    assert await plane.decide_group("tg", "-1002", False)
    assert not await plane.decide_group("tg", "-9999", True)  # never asked
    assert await plane.group_requests() == []
    assert {g.chat: g.status for g in await access.groups()} == {"-1001": "approved",
                                                                "-1002": "rejected"}
