"""Malformed and hostile messages, each with the reason ingest must quarantine it for.

A message whose envelope and signature are good but whose one reading is bad has its event
stored (with no readings) and the reading quarantined on its own (``event_stored``); the others
are quarantined whole. Each such message has an event id of its own.

Used by the demo and the tests. ``car`` and ``other`` are registered, paired devices. Each
message names its ``sender``, whose own broker identity publishes it on its own topic: the broker
lets nobody publish on another device's topic, so these are what a buggy or dishonest device
can still send, and what ingest must catch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.envelope import SignalReading, build_event
from protocol.limits import MAX_EVENT_BYTES, MAX_READING_AGE, MAX_SIGNALS_PER_EVENT
from protocol.signing import device_id_for, public_key_bytes, sign_document, sign_event
from protocol.topics import telemetry_topic
from simulators.fleet import SimCar, encode


@dataclass(frozen=True, slots=True)
class HostileMessage:
    label: str
    sender: SimCar
    payload: bytes
    reason: str
    #: The event is stored and only its (one) reading quarantined.
    event_stored: bool = False

    @property
    def topic(self) -> str:
        return self.sender.topic


def _signed(car: SimCar, at: datetime, readings: list[dict[str, object]],
            boot: str = "hostile", seq: int = 0) -> dict[str, object]:
    event = build_event(device_id=car.device_id, boot_id=boot, seq=seq, time=at,
                        signals=[SignalReading(name="speed", timestamp=at, value=1)])
    document = event.to_wire()
    document["data"] = {"signals": readings}
    return sign_document(document, car.topic, car.key)


def hostile_messages(car: SimCar, other: SimCar, now: datetime) -> list[HostileMessage]:
    at = now - timedelta(seconds=30)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    good = _signed(car, at, [{"name": "speed", "timestamp": stamp, "value": 50}], seq=1)

    tampered = json.loads(encode(good))
    tampered["data"]["signals"][0]["value"] = 51

    stranger = Ed25519PrivateKey.generate()
    stranger_id = device_id_for(public_key_bytes(stranger))
    stranger_event = build_event(device_id=stranger_id, boot_id="x", seq=0, time=at,
                                 signals=[SignalReading(name="speed", timestamp=at, value=5)])
    stranger_signed = sign_event(stranger_event, telemetry_topic(stranger_id), stranger)
    ancient_stamp = (now - MAX_READING_AGE - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    future = now + timedelta(hours=1)
    future_stamp = future.strftime("%Y-%m-%dT%H:%M:%SZ")
    unsigned = dict(good)
    del unsigned["signature"]
    too_many = [{"name": "speed", "timestamp": stamp, "value": 1}] * (MAX_SIGNALS_PER_EVENT + 1)

    seqs = iter(range(100, 200))

    def reading(name: str, value: object, timestamp: object = stamp) -> bytes:
        """A signed event whose one reading is bad: its own event id."""
        return encode(_signed(car, at, [{"name": name, "timestamp": timestamp, "value": value}],
                              seq=next(seqs)))

    def msg(label: str, payload: bytes, reason: str, sender: SimCar | None = None) -> HostileMessage:
        return HostileMessage(label, sender or car, payload, reason)

    def bad_reading(label: str, payload: bytes, reason: str) -> HostileMessage:
        return HostileMessage(label, car, payload, reason, event_stored=True)

    return [
        msg("not JSON", b"{speed: 50", "malformed_json"),
        msg("JSON array", b"[1, 2, 3]", "malformed_json"),
        msg("NaN literal", encode(good).replace(b'"value":50', b'"value":NaN'), "malformed_json"),
        msg("duplicate member", b'{"id":"a:1","id":"a:2"}', "malformed_json"),
        msg("not UTF-8", b"\xff\xfe{}", "malformed_json"),
        msg("oversized", b'{"pad":"' + b"x" * MAX_EVENT_BYTES + b'"}', "too_large"),
        msg("missing fields", b'{"specversion":"1.0"}', "invalid_envelope"),
        msg("wrong spec version", encode({**good, "specversion": "0.3"}), "invalid_envelope"),
        msg("bad event id", encode({**good, "id": "no-seq-here"}), "invalid_envelope"),
        bad_reading("string timestamp garbage", reading("speed", 1, "yesterday"), "invalid_reading"),
        msg("too many signals", encode(_signed(car, at, too_many)), "too_many_signals"),
        msg("changed byte", encode(tampered), "bad_signature"),
        msg("signed by another key", encode(sign_event(
            build_event(device_id=car.device_id, boot_id="b", seq=0, time=at,
                        signals=[SignalReading(name="speed", timestamp=at, value=5)]),
            car.topic, other.key)), "bad_signature"),
        msg("no signature", encode(unsigned), "missing_signature"),
        msg("re-published by another device", encode(good), "topic_mismatch", other),
        msg("a stranger's signed event", encode(stranger_signed), "topic_mismatch"),
        bad_reading("unknown signal", reading("warpDriveFlux", 1), "unknown_signal"),
        bad_reading("speed out of range", reading("speed", 900), "out_of_range"),
        bad_reading("boolean not 0/1", reading("isIgnitionOn", 0.5), "wrong_value_type"),
        bad_reading("string for a number", reading("speed", "fast"), "wrong_value_type"),
        bad_reading("number for a location", reading("currentLocationCoordinates", 3), "wrong_value_type"),
        bad_reading("latitude beyond the pole", reading("currentLocationCoordinates",
                                                        {"latitude": 91, "longitude": 0}), "out_of_range"),
        bad_reading("from the future", reading("speed", 5, future_stamp), "timestamp_out_of_bounds"),
        msg("empty payload", b"", "malformed_json"),
        msg("JSON null", b"null", "malformed_json"),
        msg("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
        # Values no signature can cover (RFC 8785 has no form for them): put in after signing.
        msg("infinity (1e999)", encode(good).replace(b'"value":50', b'"value":1e999'), "bad_signature"),
        msg("integer beyond 2^53", encode(good).replace(b'"value":50', b'"value":1152921504606846976'),
            "bad_signature"),
        bad_reading("older than 90 days", reading("speed", 5, ancient_stamp), "timestamp_out_of_bounds"),
        bad_reading("string of 5000 characters", reading("vehicleIdentificationNumber", "A" * 5000),
                    "out_of_range"),
        msg("foreign event type", encode({**good, "type": "com.example.other"}), "invalid_envelope"),
        msg("signature not base64", encode({**good, "signature": "!!!"}), "bad_signature"),
        msg("signature cut short", encode({**good, "signature": "AAAA"}), "bad_signature"),
        bad_reading("negative speed", reading("speed", -5), "out_of_range"),
        msg("no readings", encode(_signed(car, at, [])), "invalid_envelope"),
        bad_reading("boolean for a number", reading("speed", True), "wrong_value_type"),
        bad_reading("timestamp without zone", reading("speed", 5, stamp[:-1]), "invalid_reading"),
        bad_reading("epoch milliseconds for a timestamp", reading("speed", 5, int(at.timestamp() * 1000)),
                    "invalid_reading"),
    ]
