"""The bench's replay of its cars' PUBLISH packets (MQTT 5 sections 3.3 and 3.4), on a local
socket pair standing for the broker; tests/integration/test_bench_replay.py drives a real one."""

import socket
import struct

import pytest

from bench.replay import BrokerRefused, ReplayFleet, packet_id
from connections.mqtt_bulk import decode_publish, qos1_publish_packet


def test_packet_identifiers_count_1_to_65535_round_and_never_0():
    """Section 2.2.1: a non-zero 16-bit identifier."""
    numbers = (1, 2, 65535, 65536, 65537, 131070, 131071)
    assert [packet_id(n) for n in numbers] == [1, 2, 65535, 1, 2, 65535, 1]


def puback(identifier: int, reason: int | None = None) -> bytes:
    """Section 3.4: the short form when the reason is Success, else the reason code."""
    if reason is None:
        return struct.pack("!BBH", 0x40, 2, identifier)
    return struct.pack("!BBHBB", 0x40, 4, identifier, reason, 0)


@pytest.fixture
def car_and_broker():
    car, broker = socket.socketpair()
    car.setblocking(False)
    yield car, broker
    car.close()
    broker.close()


def test_the_fleet_waits_for_pubacks_when_a_cars_window_is_full(car_and_broker):
    car, broker = car_and_broker
    fleet = ReplayFleet({7: car}, window=2)
    fleet.send(7, qos1_publish_packet(b"t", b"a", 1))
    fleet.send(7, qos1_publish_packet(b"t", b"b", 2))
    assert fleet.unacknowledged == 2
    # acknowledgements cut anywhere: one and a half packets, then the rest with a PINGRESP
    stream = puback(1) + puback(2, reason=0x10) + b"\xd0\x00"  # 0x10: no matching subscribers
    broker.sendall(stream[:6])
    fleet.poll(1.0)
    assert fleet.acknowledged == 1
    fleet.send(7, qos1_publish_packet(b"t", b"c", 3))  # room for one: the window is full again
    broker.sendall(stream[6:])
    fleet.send(7, qos1_publish_packet(b"t", b"d", 4))  # waits for the second PUBACK first
    assert (fleet.acknowledged, fleet.unacknowledged) == (2, 2)
    received = broker.recv(65536)
    assert [decode_publish(received[i], received[i + 2:i + 2 + received[i + 1]]).payload
            for i in (0, 9, 18, 27)] == [b"a", b"b", b"c", b"d"]


@pytest.mark.parametrize(("answer", "says"), [
    (puback(1, reason=0x87), "reason code 0x87"),  # not authorized
    (b"\xe0\x01\x93", "DISCONNECT"),  # receive maximum exceeded
    (b"\x30\x05\x00\x01tab", "unexpected packet type 3"),
])
def test_a_refusal_or_a_disconnect_stops_the_run(car_and_broker, answer, says):
    car, broker = car_and_broker
    fleet = ReplayFleet({0: car})
    fleet.send(0, qos1_publish_packet(b"t", b"a", 1))
    broker.sendall(answer)
    with pytest.raises(BrokerRefused, match=says):
        fleet.poll(1.0)


def test_a_closed_connection_stops_the_run(car_and_broker):
    car, broker = car_and_broker
    fleet = ReplayFleet({0: car})
    broker.close()
    with pytest.raises(BrokerRefused, match="closed"):
        fleet.poll(1.0)
