"""The fast path (protocol.common_event, via ingest.pipeline) against the full path: for any
message, the fast path says nothing or exactly what the full path says."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import rfc8785
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ingest.pipeline import Accepted, _fast_path, _full_path, process_message
from protocol.catalog import ValueType, load_catalog
from protocol.common_event import _printed_alike, decode_common_event
from protocol.errors import SignatureError
from protocol.signing import sign_document, wire_bytes
from registry.records import DeviceRecord
from simulators.fleet import drive_events, make_fleet
from simulators.hostile import hostile_messages

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
CAR, OTHER = make_fleet(2, seed=11, drive_seconds=30)
VEHICLE = uuid.uuid4()
DEVICES = {c.device_id: DeviceRecord(c.device_id, c.public_key, VEHICLE, False) for c in (CAR, OTHER)}
CATALOG = load_catalog()
SPECS = sorted(CATALOG, key=lambda s: s.name)


def both_paths(topic: str, payload: bytes) -> tuple[Accepted | None, object]:
    """What the fast path accepted (None when it gave way), and the full path's outcome."""
    fast = _fast_path(topic, payload, DEVICES.get, CATALOG, NOW, False)
    return (fast if isinstance(fast, Accepted) else None,
            _full_path(topic, payload, DEVICES.get, CATALOG, NOW, False))


def test_an_agent_event_takes_the_fast_path_with_the_full_paths_outcome():
    for topic, payload in drive_events(CAR, NOW - timedelta(minutes=5), 20):
        fast, full = both_paths(topic, payload)
        assert fast is not None, payload[:200]
        assert fast == full
        assert process_message(topic, payload, DEVICES.get, CATALOG, NOW) == full


def test_no_hostile_message_takes_the_fast_path():
    for message in hostile_messages(CAR, OTHER, NOW):
        assert both_paths(message.topic, message.payload)[0] is None, message.label


def test_a_device_the_fast_path_looked_up_is_not_looked_up_again():
    """An unpaired device is not cached by the registry: one message, one query."""
    topic, payload = next(drive_events(CAR, NOW - timedelta(minutes=5), 1))
    asked: list[str] = []
    unpaired = DeviceRecord(CAR.device_id, CAR.public_key, None, False)

    def lookup(device_id: str) -> DeviceRecord | None:
        asked.append(device_id)
        return unpaired

    outcome = process_message(topic, payload, lookup, CATALOG, NOW)
    assert getattr(outcome, "reason", None) == "unpaired_device"
    assert asked == [CAR.device_id]


def test_a_changed_byte_or_a_moved_topic_leaves_the_fast_path():
    topic, payload = next(drive_events(CAR, NOW - timedelta(minutes=5), 1))
    changed = payload.replace(b'"speed"', b'"Speed"', 1) if b'"speed"' in payload else payload[:-2] + b" }"
    assert decode_common_event(changed, CATALOG, NOW) is None or both_paths(topic, changed)[0] is None
    assert both_paths(OTHER.topic, payload)[0] is None  # the full path says topic_mismatch


# Values around every border the two paths draw: RFC 8785 number forms (integral floats,
# exponents below 1e-4, 2^53), I-JSON bounds, catalog ranges, booleans, types, NUL and escapes;
# most messages are good ones, so that the fast path is taken often.
_EDGE_NUMBERS = [0, 1, -1, 0.0, -0.0, 1.0, 0.5, 1e-4, 9.9e-5, 1e-5, 9.99e-6, 1.5e-6, 1e-7, 123.456, -40.25,
                 2**53 - 1, 2**53, float(2**53), 1e15 + 0.5, 9e15, 1e16, 1e21, 255, 256, 100.0001, 1e300]
NUMBERS = st.one_of(st.sampled_from(_EDGE_NUMBERS), st.integers(-10**6, 10**6),
                    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                    st.floats(allow_nan=False, allow_infinity=False))
TEXTS = st.one_of(st.sampled_from(["P0301", "", "é", "a\\b", 'say "hi"', "x\x00y", "\u2028", "Z" * 1025]),
                  st.text(max_size=20))
PLAIN_TEXTS = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'),
                      max_size=30)
ODD_LOCATIONS = st.fixed_dictionaries(
    {"latitude": NUMBERS, "longitude": NUMBERS},
    optional={"hdop": st.one_of(NUMBERS, st.none()), "altitude": st.just(3)})
GOOD_LOCATIONS = st.fixed_dictionaries(
    {"latitude": st.floats(-90, 90), "longitude": st.floats(-180, 180)},
    optional={"hdop": st.one_of(st.floats(0, 100), st.integers(0, 100))})
ODD_VALUES = st.one_of(NUMBERS, TEXTS, ODD_LOCATIONS, st.booleans(), st.none(),
                       st.lists(st.integers(), max_size=2))


def _stamp(offset_s: float, digits: int) -> str:
    moment = NOW + timedelta(seconds=offset_s)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + ("." + f"{moment.microsecond:06d}123"[:digits] if digits else "") + "Z"


