"""The phone bridge: Torque Pro uploads taken from real captures, and the JSON variant."""

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient

from device_agent.agent import DurableSink
from device_agent.events import EventBuilder
from device_agent.spool import Spool
from device_agent.torque import TorqueError, parse_upload
from protocol.envelope import Location, parse_json_object
from protocol.signing import device_id_for, private_key_from_seed, public_key_bytes, verify_document

# Query strings of real Torque Pro uploads (app versions 8 and 9), e-mail and ids anonymised.
CAPTURE_V8 = ("eml=driver@example.com&v=8&session=1574906194609&id=0f607264fc6318a92b9e13c65db7cd3c"
              "&time=1574906292241&kff1005=153.05600033&kff1006=-27.35587294&kff1001=0.0&kff1007=0.0"
              "&kff1239=11.583717&kff1010=51.9071044921875&kff123b=0.0&kff1006=-27.35587294"
              "&kff1005=153.05600033&kff1001=0.0")
CAPTURE_V9 = ("eml=driver@example.com&v=9&session=1705984473000&id=12345&time=1705984473784"
              "&kff1005=-97.74798387412254&kff1006=30.430986729228223&kff1001=0.0"
              "&kff1007=123.46544647216797&kff1223=-0.01&kc=1178.0&kff126b=10.106546831318784"
              "&kff1271=0.04379265942863656")
CAPTURE_META = ("eml=driver@example.com&v=9&session=1705984473000&id=12345"
                "&userUnitff1271=gal&userShortNameff1271=Fuel%20Used&userFullNameff1271=Fuel%20used%20(trip)")
# A capture with glitching sensors: the car's speed and coolant did not answer, GPS speed and
# altitude neither; rpm, heading and the position are good, kff1223 is a sensor we do not map.
CAPTURE_GLITCHES = ("eml=driver@example.com&v=9&session=1705984473000&id=12345&time=1705984473784"
                    "&kff1005=-97.74798387412254&kff1006=30.430986729228223&kff1001="
                    "&kff1007=123.46544647216797&kc=1178.0&k0d=-&k5=inf&kff1010=NaN&kff1223=-0.01")
GLITCHES_REJECTED = [("k0d", "'-' is not a number"), ("k5", "'inf' is not a finite number"),
                     ("kff1001", "'' is not a number"), ("kff1010", "'NaN' is not a finite number")]
TOKEN = "phone-token-0123456789"


def values(query: str) -> dict[str, Any]:
    return {r.name: r.value for r in parse_upload(parse_qsl(query, keep_blank_values=True)).readings}


def test_real_uploads_become_catalog_readings():
    v9 = values(CAPTURE_V9)
    assert v9["powertrainCombustionEngineSpeed"] == 1178.0
    assert v9["currentLocationHeading"] == pytest.approx(123.465, abs=1e-3)
    assert v9["currentLocationCoordinates"].latitude == pytest.approx(30.430986729228223)
    assert v9["speed"] == 0.0  # GPS speed stands in when the car's own speed is not sent
    v8 = values(CAPTURE_V8)  # keys sent twice with the same value are fine
    assert v8["currentLocationAltitude"] == pytest.approx(51.907, abs=1e-3)
    upload = parse_upload(parse_qsl(CAPTURE_V9))
    assert upload.ignored_keys == ["kff1223", "kff126b", "kff1271"]
    assert upload.readings[0].timestamp == datetime(2024, 1, 23, 4, 34, 33, 784000, tzinfo=UTC)


def test_metadata_uploads_hold_no_readings_and_bad_ones_are_named():
    assert values(CAPTURE_META) == {}
    with pytest.raises(TorqueError, match="no time"):
        parse_upload([("kd", "12")])
    with pytest.raises(TorqueError, match="not a number"):
        parse_upload([("time", "soon"), ("kd", "12")])
    with pytest.raises(TorqueError, match="not a moment"):
        parse_upload([("time", "1e15"), ("kd", "12")])  # year 33658
    with pytest.raises(TorqueError, match="different values"):
        parse_upload([("time", "1705984473784"), ("kd", "1"), ("kd", "2")])
    # 0,0 is Torque before a GPS fix; a fix worse than 50 m is left out
    assert "currentLocationCoordinates" not in values("time=1&kff1005=0&kff1006=0")
    assert "currentLocationCoordinates" not in values("time=1&kff1005=2.3&kff1006=48.8&kff1239=400")


