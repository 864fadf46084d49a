"""OBD-II straight on the CAN bus (ISO 15765-4, 11-bit ids, 500 or 250 kbit/s): requests over
ISO-TP with can-isotp, through python-can (socketcan on a Pi with a CAN hat; the virtual bus in
tests).

Discovery sends the functional request 0100 to 0x7DF and notes which of 0x7E8-0x7EF answer
(ISO 15765-4 section 6.3.2.2); each responder then gets an ISO-TP stack that sends to its physical
id (answer id - 8), so flow control for its multi-frame answers goes to that ECU.
"""

from __future__ import annotations

import logging
import threading
import time

import can
import isotp

from device_agent.errors import AdapterError
from device_agent.obd import (
    SUPPORT_PIDS,
    Mode01Value,
    decode_dtcs,
    decode_mode01,
    decode_vin,
    pids_from_bitmap,
)

log = logging.getLogger(__name__)

FUNCTIONAL_ID = 0x7DF
FIRST_ANSWER_ID, LAST_ANSWER_ID = 0x7E8, 0x7EF
#: ISO 15765-4 P2 timeout: an ECU answers within 50 ms; we allow slack for loaded buses.
P2_TIMEOUT_S = 0.1
#: How long to wait for an ECU's (possibly multi-frame) answer before taking it as silence.
ANSWER_TIMEOUT_S = 0.25


class CanObdClient:
    def __init__(
        self, bus: can.BusABC, notifier: can.Notifier, *, timeout_s: float = ANSWER_TIMEOUT_S
    ) -> None:
        self.bus = bus
        self.notifier = notifier
        self.timeout_s = timeout_s
        self.stacks: dict[int, isotp.NotifierBasedCanStack] = {}
        self.supported_pids: set[int] = set()

    def _functional(self, request: bytes, wait_s: float) -> dict[int, bytes]:
        """Single-frame answers to a functional request, by answer id (discovery only)."""
        answers: dict[int, bytes] = {}
        got = threading.Event()

        def listen(msg: can.Message) -> None:
            if FIRST_ANSWER_ID <= msg.arbitration_id <= LAST_ANSWER_ID and not msg.is_extended_id:
                data = bytes(msg.data)
                if data and data[0] >> 4 == 0:  # single frame
                    answers[msg.arbitration_id] = data[1 : 1 + (data[0] & 0x0F)]
                    got.set()

        self.notifier.add_listener(listen)
        try:
            frame = bytes([len(request)]) + request
            self.bus.send(can.Message(arbitration_id=FUNCTIONAL_ID, data=frame.ljust(8, b"\x00"),
                                      is_extended_id=False))
            deadline = time.monotonic() + wait_s
            got.wait(wait_s)
            time.sleep(max(0.0, min(P2_TIMEOUT_S, deadline - time.monotonic())))  # later ECUs
        except can.CanError as exc:
            raise AdapterError(f"cannot send on the CAN bus: {exc}") from exc
        finally:
            self.notifier.remove_listener(listen)
        return answers

    def discover(self) -> list[int]:
        answers = self._functional(b"\x01\x00", wait_s=self.timeout_s)
        if not answers:
            raise AdapterError("no ECU answered the OBD-II request 0100 on the CAN bus; is the ignition on?")
        for answer_id in sorted(answers):
            stack = isotp.NotifierBasedCanStack(
                self.bus, self.notifier,
                address=isotp.Address(isotp.AddressingMode.Normal_11bits,
                                      txid=answer_id - 8, rxid=answer_id),
                params={"blocking_send": False, "tx_padding": 0x00, "rx_flowcontrol_timeout": 1000,
                        "rx_consecutive_frame_timeout": 1000},
            )
            stack.start()
            self.stacks[answer_id] = stack
        # Follow each ECU's bitmaps only as far as it says it has more (its last bit).
        asking = dict(answers)
        for base in SUPPORT_PIDS:
            following = {}
            for answer_id, data in asking.items():
                if data[:2] == bytes([0x41, base]) and len(data) >= 6:
                    pids = pids_from_bitmap(base, data[2:6])
                    self.supported_pids |= pids
                    if base + 0x20 in pids:
                        following[answer_id] = self._ask(answer_id, bytes([0x01, base + 0x20])) or b""
            if not following:
                break
            asking = following
        log.info("CAN OBD-II: ECUs %s, %d PIDs supported",
                 ",".join(f"{i:03X}" for i in self.stacks), len(self.supported_pids))
        return sorted(self.stacks)

    def _ask(self, answer_id: int, request: bytes) -> bytes | None:
        stack = self.stacks[answer_id]
        while stack.available():  # a late answer to an earlier request
            stack.recv()
        try:
            stack.send(request)
        except isotp.IsoTpError as exc:
            raise AdapterError(f"ISO-TP send to {answer_id - 8:03X} failed: {exc}") from exc
        answer = stack.recv(block=True, timeout=self.timeout_s)
        return bytes(answer) if answer is not None else None

    def _ask_all(self, request: bytes) -> list[bytes]:
        return [a for answer_id in sorted(self.stacks) if (a := self._ask(answer_id, request)) is not None]

    def read_mode01(self, pid: int, wanted: set[str] | None = None) -> list[Mode01Value] | None:
        for answer_id in sorted(self.stacks):
            data = self._ask(answer_id, bytes([0x01, pid]))
            if data is not None and data[:2] == bytes([0x41, pid]):
                try:
                    return decode_mode01(data, wanted)
                except ValueError as exc:
                    raise AdapterError(f"ECU {answer_id:03X}: {exc}") from exc
        return None

    def read_vin(self) -> str | None:
        for data in self._ask_all(b"\x09\x02"):
            try:
                return decode_vin(data)
            except ValueError:
                continue
        return None

    def read_dtcs(self) -> list[str] | None:
        answers = [d for d in self._ask_all(b"\x03") if d[:1] == b"\x43"]
        if not answers:
            return None
        return [code for data in answers for code in decode_dtcs(data, can=True)]

    def close(self) -> None:
        for stack in self.stacks.values():
            stack.stop()
        self.stacks.clear()
