"""Who may talk to the assistant: DM and group policy, pairing codes, per-sender rate limit.

Strangers are the common failure of gateways like this one: a bot that answers
anyone spends its owner's tokens. Direct messages default to *pairing*: an
unknown sender gets a short code which the owner approves in the app or with
``pyclaw pairing approve CODE``; only then are their messages answered. Groups
default to *allowlist*, with the same idea: anyone can add the bot to a group, so
a group that addresses it for the first time gets one notice and waits, silent,
until the owner runs ``pyclaw groups approve CHANNEL CHAT`` (or lists it in
``allow_groups``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pyclaw_app.channels.contract import ChannelConfig
from pyclaw_app.model import Inbound
from pyclaw_app.store.access import AccessStore, GroupStanding, PairingRefusal

__all__ = ["AccessPolicy", "TokenBucket", "Verdict", "addressed_to_bot", "may_follow_up"]


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str = ""
    notice: str | None = None
    """A message for the sender, when they should be told (at most once per situation)."""


ALLOWED = Verdict(True)


def addressed_to_bot(inbound: Inbound, config: ChannelConfig) -> bool:
    """The one group rule (``group_reply``): is this message for the bot at all?

    Connectors only report ``mentioned`` and ``reply_to_bot``; direct messages always are.
    """
    if not inbound.is_group or config.group_reply == "all":
        return True
    if config.group_reply == "mention":
        return inbound.mentioned
    return inbound.mentioned or inbound.reply_to_bot


def may_follow_up(inbound: Inbound, config: ChannelConfig) -> bool:
    """Could this group message, not addressed to the bot by itself, continue a thread the
    bot answered in? People go on in a thread without mentioning the bot again (in Slack
    the bot's answer is under the user's message, so the thread's parent is the user, never
    the bot); only the journal knows whether the bot spoke in the thread (Slack and Discord
    threads, Telegram forum topics), so the intake asks it for these messages only."""
    return (inbound.is_group and inbound.address.thread is not None
            and config.group_reply == "reply")


class TokenBucket:
    """``rate`` messages per minute with bursts up to ``rate``; one polite notice per overflow."""

    __slots__ = ("capacity", "notified", "stamp", "tokens")

    def __init__(self, rate: int, now: float) -> None:
        self.capacity = float(rate)
        self.tokens = float(rate)
        self.stamp = now
        self.notified = False

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.capacity / 60)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.notified = False
            return True
        return False


class AccessPolicy:
    def __init__(self, access: AccessStore, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = 50_000) -> None:
        self.access = access
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._max_buckets = max_buckets

    async def check(self, inbound: Inbound, config: ChannelConfig) -> Verdict:
        verdict = await self._admission(inbound, config)
        if not verdict.allowed:
            return verdict
        return self._rate(inbound, config)

    async def _admission(self, inbound: Inbound, config: ChannelConfig) -> Verdict:
        channel, sender = inbound.address.channel, inbound.sender_id
        if inbound.is_group:
            return await self._group(inbound, config)
        policy = config.dm_policy
        if policy == "open":
            return ALLOWED
        if policy == "disabled":
            return Verdict(False, "direct messages are disabled on this channel")
        if sender in config.allow_from or await self.access.is_allowed(channel, sender):
            return ALLOWED
        if policy == "allowlist":
            return Verdict(False, f"sender {sender} is not on the allowlist")
        request = await self.access.request_code(channel, sender, inbound.sender_name,
                                                 inbound.address.chat)
        if request is PairingRefusal.FULL:
            return Verdict(False, "pairing requests are full for this channel",
                           "This assistant is private and has too many pending pairing "
                           "requests right now. Please try again in an hour.")
        if request is PairingRefusal.REJECTED:
            return Verdict(False, f"the owner rejected the pairing code of sender {sender}")
        if isinstance(request, PairingRefusal):
            return Verdict(False, f"sender {sender} asked for too many pairing codes today")
        return Verdict(
            False, f"pairing code {request.code} sent to sender {sender}",
            f"This assistant is private. To talk to it, ask its owner to approve your "
            f"pairing code: {request.code}\n(Owner: approve it in the pyclaw app, or run "
            f"`pyclaw pairing approve {request.code}`. The code expires in one hour.)")

    async def _group(self, inbound: Inbound, config: ChannelConfig) -> Verdict:
        channel, chat = inbound.address.channel, inbound.address.chat
        if config.group_policy == "disabled":
            return Verdict(False, "group messages are disabled on this channel")
        if config.group_policy == "open" or chat in config.allow_groups:
            return ALLOWED
        name, sender = inbound.sender_name, inbound.sender_id
        standing = await self.access.admit_group(
            channel, chat, requested_by=f"{name} ({sender})" if name else sender)
        if standing is GroupStanding.APPROVED:
            return ALLOWED
        if standing is GroupStanding.REJECTED:
            return Verdict(False, f"the owner rejected group {chat}")
        if standing is GroupStanding.PENDING:
            return Verdict(False, f"group {chat} waits for the owner's approval")
        if standing is GroupStanding.FULL:
            return Verdict(False, f"group {chat} is not approved, and too many groups already "
                           "wait for approval on this channel")
        return Verdict(
            False, f"group {chat} asked for the owner's approval",
            f"This assistant is private: its owner must approve this group before it answers "
            f"here.\n(Owner: approve it under Channels, Group requests, or run "
            f"`pyclaw groups approve {channel} {chat}`.)")

    def _rate(self, inbound: Inbound, config: ChannelConfig) -> Verdict:
        rate = config.rate_limit_per_minute
        if rate <= 0:
            return ALLOWED
        now = self._clock()
        key = (inbound.address.channel, inbound.sender_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._buckets.clear()  # bounded memory; forgetting a bucket only forgives
            bucket = self._buckets[key] = TokenBucket(rate, now)
        if bucket.take(now):
            return ALLOWED
        if bucket.notified:
            return Verdict(False, f"rate limit ({rate}/min) for sender {inbound.sender_id}")
        bucket.notified = True
        return Verdict(False, f"rate limit ({rate}/min) for sender {inbound.sender_id}",
                       "You're sending messages faster than I can answer. I'll skip messages "
                       "for a moment; please wait a minute and try again.")
