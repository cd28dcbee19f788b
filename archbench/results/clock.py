"""The moment a record or a folder notes, as ISO 8601 in UTC to the second: ``now_iso()``.

Apart from ``results.store`` (which imports pandas for its tables) so that a worker process, which
stamps each point it runs and writes no table, does not import pandas (0.2 s of CPU per fresh
worker: a Ray worker's, or one started after a crash; ``benchmarks/executor_speed.py`` measures a
worker's start).
"""
from __future__ import annotations

import datetime as dt


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