GOOD_STAMPS = st.builds(_stamp, st.floats(-3600, 60), st.integers(0, 9))
STAMPS = st.one_of(
    GOOD_STAMPS, GOOD_STAMPS, GOOD_STAMPS, st.builds(_stamp, st.floats(-9e6, 1e3), st.integers(0, 9)),
    st.sampled_from(["2026-11-21T12:00:00+00:00", "2026-11-21 12:00:00Z", "2025-01-01T00:00:00Z",
                     "2026-11-21T12:10:00Z", "2026-11-21t11:59:00z", "2026-11-21T12:00:00.1234567890Z"]),
    st.integers(1_700_000_000, 1_800_000_000))


def _good_values(spec):
    if spec.type is ValueType.STRING:
        return PLAIN_TEXTS
    if spec.type is ValueType.LOCATION:
        return GOOD_LOCATIONS
    if spec.boolean:
        return st.sampled_from([0, 1])
    low = -1e6 if spec.min is None else spec.min
    high = 1e6 if spec.max is None else spec.max
    return st.one_of(st.floats(low, high), st.integers(int(low), int(high)))


@st.composite
def readings(draw):
    spec = draw(st.sampled_from(SPECS))
    odd = draw(st.integers(0, 9)) == 0
    value = draw(ODD_VALUES if odd else _good_values(spec))
    name = draw(st.sampled_from(["noSuchSignal", "", spec.name])) if odd else spec.name
    reading = {"name": name, "timestamp": draw(STAMPS if odd else GOOD_STAMPS), "value": value}
    if draw(st.integers(0, 30)) == 0:
        reading[draw(st.sampled_from(["unit", "name2"]))] = 1
    return reading


NO_ATTRIBUTES: dict[str, object] = {}
NONE = st.just(NO_ATTRIBUTES)
ATTRIBUTES = st.one_of(NONE, NONE, NONE, st.dictionaries(
    st.sampled_from(["datacontenttype", "subject", "dataschema", "producer", "Bad-Name"]),
    st.one_of(st.just("application/json"), st.text(max_size=5), st.integers(), st.booleans()), max_size=2))


@st.composite
def messages(draw):
    """A signed message, mostly canonical, sometimes written another way after signing."""
    signals = draw(st.lists(readings(), min_size=1, max_size=6) if draw(st.integers(0, 19)) else st.just([]))
    seq = draw(st.one_of(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(2**63 - 3, 2**63 + 3)))
    document = {"specversion": draw(st.sampled_from(["1.0"] * 9 + ["0.3"])), "type": "motus.telemetry.v1",
                "source": CAR.device_id, "id": draw(st.sampled_from([f"b1:{seq}"] * 8 + ["b1:01", "x"])),
                "time": draw(st.one_of(GOOD_STAMPS, GOOD_STAMPS, GOOD_STAMPS, STAMPS)),
                "data": {"signals": signals}, **draw(ATTRIBUTES)}
    try:
        signed = sign_document(document, CAR.topic, CAR.key)
    except SignatureError:  # no canonical form (an integer beyond 2^53): a signature anyway
        signed = {**document, "signature": base64.b64encode(bytes(64)).decode()}
    if draw(st.integers(0, 10)) == 0:
        signed["signature"] = signed["signature"][:-4] + "AA=="  # another 64 bytes
    try:
        canonical = wire_bytes(signed)
    except (ValueError, TypeError):  # not RFC 8785 JSON (an integer beyond 2^53): as Python writes it
        return json.dumps(signed, ensure_ascii=False).encode()
    way = draw(st.sampled_from(["canonical"] * 6 + ["spaced", "ascii_escaped", "unsorted", "float"]))
    if way == "canonical":
        return canonical
    if way == "spaced":
        return json.dumps(signed, ensure_ascii=False).encode()
    if way == "ascii_escaped":
        return json.dumps(signed, separators=(",", ":"), sort_keys=True).encode()
    if way == "float":
        return canonical.replace(b',"value":1}', b',"value":1.0}')
    return json.dumps(dict(reversed(signed.items())), separators=(",", ":")).encode()


@given(st.one_of(st.floats(-(2.0**53), 2.0**53, exclude_min=True, exclude_max=True),
                 st.floats(-1e-3, 1e-3), st.integers(-(2**53) + 1, 2**53 - 1)))
def test_msgspec_prints_numbers_as_rfc_8785_where_the_fast_path_trusts_it(number):
    """The fast path proves a payload canonical by msgspec's printing: it must be RFC 8785's
    for every number it lets through."""
    if isinstance(number, int) or _printed_alike(number):
        assert msgspec.json.encode(number) == rfc8785.dumps(number)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_the_fast_path_says_nothing_or_what_the_full_path_says(payload):
    fast, full = both_paths(CAR.topic, payload)
    event("fast path" if fast is not None else f"full path: {getattr(full, 'reason', 'accepted')}")
    if fast is not None:
        assert fast == full
    assert process_message(CAR.topic, payload, DEVICES.get, CATALOG, NOW) == full
