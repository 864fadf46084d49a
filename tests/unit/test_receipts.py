"""Receipts: the ranges, the wire form both ways, and what ingest answers for a batch."""

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.pipeline import Rejected
from ingest.receipting import batch_receipts
from protocol.receipts import (
    RECEIPT_TYPE,
    BootReceipt,
    ReceiptBuilder,
    ReceiptError,
    encode_receipt,
    parse_receipt,
    seq_ranges,
)

seqs = st.sets(st.integers(min_value=0, max_value=2**63 - 1), max_size=60)


@given(st.sets(st.integers(min_value=0, max_value=300)) | seqs)
def test_ranges_cover_exactly_the_seqs_and_are_merged(values):
    ranges = seq_ranges(values)
    assert sum(hi - lo + 1 for lo, hi in ranges) == len(values)
    assert all(lo in values and hi in values for lo, hi in ranges)
    assert all(lo <= hi for lo, hi in ranges)
    # sorted, disjoint and not adjacent: nothing left to merge
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ranges))


def test_ranges_of_a_gap():
    assert seq_ranges([5, 0, 1, 2, 2, 7, 6]) == [(0, 2), (5, 7)]


@given(st.dictionaries(st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True),
                       st.tuples(seqs, st.dictionaries(st.integers(0, 10**6), st.sampled_from(
                           ["out_of_range", "bad_signature"]), max_size=5)), max_size=4))
def test_a_receipt_reads_back_as_built(boots):
    builder = ReceiptBuilder()
    for boot, (stored, refused) in boots.items():
        for seq in stored:
            builder.add_stored(boot, seq)
        for seq, reason in refused.items():
            builder.add_refused(boot, seq, reason)
    parsed = parse_receipt(encode_receipt(builder.boots()))
    assert parsed == builder.boots()
    for receipt in parsed:
        stored, refused = boots[receipt.boot]
        assert all(receipt.covers(s) for s in stored | set(refused))


def test_settled_ranges_join_stored_and_refused():
    receipt = BootReceipt("b", stored=[(0, 3), (6, 9)], refused={4: "out_of_range", 5: "bad_signature"})
    assert receipt.settled_ranges() == [(0, 9)]
    assert not BootReceipt("b", stored=[(0, 3)]).covers(4)


@pytest.mark.parametrize(("payload", "says"), [
    (b"not json", "not a receipt"),
    (b'{"type":"motus.receipt.v1"}', "boots"),
    (b'{"type":"motus.receipt.v2","boots":[]}', "unknown receipt type"),
    (b'{"type":"motus.receipt.v1","boots":[{"boot":"a/b","stored":[]}]}', "boots.0.boot"),
    (b'{"type":"motus.receipt.v1","boots":[{"boot":"a","stored":[[5,1]]}]}', "0 <= low <= high"),
    (b'{"type":"motus.receipt.v1","boots":[{"boot":"a","stored":[[-1,1]]}]}', "0 <= low <= high"),
    (b'{"type":"motus.receipt.v1","boots":[{"boot":"a","stored":[["1",2]]}]}', "boots.0.stored"),
])
def test_a_malformed_receipt_is_refused_with_where(payload, says):
    with pytest.raises(ReceiptError, match=says):
        parse_receipt(payload)


def test_members_a_later_version_adds_are_ignored():
    payload = json.dumps({"type": RECEIPT_TYPE, "next": 1,
                          "boots": [{"boot": "a", "stored": [[1, 2]], "extra": True}]}).encode()
    assert parse_receipt(payload) == [BootReceipt("a", [(1, 2)], {})]


TOPIC = "motus/v1/devices/{}/telemetry"


def refusal(device: str, event_id: str | None, *, topic_device: str | None = None,
            reason: str = "out_of_range") -> Rejected:
    return Rejected(TOPIC.format(topic_device or device), b"{}", reason, "detail", device, event_id)


def test_ingest_answers_each_device_with_what_it_stored_and_refused(accepted_events):
    a, b = accepted_events("dev-a", "boot1", [0, 1, 2, 4]), accepted_events("dev-b", "boot9", [7])
    receipts = batch_receipts([*a, *b], [
        refusal("dev-a", "boot1:3"),
        refusal("dev-a", "boot2:0", reason="timestamp_out_of_bounds"),
        refusal("dev-b", "boot9:8", topic_device="dev-c"),  # not published on its own topic
        refusal("dev-b", None, reason="invalid_envelope"),  # no id to settle
        refusal("dev-b", "not an id"),
    ])
    assert set(receipts) == {"dev-a", "dev-b"}
    assert parse_receipt(receipts["dev-a"]) == [
        BootReceipt("boot1", [(0, 2), (4, 4)], {3: "out_of_range"}),
        BootReceipt("boot2", [], {0: "timestamp_out_of_bounds"})]
    assert parse_receipt(receipts["dev-b"]) == [BootReceipt("boot9", [(7, 7)], {})]


@pytest.fixture
def accepted_events():
    """Accepted events of one device and boot, made from one real signed event."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from ingest.pipeline import Accepted

    now = datetime.now(UTC)

    def make(device: str, boot: str, seq_list: list[int]) -> list[Accepted]:
        return [Accepted(device, boot, s, now, [("speed", now, 1.0)], uuid4(),
                         TOPIC.format(device), b"") for s in seq_list]

    return make


def test_a_fleet_tally_counts_exactly_what_receipts_settled():
    from simulators.publisher import ReceiptTally

    tally = ReceiptTally()
    for seq in range(10):
        tally.sent("dev-a", json.dumps({"id": f"b1:{seq}"}).encode())
    tally.sent("dev-a", b'{"id":"b2:0"}')
    tally.sent("dev-b", b'{"id":"b1:3"}')
    tally.heard("dev-a", encode_receipt([BootReceipt("b1", [(0, 2), (5, 6)], {3: "out_of_range"})]))
    tally.heard("dev-a", encode_receipt([BootReceipt("b1", [(6, 8)])]))
    tally.heard("dev-a", b"not a receipt")  # ignored
    tally.heard("dev-c", encode_receipt([BootReceipt("b1", [(3, 3)])]))  # another device's
    assert tally.settled() == (8, 12)  # b1: 0-3 and 5-8; b1:4, b1:9, b2:0, dev-b's 3 are not
