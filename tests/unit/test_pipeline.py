import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ingest.pipeline import Accepted, Rejected, process_message
from ingest.rows import reading_rows
from protocol.catalog import load_catalog
from registry.records import DeviceRecord
from simulators.fleet import drive_events, make_fleet
from simulators.hostile import hostile_messages

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
CAR, OTHER = make_fleet(2, seed=7, drive_seconds=30)
VEHICLE = uuid.uuid4()
DEVICES = {c.device_id: DeviceRecord(c.device_id, c.public_key, VEHICLE, False) for c in (CAR, OTHER)}
HOSTILE = hostile_messages(CAR, OTHER, NOW)


def run(topic, payload, devices=DEVICES):
    return process_message(topic, payload, devices.get, load_catalog(), NOW)


def test_hostile_corpus_is_large_and_covers_every_message_level_reason():
    assert len(HOSTILE) >= 23
    assert {m.reason for m in HOSTILE} >= {
        "malformed_json", "too_large", "invalid_envelope", "too_many_signals", "bad_signature",
        "missing_signature", "topic_mismatch", "unknown_signal",
        "out_of_range", "wrong_value_type", "timestamp_out_of_bounds"}


@pytest.mark.parametrize("message", HOSTILE, ids=lambda m: m.label)
def test_each_hostile_message_is_rejected_with_its_reason(message):
    outcome = run(message.topic, message.payload)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == message.reason, outcome.detail
    assert outcome.payload == message.payload  # kept whole for the quarantine
    assert outcome.detail


def test_honest_drive_is_accepted_with_its_vehicle():
    start = NOW - timedelta(minutes=10)
    outcomes = [run(t, p) for t, p in drive_events(CAR, start, 30)]
    assert all(isinstance(o, Accepted) and o.vehicle_id == VEHICLE for o in outcomes)
    assert [o.event.seq for o in outcomes if isinstance(o, Accepted)] == list(range(30))


def test_unregistered_device_is_unknown():
    topic, payload = next(drive_events(OTHER, NOW - timedelta(minutes=1), 1))
    outcome = run(topic, payload, {})
    assert isinstance(outcome, Rejected) and outcome.reason == "unknown_device"
    assert outcome.device_id == OTHER.device_id


def test_redelivery_flag_is_carried_to_the_store():
    topic, payload = next(drive_events(CAR, NOW - timedelta(minutes=1), 1))
    fresh = run(topic, payload)
    again = process_message(topic, payload, DEVICES.get, load_catalog(), NOW, redelivered=True)
    assert isinstance(fresh, Accepted) and isinstance(again, Accepted)
    assert (fresh.redelivered, again.redelivered) == (False, True)


def test_status_channel_is_not_telemetry():
    topic, payload = next(drive_events(OTHER, NOW - timedelta(minutes=1), 1))
    outcome = run(topic.replace("/telemetry", "/status"), payload)
    assert isinstance(outcome, Rejected) and outcome.reason == "bad_topic"


@pytest.mark.parametrize(("record", "reason"), [
    (DeviceRecord(OTHER.device_id, OTHER.public_key, VEHICLE, revoked=True), "revoked_device"),
    (DeviceRecord(OTHER.device_id, OTHER.public_key, None, revoked=False), "unpaired_device"),
])
def test_device_state_decides(record, reason):
    topic, payload = next(drive_events(OTHER, NOW - timedelta(minutes=1), 1))
    outcome = run(topic, payload, {OTHER.device_id: record})
    assert isinstance(outcome, Rejected)
    assert (outcome.reason, outcome.device_id) == (reason, OTHER.device_id)


def test_rows_split_by_type_and_keep_the_newest_value():
    start = NOW - timedelta(minutes=5)
    accepted = [run(t, p) for t, p in drive_events(OTHER, start, 3)]
    rows = reading_rows(a for a in accepted if isinstance(a, Accepted))
    assert len(rows.location) == 3
    assert len(rows.numeric) == 3 * 9
    assert rows.text == []
    newest = {name: ts for names in rows.latest.values() for name, (ts, _v, _d) in names.items()}
    assert set(newest.values()) == {start + timedelta(seconds=3)}
