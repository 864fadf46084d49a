"""MQTT topic names (docs/protocol.md, "Topics").

``motus/v1/devices/{device_id}/telemetry`` carries events (QoS 1);
``motus/v1/devices/{device_id}/status`` is the retained online/offline status set by the LWT;
``motus/v1/devices/{device_id}/receipts`` carries the network's receipts to the device (only ingest
publishes there, only that device subscribes; protocol.receipts);
``motus/v1/devices/{device_id}/commands`` is reserved for messages from the network to the device
(only that device may subscribe to it; no command is defined in v1).
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

from protocol.errors import TopicError

TOPIC_ROOT = "motus/v1/devices"
#: Device ids are one MQTT topic level: no '/', '+', '#' (MQTT 5 section 4.7), kept ASCII and short.
DEVICE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{2,63}"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


class Channel(StrEnum):
    TELEMETRY = "telemetry"
    STATUS = "status"
    RECEIPTS = "receipts"
    COMMANDS = "commands"


def is_device_id(value: str) -> bool:
    return _DEVICE_ID.fullmatch(value) is not None


def device_topic(device_id: str, channel: Channel = Channel.TELEMETRY) -> str:
    if not is_device_id(device_id):
        raise TopicError(f"invalid device id {device_id!r}: must match {DEVICE_ID_PATTERN}")
    return f"{TOPIC_ROOT}/{device_id}/{channel.value}"


def telemetry_topic(device_id: str) -> str:
    return device_topic(device_id, Channel.TELEMETRY)


@lru_cache(maxsize=65536)  # ingest parses each device's topic once per event
def parse_device_topic(topic: str) -> tuple[str, Channel]:
    """Split a device topic into (device id, channel); raise TopicError for anything else."""
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic {topic!r} is not under {TOPIC_ROOT}/")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or not is_device_id(parts[0]):
        raise TopicError(f"topic {topic!r} is not {TOPIC_ROOT}/<device id>/<channel>")
    try:
        channel = Channel(parts[1])
    except ValueError:
        raise TopicError(f"topic {topic!r} has unknown channel {parts[1]!r}") from None
    return parts[0], channel


#: Subscription filter for every device's telemetry.
ALL_TELEMETRY = f"{TOPIC_ROOT}/+/{Channel.TELEMETRY.value}"
#: Every device's receipts topic (what ingest may publish to).
ALL_RECEIPTS = f"{TOPIC_ROOT}/+/{Channel.RECEIPTS.value}"
