"""The identity store on real SQLite with an injected clock: codes, limits, links, merges;
the notes' scopes; the prompt's memory block within its budget."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.agent.memory import GROUP_MEMORY_HEADER, LongTermMemory, with_memory
from pyclaw_app.agent.tokens import estimate_tokens
from pyclaw_app.agent.tools.notes import NoteScope, NotesStore
from pyclaw_app.store import Store
from pyclaw_app.store.access import CODE_ALPHABET
from pyclaw_app.store.identities import (
    LINK_CODE_LENGTH,
    LINK_CODE_TTL,
    MAX_LINK_CODES,
    MAX_WRONG_CODES,
    WRONG_CODE_WINDOW,
    Account,
    LinkCode,
    LinkRefusal,
    Redeemed,
    RedeemRefusal,
    normalize_code,
)
from tests.conftest import StoreFactory
from tests.stores import ON_EACH_STORE

T0 = 1_000_000.0

pytestmark = ON_EACH_STORE


@pytest.fixture
async def store(tmp_path: Path, open_store: StoreFactory) -> Store:
    return await open_store(tmp_path / "data")


async def code_for(store: Store, channel: str, sender: str, now: float = T0) -> str:
    code = await store.identities.request_code(channel, sender, sender.title(), now=now)
    assert isinstance(code, LinkCode), code
    return code.code


async def test_codes_are_short_readable_reused_while_pending_and_limited_per_day(
        store: Store) -> None:
    ids = store.identities
    first = await code_for(store, "tg", "ann")
    assert len(first) == LINK_CODE_LENGTH and set(first) <= set(CODE_ALPHABET)
    assert await code_for(store, "tg", "ann", T0 + 10) == first
    assert await code_for(store, "tg", "bob", T0 + 10) != first
    made = {first}
    for i in range(1, MAX_LINK_CODES):
        made.add(await code_for(store, "tg", "ann", T0 + i * (LINK_CODE_TTL + 1)))
    assert len(made) == MAX_LINK_CODES
    later = T0 + MAX_LINK_CODES * (LINK_CODE_TTL + 1)
    assert await ids.request_code("tg", "ann", "Ann", now=later) is LinkRefusal.TOO_MANY
    # a day after the first ones, codes come again
    assert isinstance(await ids.request_code("tg", "ann", "Ann", now=T0 + 86_401 + later - T0),
                      LinkCode)


async def test_a_code_links_once_before_it_expires(store: Store) -> None:
    ids = store.identities
    code = await code_for(store, "tg", "ann")
    assert await ids.redeem(code, "tg", "ann", "Ann", now=T0 + 1) is RedeemRefusal.OWN
    linked = await ids.redeem(code, "slack", "U1", "Ann S", now=T0 + 2)
    assert isinstance(linked, Redeemed) and not linked.already
    assert linked.other.key == ("tg", "ann")
    assert {a.key for a in linked.identity.accounts} == {("tg", "ann"), ("slack", "U1")}
    assert await ids.redeem(code, "slack", "U2", "Bob", now=T0 + 3) is RedeemRefusal.USED

    late = await code_for(store, "tg", "cat", T0)
    assert await ids.redeem(late, "slack", "U3", "", now=T0 + LINK_CODE_TTL) \
        is RedeemRefusal.EXPIRED
    assert await ids.redeem("ABCDEFGH", "slack", "U3", "", now=T0) is RedeemRefusal.UNKNOWN
    assert [a.key for a in await ids.accounts_of("slack", "U3")] == [("slack", "U3")]


async def test_linking_linked_accounts_again_says_so(store: Store) -> None:
    ids = store.identities
    await ids.redeem(await code_for(store, "tg", "ann"), "slack", "U1", "", now=T0 + 1)
    again = await ids.redeem(await code_for(store, "tg", "ann", T0 + 2), "slack", "U1", "",
                             now=T0 + 3)
    assert isinstance(again, Redeemed) and again.already
    assert len(await ids.list_all()) == 1


async def test_wrong_codes_are_limited_per_account_and_the_limit_survives_a_restart(
        tmp_path: Path, open_store: StoreFactory) -> None:
    store = await open_store(tmp_path / "data")
    code = await code_for(store, "tg", "ann")
    for i in range(MAX_WRONG_CODES - 1):
        assert await store.identities.redeem(f"X{i}", "slack", "U1", "", now=T0 + i) \
            is RedeemRefusal.UNKNOWN
    await store.close()

    store = await open_store(tmp_path / "data")
    try:
        ids = store.identities
        assert await ids.redeem("LAST", "slack", "U1", "", now=T0 + 10) is RedeemRefusal.UNKNOWN
        # limited: even the right code is not looked at, and stays usable for others
        assert await ids.redeem(code, "slack", "U1", "", now=T0 + 11) \
            is RedeemRefusal.RATE_LIMITED
        assert isinstance(await ids.redeem(code, "slack", "U2", "", now=T0 + 12), Redeemed)
        # the window passes
        later = T0 + 10 + WRONG_CODE_WINDOW
        fresh = await code_for(store, "tg", "ann", later)
        assert isinstance(await ids.redeem(fresh, "slack", "U1", "", now=later), Redeemed)
    finally:
        await store.close()


async def test_links_merge_and_unlink_dissolves_an_identity_of_one(store: Store) -> None:
    ids = store.identities
    first = await ids.link(Account("tg", "ann", "Ann"), Account("slack", "U1"), now=T0)
    second = await ids.link(Account("local", "me"), Account("matrix", "@ann:x"), now=T0 + 1)
    merged = await ids.link(Account("slack", "U1"), Account("matrix", "@ann:x"), now=T0 + 2)
    assert merged.id == first.id and merged.name == "Ann"
    assert {a.key for a in merged.accounts} == {("tg", "ann"), ("slack", "U1"),
                                                ("local", "me"), ("matrix", "@ann:x")}
    assert await ids.get(second.id) is None
    accounts = await ids.accounts_of("matrix", "@ann:x")
    assert accounts[0].key == ("matrix", "@ann:x") and len(accounts) == 4

    for account in (("tg", "ann"), ("slack", "U1"), ("local", "me")):
        assert await ids.unlink(*account)
    assert await ids.list_all() == []  # the last account alone is no identity
    assert not await ids.unlink("matrix", "@ann:x")
    with pytest.raises(ValueError):
        await ids.link(Account("tg", "ann"), Account("tg", "ann"))


@given(st.text(alphabet=CODE_ALPHABET, min_size=LINK_CODE_LENGTH, max_size=LINK_CODE_LENGTH),
       st.lists(st.sampled_from([" ", "-", "  ", "_", "."]), max_size=3),
       st.booleans())
def test_normalize_code_ignores_case_and_separators(code: str, seps: list[str],
                                                    lower: bool) -> None:
    typed = code.lower() if lower else code
    for i, sep in enumerate(seps):
        at = (i + 1) * 2
        typed = typed[:at] + sep + typed[at:]
    assert normalize_code(f"  {typed} ") == code


@given(st.text(alphabet=string.printable))
def test_normalize_code_never_fails(text: str) -> None:
    assert normalize_code(text) == normalize_code(normalize_code(text))


# ---- notes' scopes ---------------------------------------------------------------------------


async def test_person_and_group_scopes_never_see_each_others_notes(store: Store) -> None:
    notes = NotesStore(store.db)
    ann_tg = NoteScope.person(("tg", "ann"))
    ann_linked = NoteScope.person(("slack", "U1"), (("slack", "U1"), ("tg", "ann")))
    bob = NoteScope.person(("tg", "bob"))
    group = NoteScope.of_group(("tg", "ann"), "-100")
    other_group = NoteScope.of_group(("tg", "bob"), "-200")
    slack_group_same_id = NoteScope.of_group(("slack", "U1"), "-100")

    await notes.scoped(ann_tg).add("dm secret")
    group_note = await notes.scoped(group).add("group fact")
    assert [n.text for n in await notes.scoped(ann_tg).find()] == ["dm secret"]
    assert [n.text for n in await notes.scoped(ann_linked).find()] == ["dm secret"]
    assert [n.text for n in await notes.scoped(group).find()] == ["group fact"]
    assert await notes.scoped(bob).find() == []
    assert await notes.scoped(other_group).find() == []
    assert await notes.scoped(slack_group_same_id).find() == []  # a chat id is per channel
    # a person's scope cannot delete the group's note, nor the group's a DM note
    assert not await notes.scoped(ann_tg).delete(group_note)
    assert await notes.scoped(group).delete(group_note)
    dm = (await notes.scoped(ann_linked).find())[0]
    assert not await notes.scoped(group).delete(dm.id)
    assert await notes.scoped(ann_linked).delete(dm.id)  # linked: the same person


async def test_old_notes_are_the_persons_after_the_migration(store: Store) -> None:
    """Notes from before migration 8 have no chat: they are direct-message notes."""
    await store.db.execute("INSERT INTO notes (channel, user_id, text, created_at)"
                           " VALUES ('tg', 'ann', 'old one', 1)")
    notes = NotesStore(store.db)
    assert [n.text for n in await notes.scoped(NoteScope.person(("tg", "ann"))).find()] == [
        "old one"]
    assert await notes.scoped(NoteScope.of_group(("tg", "ann"), "-1")).find() == []


# ---- the memory block ------------------------------------------------------------------------


def test_memory_block_keeps_newest_first_within_its_budget() -> None:
    notes = [(i, f"note number {i} " + "x" * 80, T0) for i in range(30, 0, -1)]
    block = with_memory("SYSTEM", LongTermMemory(False, notes, [("tg", "summary")]), 120)
    added = block.removeprefix("SYSTEM")
    assert estimate_tokens(added) <= 125  # the budget, give or take the joins
    assert "note number 30" in block and "note number 1 " not in block
    assert with_memory("SYSTEM", LongTermMemory(False), 500) == "SYSTEM"
    assert with_memory("SYSTEM", LongTermMemory(False, notes), 5) == "SYSTEM"
    grouped = with_memory("S", LongTermMemory(True, [(1, "standup at 10", T0)]), 500)
    assert GROUP_MEMORY_HEADER in grouped and "standup at 10" in grouped
