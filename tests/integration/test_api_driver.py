"""The driver's and the operator's side of the API: the knob, export, deletion, earnings and
payout proofs, licences granted and strikes called by the operator."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from protocol.signing import public_key_bytes
from registry.developers import add_developer
from registry.keys import create_developer_key, create_personal_token
from rewards import service, store
from rewards.bylaws import parse_bylaws
from rewards.receipt import verify_receipt
from rewards.settings import RewardsSettings
from rewards.verifier import verify_payout_proof
from rewards.weeks import Week
from simulators.fleet import make_fleet
from tests.fixtures.helpers import register, store_drives

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "bylaws.toml"


@pytest.fixture
def side(database_url, tmp_path):
    car = make_fleet(1, seed=59, drive_seconds=20)[0]
    (vehicle,) = register(database_url, [car])
    now = datetime.now(UTC)
    store_drives(database_url, [car], 20, now)
    text = EXAMPLE.read_text().replace('admission = "approval"', 'admission = "open"')
    text = text.replace('called_by = "member-vote"', 'called_by = "operator"')
    text = text.replace("quorum_bps = 3334", "")
    before = now - timedelta(days=1)
    with psycopg.connect(database_url) as conn:
        store.create_union(conn, "lakeside", "op@lakeside.example", parse_bylaws(text, network_fee_bps=500),
                           before)
        developer = add_developer(conn, "Road Research", "data@road.example")
        service.top_up(conn, developer, 100_000, "seed", before)
        tokens = {"owner": create_personal_token(conn, "owner0@test.example", "t", now)[1],
                  "operator": create_personal_token(conn, "op@lakeside.example", "t", now)[1],
                  "developer": create_developer_key(conn, developer.id, "t", now)[1]}
    settings = ApiSettings(database_url=database_url, network_key_file=tmp_path / "network.key")
    service.network_key(settings.network_key_file)  # as `motus rewards key` makes it
    with TestClient(create_app(settings)) as client:
        def call(who: str, method: str, path: str, **kwargs):
            return client.request(method, path, headers={"Authorization": f"Bearer {tokens[who]}"}, **kwargs)
        yield call, vehicle, database_url, settings


def test_a_driver_joins_through_the_api_and_an_operator_licenses_and_strikes(side):
    call, vehicle, _, settings = side
    joined = call("owner", "PUT", f"/v1/me/vehicles/{vehicle}/membership", json={"union": "lakeside"})
    assert joined.status_code == 200 and joined.json() == {"vehicle_id": str(vehicle), "union": "lakeside",
                                                           "admitted": True, "paused": False}
    again = call("owner", "PUT", f"/v1/me/vehicles/{vehicle}/membership", json={"union": "lakeside"})
    assert again.status_code == 409 and "already a member" in again.json()["detail"]
    receipt = call("operator", "POST", "/v1/unions/lakeside/licences",
                   json={"developer": "Road Research", "purpose": "research", "scope": ["speed"],
                         "price_minor": 300})
    assert receipt.status_code == 201, receipt.text
    public = public_key_bytes(service.network_key(settings.network_key_file))
    assert verify_receipt(receipt.json(), public) == []
    assert receipt.json()["covered"]["vehicles"] == 1
    refused = call("operator", "POST", "/v1/unions/lakeside/licences",
                   json={"developer": "Road Research", "purpose": "marketing", "scope": ["speed"],
                         "price_minor": 300})
    assert refused.status_code == 409 and "marketing" in refused.json()["detail"]
    path = f"/v1/vehicles/{vehicle}/signals/latest"
    assert call("developer", "GET", path).status_code == 200
    detail = call("operator", "PUT", "/v1/unions/lakeside/strike", json={"on": True, "reason": "pay more"})
    assert detail.status_code == 200 and detail.json()["on_strike"] is True
    assert [m["vehicle_id"] for m in detail.json()["members"]] == [str(vehicle)]
    assert call("developer", "GET", path).status_code == 404  # the very next request
    call("operator", "PUT", "/v1/unions/lakeside/strike", json={"on": False})
    assert call("developer", "GET", path).status_code == 200
    knob = call("owner", "PUT", "/v1/me/knob", json={"level": "private"})
    assert knob.status_code == 200 and knob.json()["level"] == "private"
    assert call("developer", "GET", path).status_code == 404
    call("owner", "PUT", "/v1/me/knob", json={"level": "vehicle"})
    paused = call("owner", "PUT", f"/v1/me/vehicles/{vehicle}/membership/paused", json={"paused": True})
    assert paused.json()["paused"] is True
    assert call("developer", "GET", path).status_code == 404
    call("owner", "PUT", f"/v1/me/vehicles/{vehicle}/membership/paused", json={"paused": False})
    licence = receipt.json()["licence"]["id"]
    revoked = call("operator", "DELETE", f"/v1/unions/lakeside/licences/{licence}")
    assert revoked.status_code == 200 and revoked.json()["running"] is False
    assert call("developer", "GET", path).status_code == 404
    left = call("owner", "DELETE", f"/v1/me/vehicles/{vehicle}/membership")
    assert left.status_code == 200 and left.json()["union"] is None


def test_a_driver_exports_every_reading_then_deletes_them(side):
    call, vehicle, url, _ = side
    with psycopg.connect(url) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {t} WHERE vehicle_id = %s", (vehicle,)).fetchone()
                  for t in ("signals_numeric", "signals_text", "signals_location")]
    readings = sum(c[0] for c in counts if c)
    assert readings > 0
    ndjson = call("owner", "GET", "/v1/me/export")
    assert ndjson.status_code == 200 and ndjson.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in ndjson.text.splitlines()]
    assert len(lines) == readings and {line["vehicle_id"] for line in lines} == {str(vehicle)}
    assert any(isinstance(line["value"], dict) and "latitude" in line["value"] for line in lines)
    rows = list(csv.reader(io.StringIO(call("owner", "GET", "/v1/me/export", params={"format": "csv"}).text)))
    assert rows[0] == ["vehicle_id", "ts", "name", "value"] and len(rows) == readings + 1
    assert call("owner", "GET", "/v1/me/export", params={"format": "xml"}).status_code == 400
    deleted = call("owner", "DELETE", "/v1/me/telemetry")
    assert deleted.status_code == 200 and deleted.json() == {"deleted_readings": readings}
    assert call("owner", "GET", "/v1/me/export").text == ""
    assert call("owner", "GET", f"/v1/vehicles/{vehicle}/signals/latest").json()["signals"] == []


def test_a_driver_reads_their_earnings_and_checks_their_payout(side):
    call, vehicle, url, settings = side
    week = Week.of((datetime.now(UTC) - timedelta(days=7)).date())
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO movement_proofs (vehicle_id, day, verdict, fixes_used, fixes_dropped,"
                     " checks, reasons) VALUES (%s, %s, 'moved', 10, 0, '{}', '{}')",
                     (vehicle, week.first_day))
        key = service.network_key(settings.network_key_file)
        service.close_epoch(conn, week, RewardsSettings().terms(), key, datetime.now(UTC))
    statement = call("owner", "GET", "/v1/me/statement").json()
    assert statement["balances"] == {"MOTUS": 1_105_000 * 10**6}  # the whole pool: the only car that moved
    proof = call("owner", "GET", f"/v1/me/payouts/{week}/proof")
    assert proof.status_code == 200
    public = public_key_bytes(service.network_key(settings.network_key_file))
    assert verify_payout_proof(proof.json(), public) == []
    assert call("owner", "GET", "/v1/me/payouts/2026-W99/proof").status_code == 400
    assert call("owner", "GET", "/v1/me/payouts/2020-W01/proof").status_code == 404


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/unions/a%00b", None),
    ("POST", "/v1/me/tokens", {"label": "nul\u0000inside"}),
    ("GET", "/v1/me/access-log?cursor=OTk5OTk5OTk5OTk5OTk5OTk5OTk", None),  # 10**20: beyond bigint
    ("PUT", "/v1/me/vehicles/{vehicle}/membership", {"union": "a\u0000"}),
])
def test_values_the_database_cannot_hold_are_a_400(side, method, path, body):
    call, vehicle, _, _ = side
    response = call("owner", method, path.format(vehicle=vehicle), json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_naive_cursor_is_a_400_not_a_500(side):
    import base64

    call, vehicle, _, _ = side
    naive = base64.urlsafe_b64encode(b"2026-01-01T00:00:00").decode().rstrip("=")
    now = datetime.now(UTC)
    response = call("owner", "GET", f"/v1/vehicles/{vehicle}/trips",
                    params={"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat(),
                            "cursor": naive})
    assert response.status_code == 400 and "cursor" in response.json()["detail"]


def test_a_licence_cannot_start_in_the_past(side):
    call, vehicle, _, _ = side
    call("owner", "PUT", f"/v1/me/vehicles/{vehicle}/membership", json={"union": "lakeside"})
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    response = call("operator", "POST", "/v1/unions/lakeside/licences",
                    json={"developer": "Road Research", "purpose": "research", "scope": ["speed"],
                          "price_minor": 300, "starts": yesterday})
    assert response.status_code == 409 and "past" in response.json()["detail"]


def test_the_api_never_makes_the_network_key(database_url, tmp_path):
    key_file = tmp_path / "absent" / "network.key"
    with psycopg.connect(database_url) as conn:
        add_vehicle_owner = create_personal_token(conn, "solo@example.com", "t", datetime.now(UTC))[1]
        conn.execute("INSERT INTO drivers (email) VALUES ('solo@example.com')")
    with TestClient(create_app(ApiSettings(database_url=database_url, network_key_file=key_file))) as client:
        response = client.get("/v1/me/payouts/2026-W40/proof",
                              headers={"Authorization": f"Bearer {add_vehicle_owner}"})
    assert response.status_code == 503 and "motus rewards key" in response.json()["detail"]
    assert not key_file.exists()
