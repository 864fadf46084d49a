"""Bounds every producer and consumer enforces (docs/protocol.md, "Limits")."""

from __future__ import annotations

from datetime import timedelta

#: Largest MQTT payload (one event) in bytes. The broker allows more so that ingest can
#: quarantine an oversized event with its reason instead of the broker silently dropping it.
MAX_EVENT_BYTES = 256 * 1024
#: Most readings one event may carry.
MAX_SIGNALS_PER_EVENT = 2000
#: Longest string value (DTC lists, fuel type names, ...), in characters.
MAX_STRING_VALUE_CHARS = 1024
#: Numbers are I-JSON (RFC 7493 section 2.2): magnitude below 2^53, exact in every JSON parser.
MAX_ABS_NUMBER = 2.0**53
#: Longest boot id, in characters.
MAX_BOOT_ID_CHARS = 64
#: Highest sequence number (fits a PostgreSQL bigint).
MAX_SEQ = 2**63 - 1
#: A reading may be at most this far ahead of the receiver's clock (DIMO uses the same bound).
MAX_FUTURE_SKEW = timedelta(minutes=5)
#: No reading may be older than this when it arrives: enough for a car offline for weeks, and a
#: bound on how many daily partitions one producer can make the database create.
MAX_READING_AGE = timedelta(days=90)
