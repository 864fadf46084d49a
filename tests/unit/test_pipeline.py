import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.pipeline import Accepted, Rejected, process_message
from ingest.rows import ReadingRows, reading_rows
from protocol.catalog import load_catalog
from registry.records import DeviceRecord
from simulators.fleet import drive_events, encode, make_fleet
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
    assert {m.reason for m in HOSTILE if not m.event_stored} >= {
        "malformed_json", "too_large", "invalid_envelope", "too_many_signals", "bad_signature",
        "missing_signature", "topic_mismatch"}
    assert {m.reason for m in HOSTILE if m.event_stored} == {
        "invalid_reading", "unknown_signal", "out_of_range", "wrong_value_type", "timestamp_out_of_bounds"}


@pytest.mark.parametrize("message", [m for m in HOSTILE if not m.event_stored], ids=lambda m: m.label)
def test_each_hostile_message_is_rejected_whole_with_its_reason(message):
    outcome = run(message.topic, message.payload)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == message.reason, outcome.detail
    assert outcome.payload == message.payload  # kept whole for the quarantine
    assert outcome.detail


@pytest.mark.parametrize("message", [m for m in HOSTILE if m.event_stored], ids=lambda m: m.label)
def test_a_bad_reading_is_refused_on_its_own_and_its_event_accepted(message):
    outcome = run(message.topic, message.payload)
    assert isinstance(outcome, Accepted)
    assert outcome.readings == []
    [refusal] = outcome.refused_readings
    assert (refusal.index, refusal.reason) == (0, message.reason), refusal.detail
    assert refusal.detail.startswith("data.signals.0")


def test_one_bad_reading_costs_only_itself():
    """A Ruptela-like event: many good readings and one glitch; every good one is kept."""
    at = NOW - timedelta(seconds=5)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    readings = [{"name": "speed", "timestamp": stamp, "value": v} for v in range(40)]
    readings.insert(17, {"name": "speed", "timestamp": stamp, "value": "glitch"})
    readings.insert(30, {"name": "chassisAxleRow1WheelLeftTirePressure", "timestamp": stamp, "value": 231.5})
    outcome = run(CAR.topic, encode(signed_with(readings)))
    assert isinstance(outcome, Accepted)
    assert [r.index for r in outcome.refused_readings] == [17]
    assert outcome.refused_readings[0].reason == "wrong_value_type"
    kept = outcome.readings
    assert len(kept) == 41 and kept[29][2] == 231.5  # an integer VSS type keeps its fraction
    assert [value for name, _, value in kept if name == "speed"] == [float(v) for v in range(40)]


def test_every_reading_refused_still_counts_the_event_once():
    at = NOW - timedelta(seconds=5)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    outcome = run(CAR.topic, encode(signed_with([{"name": "speed", "timestamp": stamp, "value": -1},
                                                 {"name": "nope", "timestamp": stamp, "value": 1}])))
    assert isinstance(outcome, Accepted)
    assert outcome.readings == []
    assert [(r.index, r.reason) for r in outcome.refused_readings] == [
        (0, "out_of_range"), (1, "unknown_signal")]


def signed_with(readings: list[dict[str, object]], seq: int = 900) -> dict[str, object]:
    from protocol.envelope import SignalReading, build_event
    from protocol.signing import sign_document

    at = NOW - timedelta(seconds=5)
    event = build_event(device_id=CAR.device_id, boot_id="glitch", seq=seq, time=at,
                        signals=[SignalReading(name="speed", timestamp=at, value=1)])
    document = event.to_wire()
    document["data"] = {"signals": readings}
    return sign_document(document, CAR.topic, CAR.key)


def test_honest_drive_is_accepted_with_its_vehicle():
    start = NOW - timedelta(minutes=10)
    outcomes = [run(t, p) for t, p in drive_events(CAR, start, 30)]
    assert all(isinstance(o, Accepted) and o.vehicle_id == VEHICLE for o in outcomes)
    assert [o.seq for o in outcomes if isinstance(o, Accepted)] == list(range(30))


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


@given(st.sets(st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1),
                            timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                       timezone(timedelta(hours=-8))])), max_size=30))
def test_the_hours_to_roll_up_are_the_utc_hours_of_the_numeric_readings(stamps):
    rows = ReadingRows(numeric_stamps=stamps)
    assert rows.numeric_hours() == sorted(
        {ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for ts in stamps})


def with_attributes(**attributes: object) -> dict[str, object]:
    from protocol.signing import sign_document

    at = NOW - timedelta(seconds=5)
    document = {k: v for k, v in signed_with([{"name": "speed", "timestamp": at.strftime(
        "%Y-%m-%dT%H:%M:%S.123456789Z"), "value": 42}], seq=901).items() if k != "signature"}
    return sign_document({**document, **attributes}, CAR.topic, CAR.key)


def test_optional_and_extension_cloudevents_attributes_are_accepted_and_signed():
    document = with_attributes(subject="0x5e31bBc786D7bEd95216383787deA1ab0f1c1897",
                               dataschema="dimo.zone.status/v2.0", producer="did:nft:137:0xabc_42",
                               dataversion="r1", tokenid=42, live=True)
    outcome = run(CAR.topic, encode(document))
    assert isinstance(outcome, Accepted), outcome
    assert outcome.readings[0][1].microsecond == 123456  # (name, timestamp, value)
    tampered = {**document, "producer": "someone else"}  # the signature covers extensions too
    assert run(CAR.topic, encode(tampered)).reason == "bad_signature"


@pytest.mark.parametrize(("attributes", "says"), [
    ({"vehicleTokenId": 42}, "lower-case letters and digits"),
    ({"extra": {"nested": 1}}, "a string, a 32-bit integer or a boolean"),
    ({"big": 2**40}, "a string, a 32-bit integer or a boolean"),
    ({"subject": ""}, "subject"),
])
def test_attributes_cloudevents_does_not_allow_are_refused_whole(attributes, says):
    outcome = run(CAR.topic, encode(with_attributes(**attributes)))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "invalid_envelope"
    assert says in outcome.detail
