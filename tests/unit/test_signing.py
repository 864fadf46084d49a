import json
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol import jcs
from protocol.envelope import (
    SignalReading,
    TelemetryEvent,
    build_event,
    parse_json_object,
    validate_event,
)
from protocol.errors import Reason, RejectedMessage, SignatureError
from protocol.signing import (
    canonical_json,
    device_id_for,
    private_key_from_seed,
    public_key_bytes,
    sign_event,
    signing_input,
    verify_document,
)
from protocol.timefmt import format_timestamp, parse_timestamp
from protocol.topics import telemetry_topic
from simulators.fleet import encode

KEY = private_key_from_seed(bytes(range(32)))
PUBLIC = public_key_bytes(KEY)
DEVICE = device_id_for(PUBLIC)
TOPIC = telemetry_topic(DEVICE)

moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1),
                       timezones=st.just(UTC))
numbers = st.floats(min_value=-(2**53), max_value=2**53, exclude_min=True, exclude_max=True)
values = st.one_of(numbers, st.integers(-(2**53) + 1, 2**53 - 1).map(float),
                   st.text(max_size=40).filter(lambda t: "\x00" not in t))
readings = st.builds(SignalReading, name=st.sampled_from(["speed", "obdDTCList", "x"]),
                     timestamp=moments, value=values)
events = st.builds(
    build_event, device_id=st.just(DEVICE),
    boot_id=st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
    seq=st.integers(0, 2**63 - 1), time=moments, signals=st.lists(readings, min_size=1, max_size=5),
)


def wire(event: TelemetryEvent, topic: str = TOPIC) -> bytes:
    return encode(sign_event(event, topic, KEY))


def verify_wire(payload: bytes, topic: str = TOPIC) -> TelemetryEvent:
    document = parse_json_object(payload)
    event = validate_event(document)
    verify_document(document, topic, PUBLIC)
    return event


@given(events)
def test_signed_event_round_trips_exactly(event):
    payload = wire(event)
    back = verify_wire(payload)
    assert back.model_dump(exclude={"signature"}) == event.model_dump(exclude={"signature"})
    assert encode(back.to_wire()) == payload  # same bytes after a parse/serialize cycle


@settings(max_examples=300)
@given(events, st.data())
def test_any_changed_byte_is_refused(event, data):
    payload = bytearray(wire(event))
    position = data.draw(st.integers(0, len(payload) - 1))
    flip = data.draw(st.integers(1, 255))
    payload[position] ^= flip
    try:
        document = parse_json_object(bytes(payload))
        validate_event(document)
    except RejectedMessage:
        return  # refused before the signature: also a refusal
    # Some flips leave an equivalent document (e.g. whitespace); only those may verify.
    try:
        verify_document(document, TOPIC, PUBLIC)
    except SignatureError:
        return
    assert canonical_json(document) == canonical_json(parse_json_object(wire(event)))


@given(events, st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{2,20}", fullmatch=True))
def test_moving_an_event_to_another_topic_is_refused(event, other_device):
    assume(other_device != DEVICE)
    with pytest.raises(SignatureError):
        verify_wire(wire(event), telemetry_topic(other_device))


@given(events, st.integers(0, 2**63 - 1))
def test_changing_the_id_is_refused(event, other_seq):
    assume(other_seq != event.seq)
    document = json.loads(wire(event))
    document["id"] = f"{event.boot_id}:{other_seq}"
    with pytest.raises(SignatureError):
        verify_document(document, TOPIC, PUBLIC)


def test_signature_from_another_key_is_refused():
    event = build_event(device_id=DEVICE, boot_id="b", seq=1, time=datetime.now(UTC),
                        signals=[SignalReading(name="speed", timestamp=datetime.now(UTC), value=3)])
    other = private_key_from_seed(bytes(32))
    document = sign_event(event, TOPIC, other)
    with pytest.raises(SignatureError, match="does not match"):
        verify_document(document, TOPIC, PUBLIC)


@pytest.mark.parametrize(("signature", "reason", "message"), [
    (None, Reason.MISSING_SIGNATURE, "no signature"),
    (12, Reason.BAD_SIGNATURE, "base64 string"),
    ("!!!", Reason.BAD_SIGNATURE, "not valid base64"),
    ("AAAA", Reason.BAD_SIGNATURE, "64 bytes"),
])
def test_malformed_signatures_name_what_is_wrong(signature, reason, message):
    document = {"specversion": "1.0"}
    if signature is not None:
        document["signature"] = signature
    with pytest.raises(SignatureError, match=message) as caught:
        verify_document(document, TOPIC, PUBLIC)
    assert caught.value.reason is reason


def test_signing_input_is_domain_topic_and_canonical_json():
    document = {"b": 1, "a": [1.0, "x"], "signature": "ignored"}
    assert signing_input("t/1", document) == b'motus-telemetry-sig-v1\nt/1\n{"a":[1,"x"],"b":1}'


@given(moments)
def test_timestamps_round_trip(moment):
    assert parse_timestamp(format_timestamp(moment)) == moment


@pytest.mark.parametrize("text", ["2026-11-21T08:30:00+00:00", "2026-11-21 08:30:00Z",
                                  "2026-11-21T08:30:00.1234567891Z", "2026-11-21T08:30:00",
                                  "2026-11-21T08:30:00.Z"])
def test_timestamps_other_than_rfc3339_utc_z_are_refused(text):
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp(text)


@pytest.mark.parametrize(("text", "microsecond"), [
    ("2024-06-11T15:30:00.123456789Z", 123456),  # Go's RFC3339Nano, as DIMO's producers send
    ("2024-06-11T15:30:00.999999999Z", 999999),  # cut, never rounded into the next second
    ("2024-06-11T15:30:00.1234567Z", 123456),
    ("2024-06-11T15:30:00.5Z", 500000),
])
def test_up_to_nine_fractional_digits_are_kept_to_the_microsecond(text, microsecond):
    moment = parse_timestamp(text)
    assert (moment.second, moment.microsecond) == (0, microsecond)


@pytest.mark.parametrize("value", [1718119800, 1718119800000, 1718119800.5])
def test_epoch_numbers_are_not_timestamps(value):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="RFC 3339 strings"):
        SignalReading(name="speed", timestamp=value, value=1)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), 2.0**53, "a\x00b", "x" * 1025,
                                   [1]])
