"""BulkClient's own reading of MQTT packets (MQTT 5 sections 1.5.5, 2.1, 3.3, 3.4)."""

import struct

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.exception import MalformedPacket

from connections.mqtt_bulk import (
    BulkClient,
    Publish,
    decode_publish,
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
