"""The bench's replay against the real broker: cars connected by paho, their packets then
written as they are; the broker takes every one (PUBACK) and delivers each once, in order."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from bench.replay import ReplayFleet, car_sockets, packet_id
from connections.mqtt import connect, disconnect, make_bulk_client
from connections.mqtt_bulk import qos1_publish_packet
from protocol.topics import ALL_TELEMETRY
from simulators.fleet import drive_events, make_fleet
from simulators.publisher import connect_device
from tests.fixtures.helpers import Inbox, register

pytestmark = pytest.mark.integration


def test_replayed_packets_reach_a_subscriber_each_once_in_order(local_stack, database_url):
    cars = make_fleet(2, seed=57, drive_seconds=300)
    register(database_url, cars, local_stack)
    inbox = Inbox()
    consumer = make_bulk_client(local_stack.ingest_endpoint, "replay-test", inbox.take)
    connect(consumer, local_stack.ingest_endpoint, subscriptions=[(f"$share/replay-test/{ALL_TELEMETRY}", 1)])
    clients = [connect_device(local_stack.device_endpoint(car.device_id, car.mqtt_password, tls=False),
                              car.device_id) for car in cars]
    try:
        fleet = ReplayFleet(car_sockets(dict(enumerate(clients))), window=10)
        start = datetime.now(UTC) - timedelta(seconds=301)
        sent = {car.device_id: [p for _t, p in drive_events(car, start, 300)] for car in cars}
        for n in range(300):
            for i, car in enumerate(cars):
                packet = qos1_publish_packet(car.topic.encode(), sent[car.device_id][n], packet_id(n + 1))
                fleet.send(i, packet)
        deadline = time.time() + 30
        while fleet.unacknowledged and time.time() < deadline:
            fleet.poll(0.05)
        assert (fleet.acknowledged, fleet.unacknowledged) == (600, 0)
        assert inbox.settle(consumer, 600, cars) == sent
    finally:
        for client in clients:
            client.disconnect()
        disconnect(consumer)