def test_values_that_cannot_travel_are_refused(value):
    with pytest.raises(ValueError):
        SignalReading(name="speed", timestamp=datetime.now(UTC), value=value)


def test_device_ids_are_stable_and_topic_safe():
    assert device_id_for(PUBLIC) == DEVICE
    assert telemetry_topic(DEVICE) == f"motus/v1/devices/{DEVICE}/telemetry"
    assert device_id_for(public_key_bytes(private_key_from_seed(bytes(32)))) != DEVICE


def test_event_time_bounds_use_the_given_clock():
    from protocol.catalog import load_catalog
    from protocol.validation import check_readings

    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    at = now - timedelta(days=91)
    event = build_event(device_id=DEVICE, boot_id="b", seq=1, time=at,
                        signals=[SignalReading(name="speed", timestamp=at, value=3)])
    with pytest.raises(RejectedMessage) as caught:
        check_readings(event, load_catalog(), now)
    assert caught.value.reason is Reason.TIMESTAMP_OUT_OF_BOUNDS
    check_readings(event, load_catalog(), now - timedelta(days=2))  # 89 days old then: fine


# protocol.jcs: the C-speed canonicalizer equals the reference, RFC 8785, byte for byte ------

_json_scalars = (
    st.none() | st.booleans() | st.text()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, 1e-4, 9.999e-5, 1e16, 9.999999999999998e15, 1e21, 5e-324, 0.1 + 0.2])
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (st.lists(children, max_size=5)
                      | st.dictionaries(st.text(max_size=6), children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=600, deadline=None)
@given(_json_values)
def test_fast_canonical_json_equals_the_reference(value):
    try:
        expected = bytes(rfc8785.dumps(value))
    except Exception as exc:  # the reference refuses it (a lone surrogate): so must we
        with pytest.raises(type(exc)):
            jcs.dumps(value)
        return
    assert jcs.dumps(value) == expected


def test_fast_canonical_json_on_what_the_reference_spells_differently_from_python():
    # RFC 8785 section 3.2.2.3 prints numbers as ECMAScript does; section 3.2.3 sorts keys by
    # UTF-16 code units (U+E000 sorts after U+10000's surrogates there, before it in Python).
    for value in ({"\ue000": 1, "\U00010000": 2}, [50.0, -0.0, 1e-7, 1e21, 123456789012345680000.0],
                  {"s": "\u2028\x7f\x1f\"\\"}):
        assert jcs.dumps(value) == bytes(rfc8785.dumps(value))


@settings(max_examples=600, deadline=None)
@given(_json_values.filter(lambda v: isinstance(v, dict)), st.booleans())
def test_documents_parsed_plain_canonicalize_like_the_reference(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    document = jcs.loads(text)
    try:
        expected = bytes(rfc8785.dumps(document))
    except Exception as exc:
        with pytest.raises(type(exc)):
            jcs.dumps(dict(document), plain=isinstance(document, jcs.PlainObject))
        return
    assert jcs.dumps(dict(document), plain=isinstance(document, jcs.PlainObject)) == expected


def test_a_received_event_is_parsed_plain():
    from protocol.envelope import parse_json_object

    at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    event = build_event(device_id="car-1", boot_id="b", seq=1, time=at,
                        signals=[SignalReading(name="speed", timestamp=at, value=50.0)])
    document = parse_json_object(encode(sign_event(event, telemetry_topic("car-1"), KEY)))
    assert isinstance(document, jcs.PlainObject)
    value = document["data"]["signals"][0]["value"]
    assert value == 50 and isinstance(value, int)
