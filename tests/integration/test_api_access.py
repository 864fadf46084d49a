"""Who may read what through the data API: every route against every kind of caller (a BOLA
matrix built from the app's own routes), licences enforced on every read, the access log."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from registry.accounts import set_password
from registry.developers import add_developer
from registry.keys import create_developer_key, create_personal_token, revoke_key
from registry.store import enroll_vehicle
from rewards import service, store
from rewards.bylaws import Purpose, parse_bylaws
from rewards.settings import RewardsSettings
from rewards.weeks import Week
from simulators.fleet import make_fleet
from tests.fixtures.helpers import register, store_drives

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "bylaws.toml"


def open_bylaws(admission="open", strike='called_by = "member-vote"\nquorum_bps = 3334'):
    text = EXAMPLE.read_text().replace('admission = "approval"', f'admission = "{admission}"')
    text = text.replace('privileges = ["non-location"]', 'privileges = ["non-location", "location"]')
    text = text.replace('called_by = "member-vote"', strike.split("\n")[0])
    if "quorum" not in strike:
        text = text.replace("quorum_bps = 3334", "")
    return parse_bylaws(text, network_fee_bps=500)


@dataclass
class World:
    client: TestClient
    url: str
    a: UUID  # vehicle in union "lakeside", owned by owner0
    b: UUID  # vehicle in union "hillside", owned by owner1
    c: UUID  # owner0's second vehicle, in no union (the target of the membership routes)
    spare_licence: UUID  # a licence of union "spare" (operated by spare-op), covering nobody
    tokens: dict[str, str]
    licence: UUID  # dev1's licence over lakeside
    epoch: str  # a closed epoch in which owner0 was paid

    def get(self, who: str | None, path: str, **params):
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.get(path, headers=headers, params=params)


KEY_FILE = Path(tempfile.mkdtemp(prefix="motus-network-key-")) / "network.key"
TERMS = RewardsSettings().terms()


@pytest.fixture(scope="module")
def world(module_database_url):
    url = module_database_url
    cars = make_fleet(2, seed=47, drive_seconds=300)  # several 1-minute buckets, and a trip
    a, b = register(url, cars)
    now = datetime.now(UTC)
    store_drives(url, cars, 300, now)
    key = Ed25519PrivateKey.generate()
    # the world begins last Monday at 00:00 UTC, whatever the weekday today: last week is then a
    # whole closed epoch in which both unions' members were covered every day
    last_week = Week.of(now.date()).shifted(-1)
    before = last_week.start
    tokens: dict[str, str] = {}
    with psycopg.connect(url) as conn:
        lakeside = store.create_union(conn, "lakeside", "op@lakeside.example", open_bylaws(), before)
        hillside = store.create_union(conn, "hillside", "op@hillside.example", open_bylaws(), before)
        store.join(conn, a, lakeside.id, before, admitted=True)
        store.join(conn, b, hillside.id, before, admitted=True)
        devs = {name: add_developer(conn, name, f"{name}@dev.example")
                for name in ("dev1", "dev2", "dev3", "dev4")}
        for dev in devs.values():
            service.top_up(conn, dev, 1_000_000, "seed", before)

        def grant(dev, union, starts, days, scope=("non-location",)):
            return service.grant(conn, union, devs[dev], purpose=Purpose.RESEARCH, scope=scope,
                                 starts=starts, days=days, price_minor=300, key=key, now=min(starts, before))

        licence = grant("dev1", lakeside, before, 30).terms.id
        grant("dev3", hillside, before, 30)
        grant("dev4", lakeside, before, 1)  # ran out last Tuesday
        for name, dev in devs.items():
            tokens[name] = create_developer_key(conn, dev.id, "test", now)[1]
        revoked, tokens["revoked"] = create_developer_key(conn, devs["dev1"].id, "old", now)
        revoke_key(conn, revoked.id, now)
        tokens["owner0"] = create_personal_token(conn, "owner0@test.example", "t", now)[1]
        tokens["owner1"] = create_personal_token(conn, "owner1@test.example", "t", now)[1]
        tokens["operator"] = create_personal_token(conn, "op@hillside.example", "t", now)[1]
        set_password(conn, "owner0@test.example", "correct horse battery", now)
        c = enroll_vehicle(conn, email="owner0@test.example", device_id="owner0-second-car",
                           public_key=bytes(range(32)))
        spare = store.create_union(conn, "spare", "op@spare.example",
                                   open_bylaws("approval", 'called_by = "operator"'), before)
        spare_licence = grant("dev2", spare, before, 30).terms.id
        tokens["spare-op"] = create_personal_token(conn, "op@spare.example", "t", now)[1]
        # last week: A moved, and both unions' licences charged, so both drivers have a payout line
        conn.execute("INSERT INTO movement_proofs (vehicle_id, day, verdict, fixes_used, fixes_dropped,"
                     " checks, reasons) VALUES (%s, %s, 'moved', 10, 0, '{}', '{}')",
                     (a, last_week.first_day))
        service.close_epoch(conn, last_week, TERMS, service.network_key(KEY_FILE), now)
    settings = ApiSettings(database_url=url, network_key_file=KEY_FILE)
    with TestClient(create_app(settings)) as client:
        yield World(client, url, a, b, c, spare_licence, tokens, licence, str(last_week))


IDENTITIES = [None, "revoked", "dev1", "dev2", "dev3", "dev4", "owner0", "owner1", "operator", "spare-op"]
DEVELOPERS = {"dev1", "dev2", "dev3", "dev4"}
DRIVERS = {"owner0", "owner1"}


def _vehicle_read(who):  # reading vehicle A: dev1 under its licence, owner0 as its owner
    return {None: 401, "revoked": 401, "dev1": 200, "owner0": 200}.get(who, 404)


def _person_only(ok):
    return lambda who: 401 if who in (None, "revoked") else 403 if who in DEVELOPERS else ok


def _driver_only(ok):
    return lambda who: 401 if who in (None, "revoked") else ok if who in DRIVERS else 403


def _owner_of_c(ok):  # owner0's vehicle C; another driver is told it does not exist
    return lambda who: {"owner0": ok, "owner1": 404}.get(who, _driver_only(ok)(who))


def _spare_operator(ok):  # union "spare": its operator; any other person is told it does not exist
    return lambda who: 401 if who in (None, "revoked") else 403 if who in DEVELOPERS \
        else ok if who == "spare-op" else 404


#: (method, path) -> expected status per identity. Every route of the app must be listed here.
RULES = {
    ("GET", "/healthz"): lambda who: 200,
    ("GET", "/v1/vehicles"): lambda who: 401 if who in (None, "revoked") else 200,
    ("GET", "/v1/vehicles/{vehicle_id}/signals/latest"): _vehicle_read,
    ("GET", "/v1/vehicles/{vehicle_id}/signals/{name}/series"): _vehicle_read,
    ("GET", "/v1/vehicles/{vehicle_id}/trips"): _vehicle_read,
    ("GET", "/v1/vehicles/{vehicle_id}/days"): _vehicle_read,
    ("GET", "/v1/me/access-log"): _driver_only(200),
    ("POST", "/v1/me/tokens"): _person_only(201),
    ("DELETE", "/v1/auth/session"): _person_only(204),
    ("POST", "/v1/auth/session"): lambda who: 401,  # the body's password is wrong, whoever asks
    ("GET", "/v1/me/knob"): _driver_only(200),
    ("PUT", "/v1/me/knob"): _driver_only(200),
    ("GET", "/v1/me/vehicles/{vehicle_id}/membership"): _owner_of_c(200),
    # C asks to join "spare" (admission by approval: a request, no coverage), leaves, pauses
    ("PUT", "/v1/me/vehicles/{vehicle_id}/membership"): _owner_of_c(200),
    ("DELETE", "/v1/me/vehicles/{vehicle_id}/membership"): _owner_of_c({200, 409}),
    ("PUT", "/v1/me/vehicles/{vehicle_id}/membership/paused"): _owner_of_c({200, 409}),
    ("GET", "/v1/me/statement"): _driver_only(200),
    ("GET", "/v1/me/payouts/{epoch}/proof"): _driver_only(200),  # both drivers were paid last week
    ("GET", "/v1/me/export"): _driver_only(200),
    # deleting a driver's telemetry is exercised in its own database (test_api_revocation.py)
    ("DELETE", "/v1/me/telemetry"): lambda who: None if who in DRIVERS else _driver_only(200)(who),
    ("GET", "/v1/unions/{slug}"): _spare_operator(200),
    ("POST", "/v1/unions/{slug}/licences"): _spare_operator(201),
    ("DELETE", "/v1/unions/{slug}/licences/{licence_id}"): _spare_operator(200),
    ("PUT", "/v1/unions/{slug}/strike"): _spare_operator(200),
}

BODIES = {
    ("POST", "/v1/auth/session"): {"email": "owner0@test.example", "password": "wrong password!"},
    ("POST", "/v1/me/tokens"): {"label": "x"},
    ("PUT", "/v1/me/knob"): {"level": "vehicle"},
    ("PUT", "/v1/me/vehicles/{vehicle_id}/membership"): {"union": "spare"},
    ("PUT", "/v1/me/vehicles/{vehicle_id}/membership/paused"): {"paused": True},
    ("POST", "/v1/unions/{slug}/licences"): {"developer": "dev2", "purpose": "research", "scope": ["speed"],
                                             "price_minor": 300},
    ("PUT", "/v1/unions/{slug}/strike"): {"on": True, "reason": "test"},
}


def _request(world: World, who, method, path):
    now = datetime.now(UTC)
    vehicle = world.c if path.startswith("/v1/me/vehicles/") else world.a
    concrete = path.format(vehicle_id=vehicle, name="speed", epoch=world.epoch, slug="spare",
                           licence_id=world.spare_licence)
    params = {"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat(), "interval": "1m"} \
        if path.endswith(("/series", "/trips")) else {}
    if path.endswith("/days"):
        params = {"from": str(now.date() - timedelta(days=14)), "to": str(now.date())}
    headers = {"Authorization": f"Bearer {world.tokens[who]}"} if who else {}
    return world.client.request(method, concrete, headers=headers, params=params,
                                json=BODIES.get((method, path)))


def test_every_route_has_an_access_rule(world):
    # the routes as the app publishes them (routers included), and the one outside the routers
    paths = world.client.get("/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    routes |= {(method, r.path) for r in world.client.app.routes
               if isinstance(r, APIRoute) and r.include_in_schema for method in r.methods or ()}
    assert routes == set(RULES)  # a new route must say here who may call it
    for public in ("/docs", "/redoc", "/openapi.json"):  # and the documentation stays public
        assert world.client.get(public).status_code == 200


MATRIX = [(route, who) for route in sorted(RULES) for who in IDENTITIES if RULES[route](who) is not None]


@pytest.mark.parametrize(("route", "who"), MATRIX,
                         ids=[f"{r[0]} {r[1]} as {w or 'anonymous'}" for r, w in MATRIX])
def test_bola_matrix(world, route, who):
    response = _request(world, who, *route)
    expected = RULES[route](who)
    assert response.status_code in (expected if isinstance(expected, set) else {expected}), response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == response.status_code and problem["detail"]


def test_a_developer_sees_only_the_vehicles_licensed_to_them(world):
    listed = {k: [v["vehicle_id"] for v in world.get(k, "/v1/vehicles").json()["vehicles"]]
              for k in ("dev1", "dev2", "dev3", "dev4", "owner0")}
    assert listed == {"dev1": [str(world.a)], "dev2": [], "dev3": [str(world.b)], "dev4": [],
                      "owner0": sorted([str(world.a), str(world.c)])}


def test_signals_outside_the_licence_are_refused_and_never_served(world):
    body = world.get("dev1", f"/v1/vehicles/{world.a}/signals/latest").json()
    names = {s["name"] for s in body["signals"]}
    assert "speed" in names and "currentLocationCoordinates" not in names  # a non-location licence
    refused = world.get("dev1", f"/v1/vehicles/{world.a}/signals/latest", name="currentLocationCoordinates")
    assert refused.status_code == 403 and "currentLocationCoordinates" in refused.json()["detail"]
    own = world.get("owner0", f"/v1/vehicles/{world.a}/signals/latest").json()
    assert "currentLocationCoordinates" in {s["name"] for s in own["signals"]}  # the owner sees all


def test_every_read_is_in_the_drivers_access_log(world):
    before = world.get("owner0", "/v1/me/access-log").json()["entries"]
    read = world.get("dev1", f"/v1/vehicles/{world.a}/signals/latest", name="speed")
    assert read.status_code == 200
    after = world.get("owner0", "/v1/me/access-log").json()["entries"]
    assert len(after) == len(before) + 1
    entry = after[0]
    assert (entry["developer"], entry["vehicle_id"], entry["signals"], entry["rows"], entry["purpose"],
            entry["licence_id"]) == ("dev1", str(world.a), ["speed"], 1, "research", str(world.licence))
    assert entry["api_key_id"].startswith("key_")
    other = world.get("owner1", "/v1/me/access-log").json()["entries"]
    assert all(e["vehicle_id"] != str(world.a) for e in other)
    world.get("owner0", f"/v1/vehicles/{world.a}/signals/latest")  # the owner's own reads are free
    assert len(world.get("owner0", "/v1/me/access-log").json()["entries"]) == len(after)


def test_series_aggregates_raw_readings_and_pages(world):
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
    params = {"from": start.isoformat(), "to": (now + timedelta(minutes=1)).isoformat(), "interval": "1m"}
    with psycopg.connect(world.url) as conn:
        raw = conn.execute("SELECT max(value), count(*) FROM signals_numeric WHERE vehicle_id = %s"
                           " AND name = 'speed'", (world.a,)).fetchone()
    assert raw is not None
    body = world.get("dev1", f"/v1/vehicles/{world.a}/signals/speed/series", agg="max", **params).json()
    assert body["source"] == "raw" and body["licence_id"] == str(world.licence)
    assert max(p["value"] for p in body["points"]) == pytest.approx(raw[0])
    first = world.get("dev1", f"/v1/vehicles/{world.a}/signals/speed/series", agg="max", limit=1,
                      **params).json()
    assert len(first["points"]) == 1 and first["next_cursor"]
    second = world.get("dev1", f"/v1/vehicles/{world.a}/signals/speed/series", agg="max", limit=1,
                       cursor=first["next_cursor"], **params).json()
    assert second["points"][0]["t"] > first["points"][0]["t"]
    location = world.get("owner0", f"/v1/vehicles/{world.a}/signals/currentLocationCoordinates/series",
                         agg="last", **params).json()
    assert {"latitude", "longitude"} <= set(location["points"][-1]["value"])


def test_series_uses_the_hourly_rollups_where_the_interval_allows(world):
    with psycopg.connect(world.url, autocommit=True) as conn:
        conn.execute("SELECT motus_refresh_rollups(now() + interval '2 hours')")
        row = conn.execute("SELECT avg(value) FROM signals_numeric WHERE vehicle_id = %s"
                           " AND name = 'speed'", (world.a,)).fetchone()
    assert row is not None
    expected = row[0]
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    params = {"from": (hour - timedelta(hours=2)).isoformat(), "to": (hour + timedelta(hours=1)).isoformat()}
    body = world.get("owner0", f"/v1/vehicles/{world.a}/signals/speed/series", interval="1h", agg="avg",
                     **params).json()
    assert body["source"] == "rollups"
    values = [p["value"] for p in body["points"]]
    if len(values) == 1:  # the drive did not cross an hour
        assert values[0] == pytest.approx(expected)


@pytest.mark.parametrize(("params", "fragment"), [
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "31 days"),
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "before"),
    ({"from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00"}, "time zone"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "interval": "7s"}, "interval"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "agg": "mode"}, "aggregated"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "cursor": "%%%"}, "cursor"),
    ({"from": "yesterday", "to": "2026-01-02T00:00:00Z"}, "from"),
    ({"to": "2026-01-02T00:00:00Z"}, "from"),
])
def test_bad_series_requests_get_a_problem_not_a_500(world, params, fragment):
    response = world.get("dev1", f"/v1/vehicles/{world.a}/signals/speed/series", **params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]


def test_bad_keys_are_told_apart(world):
    def status_and_detail(token):
        r = world.client.get("/v1/vehicles", headers={"Authorization": f"Bearer {token}"})
        return r.status_code, r.json()["detail"]

    assert status_and_detail("sk_live_nope")[1].startswith("an API key starts with")
    mistyped = world.tokens["dev1"][:-1] + ("A" if world.tokens["dev1"][-1] != "A" else "B")
    assert "checksum" in status_and_detail(mistyped)[1]
    assert "revoked" in status_and_detail(world.tokens["revoked"])[1]
    assert world.client.get("/v1/vehicles").headers["www-authenticate"].startswith("Bearer")


def test_a_driver_signs_in_and_mints_a_token(world):
    client = TestClient(world.client.app)
    assert client.post("/v1/auth/session", json={"email": "owner0@test.example",
                                                  "password": "nope"}).status_code == 401
    signed = client.post("/v1/auth/session", json={"email": "owner0@test.example",
                                                   "password": "correct horse battery"})
    assert signed.status_code == 204
    assert "httponly" in signed.headers["set-cookie"].lower()
    minted = client.post("/v1/me/tokens", json={"label": "laptop"})
    assert minted.status_code == 201
    token = minted.json()["token"]
    assert world.client.get(f"/v1/vehicles/{world.a}/signals/latest",
                            headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.delete("/v1/auth/session").status_code == 204
    assert client.get("/v1/vehicles").status_code == 401


def test_the_openapi_document_declares_both_ways_to_sign_in(world):
    document = world.client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == "bearer" and schemes["session"]["in"] == "cookie"
    assert json.dumps(document).count("application/problem+json") >= 5


def test_motus_api_openapi_prints_the_whole_document(world):
    from typer.testing import CliRunner

    from motus.cli import app

    result = CliRunner().invoke(app, ["api", "openapi"], env={"MOTUS_DATABASE_URL": world.url})
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert {path for _, path in RULES} <= set(document["paths"])
    assert document == world.client.get("/openapi.json").json()


def test_trips_show_places_only_with_the_location_privilege(world):
    now = datetime.now(UTC)
    params = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}
    own = world.get("owner0", f"/v1/vehicles/{world.a}/trips", **params).json()
    licensed = world.get("dev1", f"/v1/vehicles/{world.a}/trips", **params).json()
    assert len(own["trips"]) == len(licensed["trips"]) >= 1
    trip = own["trips"][0]
    assert trip["duration_s"] >= 240 and trip["distance_km"] > 0
    assert trip["start_place"] is not None and trip["end_place"] is not None
    assert all(t["start_place"] is None and t["end_place"] is None for t in licensed["trips"])
    assert licensed["trips"][0]["distance_km"] == trip["distance_km"]
    log = world.get("owner0", "/v1/me/access-log").json()["entries"][0]
    assert "currentLocationCoordinates" not in log["signals"] and "speed" in log["signals"]


def test_the_daily_summary_counts_proven_days(world):
    today = datetime.now(UTC).date()
    body = world.get("dev1", f"/v1/vehicles/{world.a}/days", **{"from": str(today - timedelta(days=14)),
                                                              "to": str(today)}).json()
    assert body["proven_days"] == 1 and [d["day"] for d in body["days"] if d["proven"]] == [
        str(Week.parse(world.epoch).first_day)]
    backwards = world.get("dev1", f"/v1/vehicles/{world.a}/days", **{"from": str(today), "to": "2020-01-01"})
    assert backwards.status_code == 400
