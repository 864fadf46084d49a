"""Pure: one committed batch -> the receipt each device gets (docs/protocol.md, "Receipts").

Every accepted event of the batch is stored once the transaction committed (now, or before for
a copy); an event refused for good is settled too, with its reason, when the refusal can be
pinned on the device that published it: its topic names that device and its id parses.
"""

from __future__ import annotations

from collections.abc import Iterable

from ingest.pipeline import Accepted, Rejected
from protocol.envelope import split_event_id
from protocol.errors import TopicError
from protocol.receipts import ReceiptBuilder, encode_receipt
from protocol.topics import parse_device_topic


def _publisher(rejected: Rejected) -> tuple[str, str, int] | None:
    """(device, boot, seq) of a refused event, if the device that published it can be named."""
    if rejected.event_id is None:
        return None
    try:
        device, _channel = parse_device_topic(rejected.topic)
    except TopicError:
        return None
    parts = split_event_id(rejected.event_id)
    if device != rejected.device_id or parts is None:
        return None
    return (device, *parts)


def batch_receipts(accepted: Iterable[Accepted], refused: Iterable[Rejected]) -> dict[str, bytes]:
    """Device id -> its receipt payload, for a batch that committed ``accepted`` (stored now
    or before) and quarantined ``refused``."""
    builders: dict[str, ReceiptBuilder] = {}
    for event in accepted:
        device, boot, seq = event.key
        builders.setdefault(device, ReceiptBuilder()).add_stored(boot, seq)
    for rejected in refused:
        who = _publisher(rejected)
        if who is not None:
            device, boot, seq = who
            builders.setdefault(device, ReceiptBuilder()).add_refused(boot, seq, str(rejected.reason))
    return {device: encode_receipt(builder.boots()) for device, builder in sorted(builders.items())}
