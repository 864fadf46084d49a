import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from simulators.fleet import drive_events, make_fleet
from simulators.hostile import hostile_messages
from tests.fixtures.helpers import publisher, register, scalar, wait_until

pytestmark = pytest.mark.integration


def test_hostile_messages_are_quarantined_while_good_traffic_lands(
    local_stack, database_url, running_ingest
):
    cars = make_fleet(3, seed=21, drive_seconds=40)
    register(database_url, cars, local_stack)
    now = datetime.now(UTC)
    hostile = hostile_messages(cars[0], cars[1], now)
    assert len(hostile) >= 30 and len({m.label for m in hostile}) == len(hostile)
    cars_publisher = publisher(local_stack)
    drives = [list(drive_events(car, now - timedelta(seconds=41), 40)) for car in cars]
    # interleave: hostile messages in the middle of the honest streams
    for i in range(40):
        for car, drive in zip(cars, drives, strict=True):
            cars_publisher.publish(car, *drive[i])
        if i < len(hostile):
            cars_publisher.publish(hostile[i].sender, hostile[i].topic, hostile[i].payload)
    cars_publisher.flush()
    cars_publisher.publish(cars[2], *drives[2][0])  # a stored event sent again: a duplicate
    cars_publisher.close()

    # a message whose only reading is bad: its event is stored, the reading quarantined alone
    bad_readings = [m for m in hostile if m.event_stored]
    assert len(bad_readings) >= 10
    totals = running_ingest.worker.totals
    events = 120 + len(bad_readings)
    wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") == events
               and scalar(database_url, "SELECT count(*) FROM quarantine") == len(hostile)
               and totals.received == 120 + len(hostile) + 1, what="ingest to finish")
    with psycopg.connect(database_url) as conn:
        reasons: Counter[str] = Counter(dict(conn.execute(
            "SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall()))
        whole = {bytes(r[0]) for r in conn.execute("SELECT payload FROM quarantine WHERE reading IS NULL")}
        alone = conn.execute("SELECT event_id, reading FROM quarantine WHERE reading IS NOT NULL").fetchall()
    assert reasons == Counter(m.reason for m in hostile)
    assert whole == {m.payload for m in hostile if not m.event_stored}
    assert sorted(alone) == sorted((json.loads(m.payload)["id"], 0) for m in bad_readings)
    assert scalar(database_url, "SELECT count(*) FROM signals_numeric") == 120 * 9
    assert totals.stored == 120 + len(bad_readings)
    assert sum(totals.readings_refused.values()) == len(bad_readings)
    assert (totals.duplicates, totals.resent) == (1, 1)
