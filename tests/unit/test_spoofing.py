"""The spoofing scenarios plant exactly the inconsistency they name, in events the ingest accepts."""

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from movement import proof as movement
from protocol.catalog import load_catalog
from protocol.envelope import Location, parse_json_object, validate_event
from protocol.signing import verify_document
from protocol.validation import check_readings
from simulators.spoofing import SPOOFS, Scenario, honest_drives

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def haversine_km(a: Location, b: Location) -> float:
    return movement.haversine_km(a.latitude, a.longitude, b.latitude, b.longitude)


def series(scenario: Scenario, boot: str | None = None) -> list[dict[str, Any]]:
    """Per event: time and the values of its readings, checked as the ingest checks them."""
    out = []
    for car, topic, payload in scenario.events:
        document = parse_json_object(payload)
        verify_document(document, topic, car.public_key)
        event = validate_event(document)
        check_readings(event, load_catalog(), NOW)
        if boot is None or event.boot_id == boot:
            out.append({"time": event.time, "boot": event.boot_id, "device": event.source,
                        **{r.name: r.value for r in event.data.signals}})
    return out


@pytest.fixture(scope="module")
def spoofs() -> dict[str, Scenario]:
    return {name: make(START) for name, make in SPOOFS.items()}


def test_teleport_implies_an_impossible_speed(spoofs):
    rows = series(spoofs["gps_teleport"])
    jumps = [haversine_km(a["currentLocationCoordinates"], b["currentLocationCoordinates"]) * 3600
             for a, b in itertools.pairwise(rows)]
    assert max(jumps) > 100_000  # km/h
    assert sorted(jumps)[-2] < 200  # one jump, otherwise an ordinary drive


def test_replayed_trip_repeats_an_earlier_day_value_for_value(spoofs):
    rows = series(spoofs["replayed_trip"])
    boots = sorted({r["boot"] for r in rows})
    first, second = ([r for r in rows if r["boot"] == b] for b in boots)
    assert [r["speed"] for r in first] == [r["speed"] for r in second]
    assert (second[0]["time"] - first[0]["time"]).days == 1


def test_clone_is_one_device_in_two_places_at_once(spoofs):
    rows = series(spoofs["cloned_device"])
    assert len({r["device"] for r in rows}) == 1 and len({r["boot"] for r in rows}) == 2
    by_time: dict[datetime, list[Location]] = {}
    for r in rows:
        by_time.setdefault(r["time"], []).append(r["currentLocationCoordinates"])
    apart = [haversine_km(*places) for places in by_time.values() if len(places) == 2]
    assert len(apart) == 600 and min(apart) > 100


def test_rollback_makes_the_odometer_go_backwards(spoofs):
    odometer = [r["powertrainTransmissionTravelledDistance"] for r in series(spoofs["odometer_rollback"])]
    drops = [b - a for a, b in itertools.pairwise(odometer) if b < a]
    assert len(drops) == 1 and drops[0] < -19_000


def test_parked_car_reports_speed_without_moving(spoofs):
    rows = series(spoofs["fake_speed_parked"])
    assert min(r["speed"] for r in rows) >= 90
    assert len({(r["currentLocationCoordinates"].latitude, r["currentLocationCoordinates"].longitude)
                for r in rows}) == 1
    assert len({r["powertrainTransmissionTravelledDistance"] for r in rows}) == 1


def test_farm_devices_share_one_trace(spoofs):
    rows = series(spoofs["emulator_farm"])
    devices = sorted({r["device"] for r in rows})
    assert len(devices) == 5
    traces = [[r["speed"] for r in rows if r["device"] == d] for d in devices]
    assert all(trace == traces[0] for trace in traces)
    assert max(traces[0]) > 50


def test_honest_drives_tell_one_story():
    for scenario in honest_drives(START):
        rows = series(scenario)
        odometer = [r["powertrainTransmissionTravelledDistance"] for r in rows]
        gps_km = sum(haversine_km(a["currentLocationCoordinates"], b["currentLocationCoordinates"])
                     for a, b in itertools.pairwise(rows))
        travelled = odometer[-1] - odometer[0]
        assert travelled > 1.0, scenario.name
        assert all(b >= a for a, b in itertools.pairwise(odometer))
        assert gps_km == pytest.approx(travelled, rel=0.02, abs=0.01), scenario.name
