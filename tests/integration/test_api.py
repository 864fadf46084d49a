import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from protocol.catalog import load_catalog
from registry.keys import create_personal_token
from simulators.fleet import make_fleet
from tests.fixtures.helpers import register, store_drives

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(database_url):
    car = make_fleet(1, seed=31, drive_seconds=15)[0]
    (vehicle,) = register(database_url, [car])
    now = datetime.now(UTC)
    accepted = store_drives(database_url, [car], 15, now)
    with psycopg.connect(database_url) as conn:  # the owner reads their own car
        token = create_personal_token(conn, "owner0@test.example", "test", now)[1]
    with TestClient(create_app(ApiSettings(database_url=database_url))) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, vehicle, car, accepted[-1]


def test_latest_returns_values_units_and_timestamps(seeded):
    client, vehicle, car, last = seeded
    response = client.get(f"/v1/vehicles/{vehicle}/signals/latest")
    assert response.status_code == 200
    body = response.json()
    assert body["vehicle_id"] == str(vehicle)
    by_name = {s["name"]: s for s in body["signals"]}
    expected = {name: (ts, value) for name, ts, value in last.readings}
    assert set(by_name) == set(expected)
    catalog = load_catalog()
    for name, (ts, value) in expected.items():
        got = by_name[name]
        assert got["unit"] == catalog[name].unit
        assert datetime.fromisoformat(got["timestamp"]) == ts
        if name == "currentLocationCoordinates":
            assert got["value"]["latitude"] == value.latitude
            assert got["privilege"] == "location"
        else:
            assert got["value"] == value
    assert by_name["powertrainTransmissionTravelledDistance"]["value"] == pytest.approx(
        round(car.vehicle.state.odometer_km, 3))


def test_name_filter(seeded):
    client, vehicle, _car, _last = seeded
    response = client.get(f"/v1/vehicles/{vehicle}/signals/latest",
                          params=[("name", "speed"), ("name", "obdEngineLoad")])
    assert [s["name"] for s in response.json()["signals"]] == ["obdEngineLoad", "speed"]


@pytest.mark.parametrize(("path", "status", "fragment"), [
    ("/v1/vehicles/not-a-uuid/signals/latest", 400, "UUID"),
    (f"/v1/vehicles/{uuid.uuid4()}/signals/latest", 404, "no vehicle"),
    ("/v1/vehicles/{vehicle}/signals/latest?name=warpDriveFlux", 400, "warpDriveFlux"),
])
def test_bad_requests_get_clear_4xx(seeded, path, status, fragment):
    client, vehicle, _car, _last = seeded
    response = client.get(path.format(vehicle=vehicle))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["instance"] == path.format(vehicle=vehicle).split("?")[0]
    assert fragment in problem["detail"]


def test_health_and_openapi(seeded):
    client, *_ = seeded
    assert client.get("/healthz").json() == {"status": "ok"}
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/vehicles/{vehicle_id}/signals/latest" in paths


def test_database_down_is_503_not_500(local_stack):
    dead = f"postgresql://motus@127.0.0.1:{local_stack.pg_port}/no_such_database"
    app = create_app(ApiSettings(database_url=dead, api_db_timeout_s=1))
    with TestClient(app) as client:
        response = client.get(f"/v1/vehicles/{uuid.uuid4()}/signals/latest",
                              headers={"Authorization": "Bearer motus_pat_" + "0" * 36})
    assert response.status_code == 503
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
