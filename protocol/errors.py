"""The protocol's errors. Every rejected message names a stable reason code (quarantine key,
metric label); rejections blame the producer (the device or whoever built the message), never
the network.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Stable, documented reason codes (docs/protocol.md, "Rejections")."""

    TOO_LARGE = "too_large"
    MALFORMED_JSON = "malformed_json"
    INVALID_ENVELOPE = "invalid_envelope"
    TOO_MANY_SIGNALS = "too_many_signals"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    #: A reading that is not {name, timestamp, value} of the right shapes (per reading).
    INVALID_READING = "invalid_reading"
    UNKNOWN_SIGNAL = "unknown_signal"
    WRONG_VALUE_TYPE = "wrong_value_type"
    OUT_OF_RANGE = "out_of_range"
    TIMESTAMP_OUT_OF_BOUNDS = "timestamp_out_of_bounds"


class ProtocolError(Exception):
    """Base of the errors of the protocol package."""


class RejectedMessage(ProtocolError):
    """A message the network refuses: a reason code plus a human-readable detail."""

    reason: Reason = Reason.INVALID_ENVELOPE

    def __init__(self, detail: str, reason: Reason | None = None) -> None:
        super().__init__(detail)
        if reason is not None:
            self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


class EventTooLarge(RejectedMessage):
    reason = Reason.TOO_LARGE


class MalformedEvent(RejectedMessage):
    reason = Reason.MALFORMED_JSON


class InvalidEnvelope(RejectedMessage):
    reason = Reason.INVALID_ENVELOPE


class TopicError(RejectedMessage):
    reason = Reason.BAD_TOPIC


class SignatureError(RejectedMessage):
    reason = Reason.BAD_SIGNATURE


class InvalidSignal(RejectedMessage):
    reason = Reason.UNKNOWN_SIGNAL


class ValueOutOfBounds(ProtocolError, ValueError):
    """A reading's value of the right JSON type beyond a protocol limit (reason ``out_of_range``);
    a ValueError so that pydantic reports it as a validation error."""
