"""One person, one memory: linked accounts, and what long-term memory each turn may see.

The rule, in full:

- A note saved in a **direct message** belongs to the person: it is seen in their direct
  messages on every account linked to theirs (``/link``), and nowhere else.
- A note saved in a **group** belongs to that group (channel + chat, every thread of it):
  it is seen in that group only, by anyone who talks to the bot there.
- A group therefore never sees a person's direct-message notes, nor the summaries of their
  direct conversations, and a direct message never sees a group's notes.
- The summary the agent keeps of a long conversation (compaction) is that conversation's.
  The summaries of a person's *other* direct conversations (on linked accounts, or other
  threads) are shown in their direct messages as "earlier conversations"; group
  conversations' summaries stay in their group.
- Recent history is always the conversation's own (the journal), linked or not.
- Unlinking (``/unlink``, ``pyclaw identities unlink``) separates the accounts again; each
  note goes back with the account that saved it.

Chat commands ``/link`` and ``/unlink`` answer here; they work in direct messages only, so a
code is never shown to a group (a code sent in a group is voided).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pyclaw_app.agent.memory import LongTermMemory
from pyclaw_app.agent.tools.notes import Notes, NoteScope, NotesStore
from pyclaw_app.model import Inbound
from pyclaw_app.store.db import Database
from pyclaw_app.store.identities import (
    LINK_CODE_TTL,
    Account,
    IdentityStore,
    LinkRefusal,
    RedeemRefusal,
)

__all__ = ["MEMORY_NOTES", "MEMORY_SUMMARIES", "People"]

MEMORY_NOTES = 20
"""Newest notes shown in the prompt (within the memory budget); the tools find the rest."""
MEMORY_SUMMARIES = 3
"""Summaries of the person's other direct conversations shown, newest first."""

_REFUSALS = {
    RedeemRefusal.RATE_LIMITED: "Too many wrong link codes from this account: wait an hour, "
                                "then try again.",
    RedeemRefusal.UNKNOWN: "That isn't a valid link code. Check it, or get a new one with "
                           "/link on your other account.",
    RedeemRefusal.EXPIRED: f"That link code has expired (codes last "
                           f"{LINK_CODE_TTL / 60:.0f} minutes). Get a new one with /link on "
                           "your other account.",
    RedeemRefusal.USED: "That link code was already used: each code works once. Get a new one "
                        "with /link on your other account.",
    RedeemRefusal.OWN: "That code is for your *other* account: send /link CODE to me from "
                       "there.",
}
GROUP_REFUSAL = ("Linking accounts works in a direct message only, so nobody else sees your "
                 "code: write /link to me there.")
VOIDED = ("Please don't share link codes in a group. If that was a real code, it no longer "
          "works: get a new one with /link in a direct message.")


def _accounts(accounts: list[Account]) -> str:
    return ", ".join(a.describe() for a in accounts)


class People:
    """Whose memory a turn sees, and the ``/link`` and ``/unlink`` commands."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.identities = IdentityStore(db)
        self.notes = NotesStore(db)
        self.db = db
        self._clock = clock

    async def scope(self, inbound: Inbound) -> NoteScope:
        author = (inbound.address.channel, inbound.sender_id)
        if inbound.is_group:
            return NoteScope.of_group(author, inbound.address.chat)
        accounts = await self.identities.accounts_of(*author)
        return NoteScope.person(author, tuple(a.key for a in accounts))

    def notes_for(self, scope: NoteScope) -> Notes:
        return self.notes.scoped(scope)

    async def recall(self, scope: NoteScope, conv: str) -> LongTermMemory:
        """The long-term memory of ``scope`` for a turn in ``conv`` (whose own summary and
        history the prompt already has)."""
        notes = await self.notes.scoped(scope).find(limit=MEMORY_NOTES)
        group = scope.group is not None
        summaries: list[tuple[str, str]] = []
        if not group:
            rows = ", ".join("(?, ?)" for _ in scope.accounts)
            found = await self.db.fetchall(
                "SELECT d.channel, c.summary FROM dm_conversations d"
                " JOIN conversations c ON c.conv=d.conv"
                f" WHERE (d.channel, d.sender_id) IN (VALUES {rows}) AND d.conv != ?"
                " AND c.summary IS NOT NULL AND c.summary != ''"
                " ORDER BY c.updated_at DESC LIMIT ?",
                (*(v for a in scope.accounts for v in a), conv, MEMORY_SUMMARIES))
            summaries = [(r["channel"], r["summary"]) for r in found]
        return LongTermMemory(group, [(n.id, n.text, n.created_at) for n in notes], summaries)

    async def summarised(self, inbound: Inbound) -> None:
        """The conversation of ``inbound`` has a summary now: a direct one's becomes part of
        the person's memory in their other direct conversations."""
        if not inbound.is_group and inbound.sender_id:
            await self.identities.remember_dm(inbound.address.key, inbound.address.channel,
                                              inbound.sender_id)

    # ---- /link and /unlink -----------------------------------------------------------------
    async def link_command(self, inbound: Inbound, argument: str) -> str:
        channel, sender = inbound.address.channel, inbound.sender_id
        if not sender:
            return "Linking needs to know who you are, and this channel did not say."
        if inbound.is_group:
            if argument:
                await self.identities.void_code(argument, now=self._clock())
                return VOIDED
            return GROUP_REFUSAL
        if argument:
            return await self._redeem(inbound, argument)
        code = await self.identities.request_code(channel, sender, inbound.sender_name,
                                                  now=self._clock())
        if code is LinkRefusal.TOO_MANY:
            return "You've asked for too many link codes today; please try again tomorrow."
        assert not isinstance(code, LinkRefusal)
        accounts = await self.identities.accounts_of(channel, sender)
        linked = (f"This account is linked with {_accounts(accounts[1:])}; a new link adds "
                  "another.\n" if len(accounts) > 1 else "")
        return (f"{linked}Your link code: {code.code}\n"
                f"Send /link {code.code} to me from your other account (another channel or "
                f"app) within {LINK_CODE_TTL / 60:.0f} minutes. The code works once. Linked "
                "accounts share one memory (your notes and what we talked about) in direct "
                "messages; each chat keeps its own recent history, and groups see none of it.")

    async def _redeem(self, inbound: Inbound, argument: str) -> str:
        result = await self.identities.redeem(argument, inbound.address.channel,
                                              inbound.sender_id, inbound.sender_name,
                                              now=self._clock())
        if isinstance(result, RedeemRefusal):
            return _REFUSALS[result]
        if result.already:
            return f"This account is already linked with {result.other.describe()}."
        me = (inbound.address.channel, inbound.sender_id)
        others = [a for a in result.identity.accounts if a.key != me]
        return (f"Linked: you are also {_accounts(others)}. From now on your direct messages "
                "on these accounts share one memory (notes and what we talked about); each "
                "chat keeps its own recent history, and groups see none of it. /unlink undoes "
                "it.")

    async def unlink_command(self, inbound: Inbound) -> str:
        channel, sender = inbound.address.channel, inbound.sender_id
        if inbound.is_group:
            return "Use /unlink in a direct message to me."
        accounts = await self.identities.accounts_of(channel, sender)
        if len(accounts) < 2 or not await self.identities.unlink(channel, sender):
            return "This account is not linked with any other."
        return (f"Unlinked from {_accounts(accounts[1:])}. Notes you saved here stay here; "
                "those saved there stay there.")
