"""The time stamp of a point or a run: UTC, to the second, ISO 8601.

    started = now_iso()     # '2026-12-07T10:15:00+00:00'

A module of its own, free of pandas: the processes that run points (a worker, the Callgrind process,
which imports under Valgrind at about 12 times Python's native cost) need the stamp, not the tables.
"""
from __future__ import annotations

import datetime as dt


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
