"""BulkClient's own reading of MQTT packets (MQTT 5 sections 1.5.5, 2.1, 3.3, 3.4)."""

import socket
import struct

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, _ConnectionState
from paho.mqtt.exception import MalformedPacket

from connections.mqtt_bulk import (
    BulkClient,
    Publish,
    decode_puback,
    decode_publish,
    qos1_publish_packet,
    variable_byte_integer,
    variable_byte_integer_bytes,
)


def length_bytes(value: int) -> bytes:
    """The test's own Variable Byte Integer writer, to read the client's decoding against."""
    out = bytearray()
    while True:
        value, byte = divmod(value, 128)
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def publish_packet(message: Publish, properties: bytes = b"") -> bytes:
    topic = message.topic.encode()
    body = struct.pack("!H", len(topic)) + topic
    if message.qos:
        body += struct.pack("!H", message.mid)
    body += length_bytes(len(properties)) + properties + message.payload
    header = 0x30 | (message.qos << 1) | (0x08 if message.dup else 0)
    return bytes([header]) + length_bytes(len(body)) + body


def bulk_client(received: list[Publish]) -> BulkClient:
    return BulkClient(callback_api_version=CallbackAPIVersion.VERSION2, client_id="t",
                      protocol=mqtt.MQTTv5, manual_ack=True, on_publishes=received.extend)


PUBLISHES = st.builds(
    lambda topic, payload, mid, qos, dup: Publish(topic, payload, mid if qos else 0, qos, dup),
    st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=40),
    st.binary(max_size=400) | st.binary(min_size=16_000, max_size=20_000),  # lengths of 1 to 3 bytes
    st.integers(1, 65535), st.sampled_from([0, 1]), st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.lists(PUBLISHES, min_size=1, max_size=8), st.data())
def test_a_stream_cut_anywhere_gives_every_message_once_in_order(messages, data):
    """However TCP cuts the stream, each PUBLISH comes out whole, once, in order."""
    stream = b"".join(publish_packet(m, b"\x01\x01" if i % 2 else b"") for i, m in enumerate(messages))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=6)))
    received: list[Publish] = []
    client = bulk_client(received)
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        client._unread += stream[start:end]
        assert client._split_packets() == 0
    assert received == messages
    assert not client._unread


def test_other_packets_go_to_paho_between_publishes():
    """A PINGRESP (section 3.13) among PUBLISHes is paho's: it clears paho's ping wait."""
    received: list[Publish] = []
    client = bulk_client(received)
    client._ping_t = 123.0  # paho waits for a PINGRESP
    first, second = Publish("a/b", b"1", 7, 1, False), Publish("a/c", b"2", 8, 1, True)
    client._unread += publish_packet(first) + b"\xd0\x00" + publish_packet(second)
    assert client._split_packets() == 0
    assert received == [first, second]
    assert client._ping_t == 0


@pytest.mark.parametrize("header, body", [
    (0x32, b"\x00\x09a/b"),  # the topic length says 9 bytes, 3 follow
    (0x32, b"\x00\x03a/b\x00"),  # the packet id cut short
    (0x32, b"\x00\x03a/b\x00\x01\x05"),  # 5 bytes of properties, none follow
    (0x30, b"\x00\x02\xff\xfe\x00"),  # a topic that is not UTF-8
    (0x32, b"\x00\x00\x00\x01\x00"),  # no topic (a Topic Alias, never allowed)
    (0x36, b"\x00\x03a/b\x00\x01\x00"),  # QoS 3
])
def test_a_publish_that_breaks_section_3_3_is_malformed(header, body):
    with pytest.raises(MalformedPacket):
        decode_publish(header, body)


def test_a_length_longer_than_four_bytes_is_malformed():
    client = bulk_client([])
    client._unread += b"\x30\xff\xff\xff\xff\x01"
    with pytest.raises(MalformedPacket):
        client._split_packets()


def test_acks_of_a_batch_go_in_one_write_of_one_puback_per_qos1_message():
    client = bulk_client([])
    client.ack_many([(1, 1), (2, 0), (258, 1)])
    [queued] = list(client._out_packet)
    assert queued["packet"] == b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02"


