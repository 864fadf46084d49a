"""paho's MQTT client, receiving in bulk: for a consumer of many small QoS 1 messages (ingest).

paho reads a packet with three or more ``recv`` calls (the type byte, the remaining length
byte by byte, the rest) after one ``select`` each time, and builds a Properties object and an
MQTTMessage for every PUBLISH: about 130 µs of CPU per message here, the largest cost of an
ingest worker. ``BulkClient`` reads what the socket holds in one call, splits it into packets
itself (MQTT 5 section 2.1: fixed header, Variable Byte Integer length), decodes each QoS 0 or 1
PUBLISH into a ``Publish`` (section 3.3) and hands all of a read to ``on_publishes`` at once;
every other packet (CONNACK, SUBACK, PINGRESP, QoS 2) goes to paho's own handler as before,
so sessions, keepalive and reconnects stay paho's. ``ack_many`` sends the PUBACKs of a whole
batch (section 3.4) in one write.

Publishing many small QoS 1 messages at once (the ingest's receipts: one per device in each
batch, so one per event with a large fleet) costs paho's ``publish`` 53-57 µs of CPU each here
until its PUBACK (`motus bench receipts`): a message object, a packet, a wake-up of its network
thread, a PUBACK decoded with its properties, and a round trip for every 20 in flight.
``publish_many`` registers each as paho's own outgoing message (held until its PUBACK, sent
again with DUP after a reconnect, as paho does) but writes the packets that fit the inflight
window in one go; the PUBACKs of those messages are settled in bulk, and the window refilled
in one write.

It overrides or uses paho internals (``loop_read``, ``_in_packet``, ``_packet_handle``,
``_packet_queue``, ``_handle_connack``, ``_messages_reconnect_reset_out``, ``_out_messages``,
``_send_publish``), so the paho version is pinned to a minor release in pyproject.toml;
tests/unit/test_mqtt_bulk.py and the ingest's integration tests cover it.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, _ConnectionState
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

READ_BYTES = 256 * 1024
_PUBLISH, _PUBACK = 0x30, 0x40
_PUBLISH_QOS1 = _PUBLISH | 0x02  # section 3.3.1: QoS in bits 1-2
_PUBACK_SUCCESS = struct.Struct("!BBH")  # type, remaining length 2, packet id (section 3.4.2.1)
_UINT16 = struct.Struct("!H")  # a Two Byte Integer (section 1.5.2)


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


def qos1_publish_packet(topic: bytes, payload: bytes | bytearray, identifier: int, *,
                        dup: bool = False) -> bytes:
    """An MQTT 5 QoS 1 PUBLISH without properties (section 3.3): fixed header, topic, packet
    id, property length 0, payload."""
    rest = b"".join((_UINT16.pack(len(topic)), topic, _UINT16.pack(identifier), b"\x00", payload))
    header = _PUBLISH_QOS1 | 0x08 if dup else _PUBLISH_QOS1
    return bytes([header]) + variable_byte_integer_bytes(len(rest)) + rest


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


def decode_puback(body: bytes) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK (section 3.4): no reason code means 0x00, success;
    its properties, if any, are not needed. MalformedPacket when shorter than a packet id."""
    if len(body) < 2:
        raise MalformedPacket("PUBACK without a packet identifier")
    return _UINT16.unpack_from(body)[0], body[2] if len(body) > 2 else 0


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
        data, at, publishes, acknowledged = self._unread, 0, [], []
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        mqtt5 = self._protocol == mqtt.MQTTv5
        bulk_pubacks = self.on_publish is None  # else each goes to paho, which calls it
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
                if header == _PUBACK and bulk_pubacks:
                    acknowledged.append(decode_puback(body))
                    continue
                rc = self._paho_handles(header, body)
                if rc:
                    break
        finally:
            del data[:at]
            try:
                if acknowledged:
                    self._settle(acknowledged)
            finally:  # the PUBACKs are settled even if the consumer's callback raises
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

    def _handle_connack(self) -> MQTTErrorCode:
        """Take the broker's Receive Maximum (MQTT 5 section 3.2.2.3.3: 65,535 when absent) as
        the window of our QoS 1 and 2 PUBLISHes in flight; paho keeps its own 20 otherwise."""
        body = self._in_packet["packet"]
        if self._protocol == mqtt.MQTTv5 and len(body) > 2 and body[1] < 0x80:
            properties = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):  # malformed: paho's own decoding says so below
                properties.unpack(bytes(body[2:]))  # type: ignore[no-untyped-call]
                self._max_inflight_messages = int(getattr(properties, "ReceiveMaximum", 65535))
        rc = super()._handle_connack()
        if self._state == _ConnectionState.MQTT_CS_CONNECTED:
            with self._out_message_mutex:
                self._send_queued()  # what waits since before the reconnect, through the window
        return rc

    def _messages_reconnect_reset_out(self) -> None:
        """On reconnect paho marks every unacknowledged message to be sent again at the CONNACK,
        all at once past the window; QoS 1 ones wait in the queue instead (DUP set by paho if
        sent before) and go out through the window, in order, once the CONNACK came."""
        super()._messages_reconnect_reset_out()
        with self._out_message_mutex:
            for m in self._out_messages.values():
                if m.qos == 1 and m.state == mqtt.mqtt_ms_publish:
                    m.state = mqtt.mqtt_ms_queued

    def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Publish each (topic, payload) at QoS 1 as ``publish`` would (held until its PUBACK,
        sent again after a reconnect), those the inflight window has room for in one write;
        the others follow as PUBACKs free the window. All are checked before any is kept:
        ValueError for a topic with a wildcard or too many waiting, TypeError for a payload
        that is not bytes."""
        checked: list[tuple[bytes, bytes]] = []
        for topic, payload in messages:
            name = topic.encode()
            self._raise_for_invalid_topic(name)
            if not isinstance(payload, bytes | bytearray):
                raise TypeError(f"a payload is bytes, not {type(payload).__name__}")
            checked.append((name, bytes(payload)))  # the same object when it is bytes
        with self._out_message_mutex:
            if len(self._out_messages) + len(checked) > 65535:
                raise ValueError(f"{len(self._out_messages)} messages wait for their PUBACK: no packet "
                                 f"id is free for {len(checked)} more (section 2.2.1)")
            for name, payload in checked:
                message = mqtt.MQTTMessage(self._free_mid(), name)
                message.timestamp = mqtt.time_func()
                message.payload = payload
                message.qos = 1
                message.state = mqtt.mqtt_ms_queued
                self._out_messages[message.mid] = message
            self._send_queued()

    def _free_mid(self) -> int:
        """The next packet id no outgoing message holds (section 2.2.1: unique among those
        unacknowledged); ``publish_many`` made sure one is free."""
        while (mid := self._mid_generate()) in self._out_messages:
            pass
        return mid

    def _send_queued(self) -> None:
        """Send queued messages while the inflight window has room: QoS 1 ones without
        properties in one write, any other as paho's ``_update_inflight`` would. The caller
        holds ``_out_message_mutex``. Not before the CONNACK: a reconnect opens the socket
        before it queues its CONNECT, and what waits goes out after the CONNACK."""
        if self._sock is None or self._state != _ConnectionState.MQTT_CS_CONNECTED:
            return
        limit, packets = self._max_inflight_messages, []
        for m in self._out_messages.values():
            if limit and self._inflight_messages >= limit:
                break
            if m.qos == 0 or m.state != mqtt.mqtt_ms_queued:
                continue
            self._inflight_messages += 1
            if m.qos == 1 and m.properties is None:
                m.state = mqtt.mqtt_ms_wait_for_puback
                packets.append(qos1_publish_packet(m._topic, m.payload, m.mid, dup=m.dup))
                continue
            m.state = mqtt.mqtt_ms_wait_for_puback if m.qos == 1 else mqtt.mqtt_ms_wait_for_pubrec
            self._send_publish(m.mid, m._topic, m.payload, m.qos, m.retain, m.dup, properties=m.properties)
        if packets:
            self._packet_queue(_PUBLISH_QOS1, b"".join(packets), 0, 1)

    def _settle(self, acknowledged: list[tuple[int, int]]) -> None:
        """The PUBACKs (packet id, reason code) of one read: their messages are done (a
        refusal, reason 0x80 or more, is logged: the message is not sent again, as in paho)
        and the window refilled in one write."""
        with self._out_message_mutex:
            for mid, reason in acknowledged:
                message = self._out_messages.get(mid)
                if message is None or message.qos != 1 or message.state != mqtt.mqtt_ms_wait_for_puback:
                    continue  # not sent (a stray or repeated PUBACK), or QoS 2: it settles nothing
                if reason >= 0x80:
                    self._easy_log(mqtt.MQTT_LOG_WARNING, "the broker refused PUBLISH %d (reason 0x%02x)",
                                   mid, reason)
                del self._out_messages[mid]
                message.info._set_as_published()
                self._inflight_messages -= 1
            self._send_queued()

    def ack_many(self, deliveries: Iterable[tuple[int, int]]) -> None:
        """Acknowledge (packet id, QoS) pairs in one write: a PUBACK each for QoS 1 (a QoS 0
        message needs none)."""
        packets = b"".join(_PUBACK_SUCCESS.pack(_PUBACK, 2, mid) for mid, qos in deliveries if qos == 1)
        if packets:
            self._packet_queue(_PUBACK, packets, 0, 0)
