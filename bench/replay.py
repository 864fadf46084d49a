"""The bench's cars on the wire: their signed events written as MQTT 5 PUBLISH packets encoded
before the clock starts, the broker's PUBACKs counted as they come.

A load generator should cost the machine under test as little as a fleet of real cars does
(nothing). paho spent 60-100 µs of CPU per publish and its PUBACK here (a message object, a
lock, a packet queue, three reads per PUBACK), a sixth of this 2-core machine in a flood, which
the ingest then did not have. Each car still connects with paho (CONNECT, authentication);
then its socket (plain TCP, as the bench's cars connect) carries the packets as they are.

QoS 1 as the devices publish (MQTT 5 section 4.3.2): at most ``window`` unacknowledged PUBLISHes
per car (what paho's inflight limit allowed before), packet identifiers counting 1..65535 round,
never two in flight alike (section 2.2.1). A refused PUBACK (reason code 0x80 or above, section
3.4.2.1) or a DISCONNECT from the broker stops the run: the bench must not count a message the
broker did not take.
"""

from __future__ import annotations

import select
import socket
import ssl
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from connections.mqtt_bulk import READ_BYTES, variable_byte_integer

#: Unacknowledged PUBLISHes per car, as paho's inflight limit was set for the cars.
WINDOW = 100
_PUBACK, _PINGRESP, _DISCONNECT = 0x4, 0xD, 0xE


class BrokerRefused(RuntimeError):
    """The broker refused a PUBLISH or closed the connection."""


def packet_id(number: int) -> int:
    """The packet identifier of a car's ``number``-th PUBLISH (from 1): 1 to 65535, round."""
    return (number - 1) % 65535 + 1


def car_sockets(clients: dict[int, mqtt.Client]) -> dict[int, socket.socket]:
    """The connected paho clients' sockets, their network loops stopped: the replay owns them
    now. Stopped once all are connected, since each stop waits out its loop's select (up to a
    second) and those run out together."""
    for client in clients.values():
        client.loop_stop()
    sockets = {index: client.socket() for index, client in clients.items()}
    plain = {index: sock for index, sock in sockets.items() if isinstance(sock, socket.socket)}
    if len(plain) != len(sockets):
        raise RuntimeError("a car is not connected")
    return plain


@dataclass(slots=True)
class _Car:
    sock: socket.socket
    sent: int = 0
    acked: int = 0
    outgoing: bytearray = field(default_factory=bytearray)
    incoming: bytearray = field(default_factory=bytearray)


class ReplayFleet:
    """Cars (connected TCP sockets, non-blocking) driven from one thread."""

    def __init__(self, sockets: dict[int, socket.socket], window: int = WINDOW) -> None:
        if not sockets:
            raise ValueError("no connected car")
        if any(isinstance(sock, ssl.SSLSocket) for sock in sockets.values()):
            raise ValueError("the replay writes plain TCP; TLS would need its pending reads handled")
        self._cars = {car: _Car(sock) for car, sock in sockets.items()}
        self._by_socket = {state.sock: state for state in self._cars.values()}
        self.window = window

    def send(self, car: int, packet: bytes) -> None:
        """Queue ``packet`` on its car (waiting while the car's window is full) and write."""
        state = self._cars[car]
        while state.sent - state.acked >= self.window:
            self.poll(0.05)
        state.outgoing += packet
        state.sent += 1
        self._write(state)

    def poll(self, timeout_s: float) -> None:
        """Read PUBACKs and write what is queued, waiting up to ``timeout_s`` for either."""
        writers = [state.sock for state in self._cars.values() if state.outgoing]
        readable, writable, _ = select.select(list(self._by_socket), writers, [], max(timeout_s, 0.0))
        for sock in readable:
            self._read(self._by_socket[sock])
        for sock in writable:
            self._write(self._by_socket[sock])

    @property
    def unacknowledged(self) -> int:
        return sum(state.sent - state.acked for state in self._cars.values())

    @property
    def acknowledged(self) -> int:
        return sum(state.acked for state in self._cars.values())

    @staticmethod
    def _write(state: _Car) -> None:
        try:
            written = state.sock.send(state.outgoing)
        except (BlockingIOError, InterruptedError):
            return
        del state.outgoing[:written]

    @staticmethod
    def _read(state: _Car) -> None:
        try:
            data = state.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            raise BrokerRefused("the broker closed a car's connection")
        buffer = state.incoming
        buffer += data
        at = 0
        while len(buffer) - at >= 2:
            length = variable_byte_integer(buffer, at + 1)
            if length is None or length[1] + length[0] > len(buffer):
                break
            size, start = length
            kind, body = buffer[at] >> 4, bytes(buffer[start:start + size])
            at = start + size
            if kind == _PUBACK:
                if len(body) > 2 and body[2] >= 0x80:
                    raise BrokerRefused(f"PUBACK with reason code 0x{body[2]:02x}")
                state.acked += 1
            elif kind == _DISCONNECT:
                raise BrokerRefused(f"DISCONNECT from the broker: {body.hex()}")
            elif kind != _PINGRESP:
                raise BrokerRefused(f"unexpected packet type {kind} from the broker")
        del buffer[:at]