@pytest.mark.parametrize(("value", "encoded"), [
    (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"), (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f"),
])
def test_variable_byte_integers_are_written_as_the_spec_table_shows(value, encoded):
    """MQTT 5 section 1.5.5, the table of the sizes' bounds."""
    assert variable_byte_integer_bytes(value) == encoded
    assert variable_byte_integer(encoded, 0) == (value, len(encoded))


@given(st.integers(0, 268_435_455))
def test_a_variable_byte_integer_reads_back_as_written(value):
    encoded = variable_byte_integer_bytes(value)
    assert variable_byte_integer(b"\x30" + encoded + b"rest", 1) == (value, 1 + len(encoded))


@pytest.mark.parametrize("value", [-1, 268_435_456])
def test_a_value_a_variable_byte_integer_cannot_hold_is_refused(value):
    with pytest.raises(ValueError, match="does not fit"):
        variable_byte_integer_bytes(value)


@given(st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=60),
       st.binary(max_size=300) | st.binary(min_size=20_000, max_size=20_100), st.integers(1, 65535),
       st.booleans())
def test_a_qos1_publish_packet_reads_back_as_the_same_message(topic, payload, identifier, dup):
    packet = qos1_publish_packet(topic.encode(), payload, identifier, dup=dup)
    length, start = variable_byte_integer(packet, 1)  # type: ignore[misc]
    assert start + length == len(packet)
    assert decode_publish(packet[0], packet[start:]) == Publish(topic, payload, identifier, 1, dup)


@pytest.mark.parametrize(("body", "expected"), [
    (b"\x01\x02", (258, 0)),  # section 3.4.2.1: no reason code, Success
    (b"\x00\x07\x10", (7, 0x10)),  # No matching subscribers: still delivered to the broker
    (b"\x00\x07\x87\x00", (7, 0x87)),  # Not authorized, property length 0
])
def test_a_puback_gives_its_packet_id_and_reason(body, expected):
    assert decode_puback(body) == expected


def test_a_puback_without_a_packet_id_is_malformed():
    with pytest.raises(MalformedPacket):
        decode_puback(b"\x01")


class Broker:
    """The far end of a connected BulkClient (no network thread: paho writes as it queues)."""

    def __init__(self, window: int) -> None:
        self.client = bulk_client([])
        self.client.max_inflight_messages_set(window)
        self.client._sock, self.far = socket.socketpair()
        self.client._state = _ConnectionState.MQTT_CS_CONNECTED  # as after the CONNACK
        self.far.settimeout(5)

    def publishes(self) -> list[Publish]:
        """The PUBLISHes written to the broker so far."""
        data, out = b"", []
        self.far.setblocking(False)
        try:
            while chunk := self.far.recv(1 << 20):
                data += chunk
        except BlockingIOError:
            pass
        at = 0
        while at < len(data):
            length, start = variable_byte_integer(data, at + 1)  # type: ignore[misc]
            out.append(decode_publish(data[at], data[start:start + length]))
            at = start + length
        return out

    def acknowledge(self, mids: list[int], reason: int | None = None) -> None:
        """PUBACKs as one read, in the short form or with a reason code (section 3.4)."""
        self.client._unread += b"".join(
            struct.pack("!BBH", 0x40, 2, mid) if reason is None
            else struct.pack("!BBHBB", 0x40, 4, mid, reason, 0) for mid in mids)
        assert self.client._split_packets() == 0


def test_many_publishes_fill_the_window_in_one_write_and_pubacks_refill_it():
    broker = Broker(window=20)
    messages = [(f"motus/v1/devices/d{i}/receipts", f"r{i}".encode()) for i in range(50)]
    broker.client.publish_many(messages)
    first = broker.publishes()
    assert [(m.topic, m.payload, m.qos, m.dup) for m in first] == [(t, p, 1, False) for t, p in messages[:20]]
    assert len({m.mid for m in first}) == 20  # section 2.2.1: unique among the unacknowledged
    assert broker.client._inflight_messages == 20 and len(broker.client._out_messages) == 50
    broker.acknowledge([m.mid for m in first[:5]])
    refill = broker.publishes()
    assert [m.payload for m in refill] == [p for _, p in messages[20:25]]  # five freed, five sent
    broker.acknowledge([m.mid for m in first[5:] + refill])
    rest = broker.publishes()
    assert [m.payload for m in rest] == [p for _, p in messages[25:45]]
    broker.acknowledge([m.mid for m in rest])
    assert [m.payload for m in broker.publishes()] == [p for _, p in messages[45:]]
    assert broker.client._inflight_messages == 5 and len(broker.client._out_messages) == 5


