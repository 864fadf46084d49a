"""The pure core of ingest: one MQTT message in, an accepted event or a rejection out.

The common event takes the fast path (protocol.common_event: one typed decode, its own bytes
proved canonical, then the device and the signature); anything it does not vouch for takes the
full path, which alone names reasons. Its order of checks (docs/protocol.md, "What the network
checks"): size, JSON, topic, envelope, topic/source agreement, device known and not revoked,
signature, the event's time, each reading against the catalog and the clock, pairing. A reading
that fails is refused on its own: the event is accepted with the others. Nothing here does I/O
or reads the clock; device records come from ``lookup``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple
from uuid import UUID

from protocol.catalog import Catalog
from protocol.common_event import decode_common_event
from protocol.envelope import (
    Reading,
    ReadingRefusal,
    TelemetryEvent,
    event_id,
    parse_json_object,
    stored_reading,
    validate_envelope,
)
from protocol.errors import Reason, RejectedMessage, TopicError
from protocol.signing import signature_matches, verify_document
from protocol.topics import Channel, parse_device_topic
from protocol.validation import check_event_time, sort_readings
from registry.records import DeviceRecord


class DeviceReason(StrEnum):
    """Rejections that depend on the device registry rather than on the message alone."""

    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    UNPAIRED_DEVICE = "unpaired_device"


class StoreReason(StrEnum):
    """Rejections that depend on the database."""

    #: The database refused the event itself (say, its device was deleted meanwhile).
    STORAGE_ERROR = "storage_error"


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event that passed: who sent it, when, and its readings that passed (maybe none)."""

    source: str
    boot_id: str
    seq: int
    time: datetime
    readings: list[Reading]
    vehicle_id: UUID
    topic: str
    payload: bytes  # as received, for the quarantine should the database refuse it
    #: The broker re-sent it to us (MQTT DUP flag): a copy of it may already be stored. A copy
    #: without the flag is the device sending it again (it missed the receipt).
    redelivered: bool = False
    #: Readings refused on their own (``event`` holds the others), quarantined with the event
    #: the first time it is stored.
    refused_readings: tuple[ReadingRefusal, ...] = ()

    @property
    def key(self) -> tuple[str, str, int]:
        """The dedup key: (device, boot id, seq)."""
        return (self.source, self.boot_id, self.seq)

    @property
    def event_id(self) -> str:
        return event_id(self.boot_id, self.seq)


@dataclass(frozen=True, slots=True)
class Rejected:
    topic: str
    payload: bytes
    reason: str
    detail: str
    device_id: str | None = None
    event_id: str | None = None


DeviceLookup = Callable[[str], DeviceRecord | None]


class _LookedUp(NamedTuple):
    """A device the fast path looked up before it gave way: the full path does not ask the
    registry again (an unknown or unpaired device is not cached, so that would be a query)."""

    device_id: str
    record: DeviceRecord | None

    def answering(self, lookup: DeviceLookup) -> DeviceLookup:
        return lambda device_id: self.record if device_id == self.device_id else lookup(device_id)


def process_message(
    topic: str, payload: bytes, lookup: DeviceLookup, catalog: Catalog, now: datetime,
    *, redelivered: bool = False,
) -> Accepted | Rejected:
    fast = _fast_path(topic, payload, lookup, catalog, now, redelivered)
    if isinstance(fast, Accepted):
        return fast
    return _full_path(topic, payload, fast.answering(lookup) if fast else lookup, catalog, now, redelivered)


def _fast_path(topic: str, payload: bytes, lookup: DeviceLookup, catalog: Catalog, now: datetime,
               redelivered: bool) -> Accepted | _LookedUp | None:
    """The common event accepted; else None or the device it looked up, for the full path to
    decide (and name the reason)."""
    try:
        topic_device, channel = parse_device_topic(topic)
    except TopicError:
        return None
    if channel is not Channel.TELEMETRY:
        return None
    event = decode_common_event(payload, catalog, now)
    if event is None or event.source != topic_device:
        return None
    device = lookup(event.source)
    if device is None or device.revoked or device.vehicle_id is None:
        return _LookedUp(event.source, device)
    if not signature_matches(event.signature, topic, event.unsigned, device.public_key):
        return _LookedUp(event.source, device)
    return Accepted(event.source, event.boot_id, event.seq, event.time, event.readings,
                    device.vehicle_id, topic, payload, redelivered)


def _full_path(topic: str, payload: bytes, lookup: DeviceLookup, catalog: Catalog, now: datetime,
               redelivered: bool) -> Accepted | Rejected:
    topic_device: str | None = None
    event: TelemetryEvent | None = None

    def reject(reason: str, detail: str) -> Rejected:
        device = event.source if event is not None else topic_device
        return Rejected(topic, payload, reason, detail, device, event.id if event else None)

    try:
        topic_device, channel = parse_device_topic(topic)
        if channel is not Channel.TELEMETRY:
            return reject(Reason.BAD_TOPIC, f"{channel.value} messages are not telemetry")
        document = parse_json_object(payload)
        envelope = validate_envelope(document)
        event = envelope.event
        if event.source != topic_device:
            return reject(
                Reason.TOPIC_MISMATCH,
                f"event source {event.source!r} published on device {topic_device!r}'s topic",
            )
        device = lookup(event.source)
        if device is None:
            return reject(DeviceReason.UNKNOWN_DEVICE, f"device {event.source!r} is not registered")
        if device.revoked:
            return reject(DeviceReason.REVOKED_DEVICE, f"device {event.source!r} is revoked")
        verify_document(document, topic, device.public_key)
        check_event_time(event, now)
    except RejectedMessage as error:
        return reject(error.reason, error.detail)
    if device.vehicle_id is None:
        return reject(DeviceReason.UNPAIRED_DEVICE, f"device {event.source!r} has no vehicle")
    good, refused = sort_readings(event.data.signals, envelope.positions, catalog, now,
                                  document["data"]["signals"])
    refusals = tuple(sorted([*envelope.refused, *refused], key=lambda r: r.index))
    return Accepted(event.source, event.boot_id, event.seq, event.time,
                    [stored_reading(r) for r in good],
                    device.vehicle_id, topic, payload, redelivered, refusals)
