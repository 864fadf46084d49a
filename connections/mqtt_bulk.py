"""paho's MQTT client, receiving in bulk: for a consumer of many small QoS 1 messages (ingest).

paho reads a packet with three or more ``recv`` calls (the type byte, the remaining length
byte by byte, the rest) after one ``select`` each time, and builds a Properties object and an
MQTTMessage for every PUBLISH: about 130 µs of CPU per message here, the largest cost of an
ingest worker. ``BulkClient`` reads what the socket holds in one call, splits it into packets
itself (MQTT 5 section 2.1: fixed header, Variable Byte Integer length), decodes each QoS 0 or 1
PUBLISH into a ``Publish`` (section 3.3) and hands all of a read to ``on_publishes`` at once;
every other packet (CONNACK, SUBACK, PINGRESP, PUBACK of our own publishes, QoS 2) goes to
paho's own handler as before, so sessions, keepalive, reconnects and publishing stay paho's.
``ack_many`` sends the PUBACKs of a whole batch (section 3.4) in one write.

It overrides paho internals (``loop_read``, ``_in_packet``, ``_packet_handle``,
``_packet_queue``), so the paho version is pinned to a minor release in pyproject.toml;
tests/unit/test_mqtt_bulk.py and the ingest's integration tests cover it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

READ_BYTES = 256 * 1024
_PUBLISH, _PUBACK = 0x30, 0x40
_PUBACK_SUCCESS = struct.Struct("!BBH")  # type, remaining length 2, packet id (section 3.4.2.1)


class Publish(NamedTuple):
    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool


def variable_byte_integer_bytes(value: int) -> bytes:
    """``value`` (0 to 268,435,455) as a Variable Byte Integer (section 1.5.5): seven bits a
    byte, least significant first, the high bit set on all but the last byte."""
    if not 0 <= value < 1 << 28:
        raise ValueError(f"{value} does not fit a Variable Byte Integer")
    out = bytearray()
    while True:
        value, byte = divmod(value, 128)
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def variable_byte_integer(data: bytes | bytearray | memoryview, at: int) -> tuple[int, int] | None:
    """(value, position after it) of the Variable Byte Integer at ``at`` (section 1.5.5), or
    None when ``data`` ends before it does."""
    value, shift = 0, 0
    for position in range(at, min(at + 4, len(data))):
        byte = data[position]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position + 1
        shift += 7
    if len(data) >= at + 4:
        raise MalformedPacket("a Variable Byte Integer longer than 4 bytes")
    return None


def decode_publish(header: int, body: bytes, *, mqtt5: bool = True) -> Publish:
    """A PUBLISH packet's contents (section 3.3); ``body`` is what follows the fixed header.
    MalformedPacket for a packet that breaks the section."""
    qos = (header >> 1) & 0x03
    try:
        (topic_length,) = struct.unpack_from("!H", body)
        at = 2 + topic_length
        topic = body[2:at].decode("utf-8")
        mid = 0
        if qos:
            (mid,) = struct.unpack_from("!H", body, at)
            at += 2
        if mqtt5:  # properties (section 3.3.2.3): none that a consumer of ours needs
            length = variable_byte_integer(body, at)
            if length is None:
                raise MalformedPacket("PUBLISH ends inside its property length")
            at = length[1] + length[0]
    except (struct.error, UnicodeDecodeError) as exc:
        raise MalformedPacket(f"PUBLISH: {exc}") from exc
    if qos == 3 or at > len(body) or not topic:  # an empty topic is a Topic Alias: never allowed
        raise MalformedPacket("PUBLISH with QoS 3, shorter than its header says, or without a topic")
    return Publish(topic, body[at:], mid, qos, bool(header & 0x08))


def _in_packet(command: int, body: bytes, *, have_remaining: int) -> Any:
    """paho's record of the packet being read."""
    return {"command": command, "have_remaining": have_remaining, "remaining_count": [],
            "remaining_mult": 1, "remaining_length": len(body), "packet": bytearray(body),
            "to_process": 0, "pos": 0}


class BulkClient(mqtt.Client):
    """A paho client whose QoS 0/1 PUBLISHes arrive as lists in ``on_publishes``."""

    def __init__(self, *args: Any, on_publishes: Callable[[list[Publish]], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_publishes = on_publishes
        self._unread = bytearray()  # received bytes not yet a whole packet

    def reconnect(self) -> MQTTErrorCode:
        self._unread.clear()  # what was left belonged to the old connection
        return super().reconnect()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        try:
            chunk = self._sock_recv(READ_BYTES)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except OSError:  # ConnectionError included
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        if not chunk:
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        self._unread += chunk
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        try:
            rc = self._split_packets()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_ERR, "malformed packet from the broker: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        return self._loop_rc_handle(rc) if rc else rc

    def _split_packets(self) -> MQTTErrorCode:
        data, at, publishes = self._unread, 0, []
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        mqtt5 = self._protocol == mqtt.MQTTv5
        try:
            while len(data) - at >= 2:
                length = variable_byte_integer(data, at + 1)
                if length is None or length[1] + length[0] > len(data):
                    break  # the rest of this packet is still on its way
                header, (remaining, start) = data[at], length
                body = bytes(data[start:start + remaining])
                at = start + remaining
                if header & 0xF0 == _PUBLISH and header & 0x06 != 0x04:
                    publishes.append(decode_publish(header, body, mqtt5=mqtt5))
                    continue
                rc = self._paho_handles(header, body)
                if rc:
                    break
        finally:
            del data[:at]
            if publishes:
                self.on_publishes(publishes)
        return rc

    def _paho_handles(self, header: int, body: bytes) -> MQTTErrorCode:
        """Hand one whole packet to paho's handler, as paho's own reader would (its
        ``_in_packet`` filled in), and leave the reader's state as paho leaves it after."""
        self._in_packet = _in_packet(header, body, have_remaining=1)
        try:
            return self._packet_handle()
        finally:
            self._in_packet = _in_packet(0, b"", have_remaining=0)

    def ack_many(self, deliveries: Iterable[tuple[int, int]]) -> None:
        """Acknowledge (packet id, QoS) pairs in one write: a PUBACK each for QoS 1 (a QoS 0
        message needs none)."""
        packets = b"".join(_PUBACK_SUCCESS.pack(_PUBACK, 2, mid) for mid, qos in deliveries if qos == 1)
        if packets:
            self._packet_queue(_PUBACK, packets, 0, 0)