def test_a_refused_publish_is_settled_not_sent_again_and_unknown_pubacks_are_ignored():
    broker = Broker(window=10)
    broker.client.publish_many([("a/b", b"1"), ("a/c", b"2")])
    sent = broker.publishes()
    broker.acknowledge([sent[0].mid], reason=0x87)  # Not authorized (section 3.4.2.1)
    broker.acknowledge([sent[0].mid, 999])  # a second PUBACK for it, and one for nothing
    assert list(broker.client._out_messages) == [sent[1].mid] and broker.client._inflight_messages == 1
    assert broker.publishes() == []


def test_after_a_reconnect_what_waits_goes_again_through_the_window_after_the_connack():
    broker = Broker(window=3)
    broker.client.publish_many([(f"a/{i}", str(i).encode()) for i in range(5)])
    assert [m.payload for m in broker.publishes()] == [b"0", b"1", b"2"]
    broker.client._state = _ConnectionState.MQTT_CS_CONNECTING  # the connection is lost; paho reconnects
    broker.client._messages_reconnect_reset_out()
    broker.client.publish_many([("a/5", b"5")])  # before the CONNACK nothing goes (nor ahead of CONNECT)
    assert broker.publishes() == []
    broker.client._unread += b"\x20\x06\x00\x00\x03\x21\x00\x03"  # CONNACK, Receive Maximum 3
    assert broker.client._split_packets() == 0
    again = broker.publishes()
    assert [(m.payload, m.dup) for m in again] == [(b"0", True), (b"1", True), (b"2", True)]
    broker.acknowledge([m.mid for m in again])
    assert [(m.payload, m.dup) for m in broker.publishes()] == [(b"3", False), (b"4", False), (b"5", False)]


def test_a_stray_puback_settles_nothing_that_was_not_sent():
    broker = Broker(window=1)
    broker.client.publish_many([("a/b", b"1"), ("a/c", b"2")])
    _sent, queued = list(broker.client._out_messages)
    broker.acknowledge([queued])  # for the queued one, never sent
    assert broker.client._inflight_messages == 1 and len(broker.client._out_messages) == 2
    assert [m.payload for m in broker.publishes()] == [b"1"]


def test_pubacks_are_settled_even_when_the_consumer_callback_raises():
    broker = Broker(window=5)
    broker.client.publish_many([("a/b", b"1")])
    [sent] = broker.publishes()

    def fails(_messages):
        raise RuntimeError("consumer bug")

    broker.client.on_publishes = fails
    puback = struct.pack("!BBH", 0x40, 2, sent.mid)
    broker.client._unread += publish_packet(Publish("x/y", b"in", 9, 1, False)) + puback
    with pytest.raises(RuntimeError):
        broker.client._split_packets()
    assert not broker.client._out_messages and broker.client._inflight_messages == 0


@pytest.mark.parametrize(("messages", "error"), [
    ([("a/b", b"1"), ("a/#", b"2")], ValueError),
    ([("a/b", b"1"), ("a/c", "text")], TypeError),
])
def test_a_bad_message_keeps_none_of_its_batch(messages, error):
    broker = Broker(window=5)
    with pytest.raises(error):
        broker.client.publish_many(messages)
    assert not broker.client._out_messages and broker.client._inflight_messages == 0
    assert broker.publishes() == []


def test_a_topic_with_a_wildcard_is_refused():
    with pytest.raises(ValueError, match="wildcards"):
        bulk_client([]).publish_many([("a/+", b"1")])


@pytest.mark.parametrize(("properties", "window"), [
    (b"\x03\x21\x03\xe8", 1000),  # Receive Maximum 1000 (property 0x21, section 3.2.2.3.3)
    (b"\x00", 65535),  # absent: 65,535
])
def test_the_brokers_receive_maximum_is_the_window_of_publishes_in_flight(properties, window):
    client = bulk_client([])
    assert client._max_inflight_messages == 20  # paho's own
    connack = b"\x00\x00" + properties  # session not present, reason Success
    client._unread += bytes([0x20, len(connack)]) + connack
    assert client._split_packets() == 0
    assert client._max_inflight_messages == window
