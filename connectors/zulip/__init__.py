"""Zulip: a bot account read through the event queue (``/register`` + ``/events`` long poll)."""
