"""A licence revoked, a member who leaves or pauses, a knob turned down or a strike called: the
very next request serves nothing more of that member's data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from registry.developers import add_developer
from registry.keys import create_developer_key
from rewards import service, store
from rewards.bylaws import Purpose, parse_bylaws
from rewards.knob import Knob
from simulators.fleet import make_fleet
from tests.fixtures.helpers import register, store_drives

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "bylaws.toml"


def _now() -> datetime:
    return datetime.now(UTC)


CAUSES: dict[str, Callable[[Any, dict[str, Any]], object]] = {
    "licence revoked": lambda conn, s: store.revoke_licence(conn, s["licence"], _now()),
    "member left": lambda conn, s: store.leave(conn, s["vehicle"], _now()),
    "member paused": lambda conn, s: store.pause(conn, s["vehicle"], _now()),
    "knob turned down": lambda conn, s: store.set_knob(conn, s["owner"], Knob.PRIVATE, _now()),
    "strike called": lambda conn, s: store.call_strike(conn, s["union"], None, "member-vote", 1, "price",
                                                       _now()),
}


@pytest.mark.parametrize("cause", sorted(CAUSES))
def test_the_next_request_serves_nothing_more(database_url, cause):
    car = make_fleet(1, seed=53, drive_seconds=10)[0]
    (vehicle,) = register(database_url, [car])
    now = _now()
    store_drives(database_url, [car], 10, now)
    before = now - timedelta(days=1)
    text = EXAMPLE.read_text().replace('admission = "approval"', 'admission = "open"')
    with psycopg.connect(database_url) as conn:
        union = store.create_union(conn, "lakeside", "op@lakeside.example",
                                   parse_bylaws(text, network_fee_bps=500), before)
        store.join(conn, vehicle, union.id, before, admitted=True)
        developer = add_developer(conn, "Road Research", "data@road.example")
        service.top_up(conn, developer, 100_000, "seed", before)
        granted = service.grant(conn, union, developer, purpose=Purpose.RESEARCH, scope=("speed",),
                                starts=before, days=30, price_minor=300, key=Ed25519PrivateKey.generate(),
                                now=before)
        secret = create_developer_key(conn, developer.id, "test", now)[1]
        row = conn.execute("SELECT owner_id FROM vehicles WHERE id = %s", (vehicle,)).fetchone()
        assert row is not None
        owner = row[0]
    state = {"licence": granted.terms.id, "vehicle": vehicle, "owner": owner, "union": union.id}
    headers = {"Authorization": f"Bearer {secret}"}
    path = f"/v1/vehicles/{vehicle}/signals/latest"
    with TestClient(create_app(ApiSettings(database_url=database_url))) as client:
        served = client.get(path, headers=headers)
        assert served.status_code == 200 and served.json()["signals"]
        assert [v["vehicle_id"] for v in client.get("/v1/vehicles", headers=headers).json()["vehicles"]] \
            == [str(vehicle)]
        with psycopg.connect(database_url) as conn:
            CAUSES[cause](conn, state)
        refused = client.get(path, headers=headers)
        assert refused.status_code == 404, refused.text
        assert client.get("/v1/vehicles", headers=headers).json()["vehicles"] == []
        series = client.get(f"/v1/vehicles/{vehicle}/signals/speed/series", headers=headers,
                            params={"from": (now - timedelta(hours=1)).isoformat(),
                                    "to": (now + timedelta(minutes=1)).isoformat(), "interval": "1m"})
        assert series.status_code == 404
    with psycopg.connect(database_url) as conn:
        reads = conn.execute("SELECT count(*) FROM data_access").fetchone()
    assert reads == (1,)  # only the read before the change returned data
