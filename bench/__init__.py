"""Benchmarks of the pyclaw gateway (issue 7): ``python -m bench --help``.

Every participant runs as its own process on 127.0.0.1: the fake Telegram Bot
API or the fake Slack (Web API + Socket Mode), which also injects the load and
times the replies, so both ends of a latency are read from one clock; the fake
OpenAI API; and either the real
gateway (``pyclaw gateway`` with SQLite on disk) or the baseline bot. The
harness in :mod:`bench.__main__` only starts them, asks the fake for its
report, and reads the gateway's CPU and memory from ``/proc``.

Nothing here is part of the pytest suite: timings are recorded in
``bench/RESULTS.md``, never asserted.
"""
