"""The phone bridge: Torque Pro uploads taken from real captures, and the JSON variant."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient

from device_agent.agent import DurableSink
from device_agent.events import EventBuilder
from device_agent.spool import Spool
from device_agent.torque import TorqueError, parse_upload
from protocol.envelope import parse_json_object
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
        parse_upload([("time", "1705984473784"), ("kd", "fast")])
    with pytest.raises(TorqueError, match="different values"):
        parse_upload([("time", "1705984473784"), ("kd", "1"), ("kd", "2")])
    # 0,0 is Torque before a GPS fix; a fix worse than 50 m is left out
    assert "currentLocationCoordinates" not in values("time=1&kff1005=0&kff1006=0")
    assert "currentLocationCoordinates" not in values("time=1&kff1005=2.3&kff1006=48.8&kff1239=400")


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
