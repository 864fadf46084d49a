"""BulkClient against the real broker: every message once and in order, over TCP and over TLS
(where a read returns at most one TLS record and the rest waits in the TLS layer)."""

from datetime import UTC, datetime, timedelta

import pytest

from connections.mqtt import connect, disconnect, make_bulk_client
from protocol.endpoint import MqttEndpoint
from protocol.topics import ALL_TELEMETRY
from simulators.fleet import drive_events, make_fleet
from tests.fixtures.helpers import Inbox, publisher, register

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_a_bulk_consumer_gets_every_message_once_in_order(local_stack, database_url, tls):
    cars = make_fleet(2, seed=41 + tls, drive_seconds=150)
    register(database_url, cars, local_stack)
    endpoint = MqttEndpoint(host=local_stack.ingest_endpoint.host,
                            port=local_stack.mqtt_tls_port if tls else local_stack.mqtt_port,
                            username=local_stack.ingest_endpoint.username,
                            password=local_stack.ingest_endpoint.password,
                            tls=tls, ca_file=local_stack.ca_file if tls else None)
    inbox = Inbox()
    consumer = make_bulk_client(endpoint, f"bulk-test-{tls}", inbox.take)
    connect(consumer, endpoint, subscriptions=[(f"$share/bulk-test-{tls}/{ALL_TELEMETRY}", 1)])
    try:
        start = datetime.now(UTC) - timedelta(seconds=151)
        sent = {car.device_id: [p for _t, p in drive_events(car, start, 150)] for car in cars}
        cars_publisher = publisher(local_stack, tls=tls)
        for i in range(150):
            for car in cars:
                cars_publisher.publish(car, car.topic, sent[car.device_id][i])
        cars_publisher.flush()
        cars_publisher.close()
        assert inbox.settle(consumer, 300, cars) == sent
        assert all(m.qos == 1 and not m.dup for m in inbox.messages)
    finally:
        disconnect(consumer)
