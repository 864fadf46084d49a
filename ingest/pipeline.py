"""The pure core of ingest: one MQTT message in, an accepted event or a rejection out.

Order of checks (docs/protocol.md, "What the network checks"): size, JSON, topic, envelope,
topic/source agreement, device known and not revoked, signature, the event's time, each reading
against the catalog and the clock, pairing. A reading that fails is refused on its own: the
event is accepted with the others. Nothing here does I/O or reads the clock; device records
come from ``lookup``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from protocol.catalog import Catalog
from protocol.envelope import (
    ReadingRefusal,
    TelemetryData,
    TelemetryEvent,
    parse_json_object,
    validate_envelope,
)
from protocol.errors import Reason, RejectedMessage
from protocol.signing import verify_document
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
    event: TelemetryEvent
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
        return (self.event.source, self.event.boot_id, self.event.seq)


@dataclass(frozen=True, slots=True)
class Rejected:
    topic: str
    payload: bytes
    reason: str
    detail: str
    device_id: str | None = None
    event_id: str | None = None


DeviceLookup = Callable[[str], DeviceRecord | None]


def process_message(
    topic: str, payload: bytes, lookup: DeviceLookup, catalog: Catalog, now: datetime,
    *, redelivered: bool = False,
) -> Accepted | Rejected:
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
    if refused:
        event = event.model_copy(update={"data": TelemetryData(signals=good)})
    refusals = tuple(sorted([*envelope.refused, *refused], key=lambda r: r.index))
    return Accepted(event, device.vehicle_id, topic, payload, redelivered, refusals)
