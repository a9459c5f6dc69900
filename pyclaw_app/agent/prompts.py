"""System prompt templates: one per channel (or the default), with a few variables.

Only ``{channel}``, ``{user}``, ``{date}`` and ``{time}`` are replaced; any other
brace is left alone, so a prompt may quote JSON or code without escaping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from pyclaw_app.model import Inbound

__all__ = ["VARIABLES", "render_system_prompt"]

VARIABLES = ("channel", "user", "date", "time")
_PATTERN = re.compile(r"\{(" + "|".join(VARIABLES) + r")\}")


def render_system_prompt(default: str, per_channel: Mapping[str, str], inbound: Inbound,
                         now: datetime) -> str:
    template = per_channel.get(inbound.address.channel, default)
    values = {
        "channel": inbound.address.channel,
        "user": inbound.sender_name or inbound.sender_id or "the user",
        "date": now.strftime("%A, %Y-%m-%d"),
        "time": now.strftime("%H:%M"),
    }
    return _PATTERN.sub(lambda m: values[m.group(1)], template)
