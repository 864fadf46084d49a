"""Looking at what a stack holds, for the demo, the benchmarks and the tests: one value from
the database, the readings a device got stored, and waiting until something holds."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg


def poll_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``condition`` (a database or HTTP state) until it holds; False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True


def scalar(database_url: str, query: str, params: tuple[object, ...] = ()) -> object:
    """The first column of the first row of ``query`` (None without rows)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    return row[0] if row else None


def count(database_url: str, query: str, params: tuple[object, ...] = ()) -> int:
    value = scalar(database_url, query, params)
    return int(value) if isinstance(value, int) else 0


def readings_by_name(database_url: str, device_id: str) -> dict[str, int]:
    """How many readings of each signal the device got stored, in all three reading tables."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT name, count(*) FROM (SELECT name FROM signals_numeric WHERE device_id = %(d)s "
            "UNION ALL SELECT name FROM signals_text WHERE device_id = %(d)s "
            "UNION ALL SELECT name FROM signals_location WHERE device_id = %(d)s) s GROUP BY name",
            {"d": device_id}).fetchall()
    return {str(name): int(n) for name, n in rows}
