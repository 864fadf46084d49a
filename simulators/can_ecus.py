"""ECUs on a python-can bus (the virtual bus in tests, vcan/socketcan elsewhere): they answer
OBD-II requests over ISO-TP (physical ids 0x7E0+n and the functional id 0x7DF, answers from
0x7E8+n) and broadcast the car's state as DBC-encoded frames, like a real powertrain bus."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import can
import isotp
from cantools.database.can import Database

from simulators.ecu import EmulatedEcu, answer

FUNCTIONAL_ID = 0x7DF


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A DBC message sent every ``period_s``; ``signals`` gives its signal values from the car."""

    message: str
    period_s: float
    signals: Callable[[], dict[str, float]]


class CanEcus:
    def __init__(self, bus: can.BusABC, ecus: list[EmulatedEcu], *, database: Database | None = None,
                 broadcasts: list[Broadcast] | None = None) -> None:
        self.bus = bus
        self.ecus = ecus
        self.database = database
        self.broadcasts = broadcasts or []
        self.notifier = can.Notifier(bus, [], timeout=0.1)
        self.stacks: dict[int, isotp.NotifierBasedCanStack] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.requests = 0

    def __enter__(self) -> CanEcus:
        for ecu in self.ecus:
            stack = isotp.NotifierBasedCanStack(
                self.bus, self.notifier,
                address=isotp.Address(isotp.AddressingMode.Normal_11bits,
                                      txid=ecu.can_id, rxid=ecu.can_id - 8),
                params={"tx_padding": 0x00, "blocking_send": False},
            )
            stack.start()
            self.stacks[ecu.can_id] = stack
            self._threads.append(threading.Thread(target=self._serve, args=(ecu, stack), daemon=True))
        self.notifier.add_listener(self._functional)
        for broadcast in self.broadcasts:
            self._threads.append(threading.Thread(target=self._broadcast, args=(broadcast,), daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for stack in self.stacks.values():
            stack.stop()
        self.notifier.stop()

    def _reply(self, ecu: EmulatedEcu, request: bytes) -> None:
        self.requests += 1
        data = answer(ecu, request, can=True)
        if data is not None:
            self.stacks[ecu.can_id].send(data)

    def _serve(self, ecu: EmulatedEcu, stack: isotp.NotifierBasedCanStack) -> None:
        while not self._stop.is_set():
            request = stack.recv(block=True, timeout=0.1)
            if request:
                self._reply(ecu, bytes(request))

    def _functional(self, msg: can.Message) -> None:
        # ISO 15765-4: functional requests are single frames only.
        if msg.arbitration_id != FUNCTIONAL_ID or msg.is_extended_id:
            return
        data = bytes(msg.data)
        if not data or data[0] >> 4 != 0:
            return
        request = data[1 : 1 + (data[0] & 0x0F)]
        for ecu in self.ecus:
            self._reply(ecu, request)

    def _broadcast(self, broadcast: Broadcast) -> None:
        assert self.database is not None, "broadcasts need a DBC database"
        message = self.database.get_message_by_name(broadcast.message)
        while not self._stop.wait(broadcast.period_s):
            values = {s.name: 0 for s in message.signals} | broadcast.signals()
            data = message.encode(values, scaling=True, strict=False)
            try:
                self.bus.send(can.Message(arbitration_id=message.frame_id, data=data, is_extended_id=False))
            except can.CanError:
                continue
