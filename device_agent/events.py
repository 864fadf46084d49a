"""Readings -> signed wire events, numbered (boot id, seq) as docs/protocol.md requires.

Pure apart from the lock: time comes in as an argument, the key is given."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device_agent.spool import NewEvent
from protocol.envelope import SignalReading, build_event
from protocol.limits import MAX_SIGNALS_PER_EVENT
from protocol.signing import sign_event, wire_bytes
from protocol.topics import telemetry_topic


class EventBuilder:
    """Numbers and signs events for one device during one boot (seq rises from ``first_seq``)."""

    def __init__(self, device_id: str, key: Ed25519PrivateKey, boot_id: str, first_seq: int = 0) -> None:
        self.device_id = device_id
        self.topic = telemetry_topic(device_id)
        self.boot_id = boot_id
        self._key = key
        self._seq = first_seq
        self._lock = threading.Lock()

    def build(self, readings: Sequence[SignalReading], at: datetime) -> list[NewEvent]:
        """Events carrying ``readings`` in order, split to respect the per-event signal limit."""
        events = []
        for start in range(0, len(readings), MAX_SIGNALS_PER_EVENT):
            chunk = list(readings[start : start + MAX_SIGNALS_PER_EVENT])
            with self._lock:
                seq, self._seq = self._seq, self._seq + 1
            event = build_event(device_id=self.device_id, boot_id=self.boot_id, seq=seq, time=at,
                                signals=chunk)
            payload = wire_bytes(sign_event(event, self.topic, self._key))
            events.append(NewEvent(event.id, self.topic, payload, len(chunk)))
        return events