def test_bad_values_are_set_aside_one_by_one_and_the_good_ones_kept():
    upload = parse_upload(parse_qsl(CAPTURE_GLITCHES, keep_blank_values=True))
    kept = {r.name: r.value for r in upload.readings}
    assert set(kept) == {"currentLocationHeading", "powertrainCombustionEngineSpeed",
                         "currentLocationCoordinates"}
    assert kept["powertrainCombustionEngineSpeed"] == 1178.0
    location = kept["currentLocationCoordinates"]
    assert isinstance(location, Location) and location.latitude == pytest.approx(30.430986729228223)
    assert upload.rejected == GLITCHES_REJECTED
    assert upload.ignored_keys == ["kff1223"]  # unknown keys are not rejected, whatever they hold
    assert parse_upload(parse_qsl(CAPTURE_V9)).rejected == []
    # too big for a reading, and a position off the Earth: the value goes, the upload stays
    upload = parse_upload([("time", "1705984473784"), ("kd", "1e300"), ("kff1001", "3"),
                           ("kff1005", "200"), ("kff1006", "48.8"), ("kc", "900"), ("kff123b", "x")])
    assert {r.name: r.value for r in upload.readings} == {"powertrainCombustionEngineSpeed": 900.0,
                                                         "speed": 3.0}
    assert [key for key, _ in upload.rejected] == ["kd", "kff1005"]
    assert "outside [-180, 180]" in upload.rejected[1][1]
    # an accuracy that is not a number vouches for nothing: the position is left out
    upload = parse_upload([("time", "1"), ("kff1005", "2.3"), ("kff1006", "48.8"), ("kff1239", "-")])
    assert upload.readings == [] and upload.rejected == [("kff1239", "'-' is not a number")]


@pytest.fixture
def bridge(tmp_path):
    from device_agent.phone_bridge import create_bridge

    key = private_key_from_seed(b"p" * 32)
    device_id = device_id_for(public_key_bytes(key))
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10**7)
    now = datetime(2024, 1, 23, 4, 35, tzinfo=UTC)
    sink = DurableSink(EventBuilder(device_id, key, "b1"), spool, clock=lambda: now)
    with TestClient(create_bridge(TOKEN, sink, clock=lambda: now)) as client:
        yield client, spool, key


def test_torque_upload_is_signed_and_spooled_before_ok(bridge):
    client, spool, key = bridge
    answer = client.get(f"/torque/{TOKEN}?{CAPTURE_V9}")
    assert answer.status_code == 200 and answer.text == "OK!"
    [spooled] = spool.pending(0, 10)
    document = parse_json_object(spooled.payload)
    verify_document(document, spooled.topic, public_key_bytes(key))
    names = {s["name"] for s in document["data"]["signals"]}
    assert {"powertrainCombustionEngineSpeed", "currentLocationCoordinates"} <= names
    assert client.get(f"/torque/{TOKEN}?{CAPTURE_META}").text == "OK!"
    assert spool.stats().events == 1


def test_bridge_refuses_with_clear_errors_and_stores_nothing(bridge):
    client, spool, _ = bridge
    assert client.get(f"/torque/not-the-token-at-all?{CAPTURE_V9}").status_code == 403
    assert client.get(f"/torque/{TOKEN}?kd=1").status_code == 400
    future = {"signals": [{"name": "speed", "timestamp": "2024-01-23T05:00:00Z", "value": 1}]}
    answer = client.post(f"/v1/signals/{TOKEN}", json=future)
    assert answer.status_code == 422 and "ahead" in answer.json()["detail"]
    unknown = {"signals": [{"name": "warpFactor", "timestamp": "2024-01-23T04:34:00Z", "value": 9}]}
    assert "catalog" in client.post(f"/v1/signals/{TOKEN}", json=unknown).json()["detail"]
    assert client.post(f"/v1/signals/{TOKEN}", json={"signals": []}).status_code == 422
    assert spool.stats().events == 0
    good = {"signals": [{"name": "speed", "timestamp": "2024-01-23T04:34:00Z", "value": 42}]}
    answer = client.post(f"/v1/signals/{TOKEN}", json=good)
    assert answer.status_code == 200 and answer.json()["event_ids"] == ["b1:0"]
    assert spool.stats().events == 1


