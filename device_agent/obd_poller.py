"""The polling loop shared by the OBD-II sources (ELM327 adapters and CAN): read the VIN once,
then each PID at its rate and the trouble codes at theirs, until told to stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from device_agent.agent import ReadingQueue
from device_agent.obd import DTC_LIST_SIGNAL, Mode01Value, dtc_list_value
from device_agent.polling import ObdPlan, PollSchedule
from protocol.envelope import SignalReading

log = logging.getLogger(__name__)

#: An advertised PID that answers NO DATA this many times in a row is dropped (a common quirk
#: of clones and of ECUs that advertise more than they have).
NO_DATA_LIMIT = 5


class ObdReader(Protocol):
    def read_mode01(self, pid: int, wanted: set[str] | None = None) -> list[Mode01Value] | None: ...

    def read_vin(self) -> str | None: ...

    def read_dtcs(self) -> list[str] | None: ...


def emit(readings: ReadingQueue, values: Sequence[tuple[str, float | str]], at: datetime) -> None:
    """Stamp ``values`` with ``at`` (when they were read) and queue them."""
    readings.put([SignalReading(name=name, timestamp=at, value=value) for name, value in values])


def poll_car(
    reader: ObdReader,
    supported_pids: Iterable[int],
    plan: ObdPlan,
    readings: ReadingQueue,
    stop: threading.Event,
    *,
    clock: Callable[[], float],
    wall: Callable[[], datetime],
    on_vin: Callable[[str], None],
) -> None:
    """Poll until ``stop``: ``clock`` (monotonic) schedules, ``wall`` (UTC) stamps readings."""
    vin = reader.read_vin()
    if vin:
        on_vin(vin)
    supported = set(supported_pids)
    wanted = set(plan.rates_hz)
    pid_rates = plan.pid_rates()
    unsupported = sorted(pid for pid in pid_rates if pid not in supported)
    if unsupported:
        log.warning("the car does not support PIDs %s; not polling them",
                    " ".join(f"{p:02X}" for p in unsupported))
    schedule = PollSchedule({p: r for p, r in pid_rates.items() if p in supported}, clock())
    next_dtc = clock()
    no_data: dict[int, int] = {}
    while not stop.is_set():
        now = clock()
        if now >= next_dtc:
            codes = reader.read_dtcs()
            if codes is not None:
                emit(readings, [(DTC_LIST_SIGNAL, dtc_list_value(codes))], wall())
            next_dtc = now + plan.dtc_interval_s
        pid = schedule.pop_due(now)
        if pid is None:
            due = schedule.next_due()
            stop.wait(max(0.0, min(next_dtc, due if due is not None else next_dtc) - clock()))
            continue
        values = reader.read_mode01(pid, wanted)
        if values is None:
            no_data[pid] = no_data.get(pid, 0) + 1
            if no_data[pid] >= NO_DATA_LIMIT:
                log.warning("PID %02X answered NO DATA %d times; not polling it", pid, NO_DATA_LIMIT)
                schedule.drop(pid)
            continue
        no_data.pop(pid, None)
        emit(readings, [(v.name, v.value) for v in values], wall())
