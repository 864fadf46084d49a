"""The device directory the ingest reads: who may speak, with which key, for which vehicle."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import cast
from uuid import UUID

import psycopg

from registry.records import DeviceRecord


class DeviceDirectory:
    """Device records by id, cached for ``ttl_s`` of the ``monotonic`` clock.

    Revocations do not wait for the cache: ``refresh_revocations`` (called before each batch)
    marks devices revoked since the last call, so a revocation applies from the next batch on.
    """

    #: Re-read revocations this far back, so one committed while we asked is not missed.
    REVOCATION_OVERLAP_S = 60.0

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], ttl_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, DeviceRecord | None]] = {}
        self._revocations_since: datetime | None = None

    def refresh_revocations(self) -> None:
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT now(), coalesce(array_agg(id), '{}') FROM devices"
                " WHERE revoked_at >= coalesce(%s, now()) - make_interval(secs => %s)",
                (self._revocations_since, self.REVOCATION_OVERLAP_S),
            ).fetchone()
        assert row is not None
        self._revocations_since = cast(datetime, row[0])
        for device_id in cast(list[str], row[1]):
            cached = self._cache.get(device_id)
            if cached is not None and cached[1] is not None and not cached[1].revoked:
                record = cached[1]
                self._cache[device_id] = (cached[0], DeviceRecord(
                    record.device_id, record.public_key, record.vehicle_id, revoked=True))

    def lookup(self, device_id: str) -> DeviceRecord | None:
        now = self._monotonic()
        cached = self._cache.get(device_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT public_key, vehicle_id, revoked_at IS NOT NULL FROM devices WHERE id = %s",
                (device_id,),
            ).fetchone()
        record = (
            DeviceRecord(device_id, cast(bytes, row[0]), cast(UUID | None, row[1]), bool(row[2]))
            if row is not None
            else None
        )
        if record is not None and (record.vehicle_id is not None or record.revoked):
            # Unknown and unpaired devices are not cached: pairing must apply at once, and
            # the broker lets no unregistered device publish, so they are rare.
            self._cache[device_id] = (now, record)
        return record