def spooled(spool: Spool) -> dict[str, Any]:
    return {s["name"]: s["value"] for event in spool.pending(0, 100)
            for s in parse_json_object(event.payload)["data"]["signals"]}


def test_torque_upload_with_glitching_sensors_is_ok_and_keeps_the_good_readings(bridge, caplog):
    client, spool, _ = bridge
    with caplog.at_level(logging.WARNING, logger="device_agent.phone_bridge"):
        answer = client.get(f"/torque/{TOKEN}?{CAPTURE_GLITCHES}")
    assert answer.status_code == 200 and answer.text == "OK!"
    assert set(spooled(spool)) == {"currentLocationHeading", "powertrainCombustionEngineSpeed",
                                   "currentLocationCoordinates"}
    assert spooled(spool)["powertrainCombustionEngineSpeed"] == 1178.0
    counters = client.app.state.counters
    assert (counters.uploads, counters.readings_stored, counters.values_dropped) == (1, 3, 4)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    for key, reason in GLITCHES_REJECTED:
        assert f"{key}: {reason}" in warning.getMessage()


def test_torque_value_out_of_range_is_dropped_alone(bridge, caplog):
    client, spool, _ = bridge
    with caplog.at_level(logging.WARNING, logger="device_agent.phone_bridge"):
        answer = client.get(f"/torque/{TOKEN}?time=1705984473784&kd=9999&kc=1178.0")
    assert answer.text == "OK!"
    assert spooled(spool) == {"powertrainCombustionEngineSpeed": 1178.0}  # speed max is 400 km/h
    assert client.app.state.counters.values_dropped == 1
    assert "speed: out_of_range: 9999.0 km/h is outside [0, 400]" in caplog.text
    # nothing usable at all is still an upload Torque must not send again
    assert client.get(f"/torque/{TOKEN}?time=1705984473784&kd=-").text == "OK!"
    assert spool.stats().events == 1
    assert client.get(f"/torque/{TOKEN}?kd=1").status_code == 400  # no time=
    counters = client.app.state.counters
    assert (counters.uploads, counters.readings_stored, counters.values_dropped) == (2, 1, 2)


def test_json_upload_stores_the_good_readings_and_names_the_rejected(bridge):
    client, spool, _ = bridge
    at = "2024-01-23T04:34:00Z"
    body = {"signals": [{"name": "speed", "timestamp": at, "value": 42},
                        {"name": "powertrainCombustionEngineSpeed", "timestamp": at, "value": -5},
                        {"name": "warpFactor", "timestamp": at, "value": 9}]}
    answer = client.post(f"/v1/signals/{TOKEN}", json=body)
    assert answer.status_code == 200
    result = answer.json()
    assert result["stored"] == 1 and result["event_ids"] == ["b1:0"]
    assert [(r["index"], r["name"], r["reason"]) for r in result["rejected"]] == [
        (1, "powertrainCombustionEngineSpeed", "out_of_range"), (2, "warpFactor", "unknown_signal")]
    assert "outside" in result["rejected"][0]["detail"]
    assert spooled(spool) == {"speed": 42.0}
    counters = client.app.state.counters
    assert (counters.uploads, counters.readings_stored, counters.values_dropped) == (1, 1, 2)


def test_json_upload_with_only_bad_readings_is_refused_with_every_reason(bridge):
    client, spool, _ = bridge
    body = {"signals": [{"name": "speed", "timestamp": "2024-01-23T04:34:00Z", "value": 9999},
                        {"name": "speed", "timestamp": "2024-01-23T05:00:00Z", "value": 1}]}
    answer = client.post(f"/v1/signals/{TOKEN}", json=body)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "signals.0 (speed): out_of_range" in detail and "signals.1 (speed): timestamp" in detail
    assert "ahead" in detail
    assert spool.stats().events == 0
    counters = client.app.state.counters
    assert (counters.uploads, counters.readings_stored, counters.values_dropped) == (0, 0, 2)
