"""How a streamed reply spends the ten edits Webex allows a message.

Webex refuses the eleventh edit of a message ("Update a message you have posted not
more than 10 times", Edit a Message). The gateway streams a reply by editing its draft
about once a second and then edits it once more to the final text, and it does not
say which edit is the last. So the budget is spent with the end in mind:

- an edit to the text the message already shows is skipped (it costs nothing);
- the first ``FREE_EDITS`` go as they come; after them the spacing doubles (2, 4, 8,
  16 s), so the draft keeps moving through about half a minute of writing;
- the tenth edit is kept for a text that has *settled*: asked for again, unchanged,
  ``SETTLE`` seconds after it was first asked for. While a reply is still being
  written every request brings a longer text and waits; the final text is asked for
  again by the gateway's retry (the wait is a RetryableError with that Retry-After),
  and gets it. A pause in the writing longer than ``SETTLE`` may spend it early; the
  final edit is then refused (FatalConnectorError) and the gateway sends the reply
  anew, as it does for any draft it cannot finish.

What is kept is in memory only: a draft lives for one reply.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pyclaw_app.channels import Recent
from pyclaw_app.errors import FatalConnectorError

__all__ = ["FREE_EDITS", "MAX_EDITS", "SETTLE", "EditBudget"]

MAX_EDITS = 10
FREE_EDITS = 5
SETTLE = 1.5
_MIN_WAIT = 0.05


@dataclass(slots=True)
class _Draft:
    shown: str
    used: int = 0
    last: float = 0.0
    asked: str | None = None
    asked_at: float = 0.0


class EditBudget:
    """The edits left on the messages this connector sent (the ``size`` newest)."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._drafts: Recent[str, _Draft] = Recent(size)
        self._clock = clock

    def sent(self, message_id: str, text: str) -> None:
        self._drafts.remember(message_id, _Draft(shown=text, last=self._clock()))

    def showing(self, message_id: str, text: str) -> bool:
        """The message shows ``text`` already: the edit would change nothing."""
        draft = self._drafts.get(message_id)
        return draft is not None and draft.shown == text

    def wait(self, message_id: str, text: str) -> float:
        """Seconds before this edit may go (0: now). FatalConnectorError when the message
        has had all its edits; a message this connector did not send (before a restart)
        is left for Webex to judge."""
        draft = self._drafts.get(message_id)
        if draft is None:
            return 0.0
        if draft.used >= MAX_EDITS:
            raise FatalConnectorError(f"Webex allows {MAX_EDITS} edits per message and this "
                                      "one has had them all")
        now = self._clock()
        if draft.asked == text and now - draft.asked_at >= SETTLE:
            return 0.0
        ordinary_left = MAX_EDITS - 1 - draft.used
        gap = draft.last + _spacing(draft.used) - now
        if ordinary_left > 0 and gap <= 0:
            return 0.0
        if draft.asked != text:
            draft.asked, draft.asked_at = text, now
        settle = draft.asked_at + SETTLE - now
        return max(settle if ordinary_left == 0 else min(gap, settle), _MIN_WAIT)

    def edited(self, message_id: str, text: str) -> None:
        draft = self._drafts.get(message_id)
        if draft is not None:
            draft.shown, draft.used, draft.last, draft.asked = text, draft.used + 1, \
                self._clock(), None

    def left(self, message_id: str) -> int | None:
        draft = self._drafts.get(message_id)
        return None if draft is None else MAX_EDITS - draft.used


def _spacing(used: int) -> float:
    """Seconds between the previous edit and the next one."""
    return 0.0 if used < FREE_EDITS else 2.0 ** (used - FREE_EDITS + 1)
