"""When to ask for each PID: per-signal rates become per-PID deadlines. Pure: time is given."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

from device_agent.obd import pid_for_signal


class PollSchedule:
    """Earliest-deadline-first polling. A PID that fell behind by more than one period (slow
    adapter) restarts from now instead of bursting to catch up."""

    def __init__(self, rates_hz: Mapping[int, float], now: float) -> None:
        if any(rate <= 0 for rate in rates_hz.values()):
            raise ValueError("poll rates must be positive")
        self.periods = {pid: 1.0 / rate for pid, rate in rates_hz.items()}
        self._heap = [(now, pid) for pid in sorted(self.periods)]
        heapq.heapify(self._heap)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> int | None:
        """The most overdue PID, rescheduled one period later; None when nothing is due."""
        if not self._heap or self._heap[0][0] > now:
            return None
        due, pid = heapq.heappop(self._heap)
        period = self.periods[pid]
        following = due + period
        if following < now - period:
            following = now + period
        heapq.heappush(self._heap, (following, pid))
        return pid

    def drop(self, pid: int) -> None:
        """Stop asking for ``pid`` (the car does not answer it)."""
        self.periods.pop(pid, None)
        self._heap = [(t, p) for t, p in self._heap if p != pid]
        heapq.heapify(self._heap)


@dataclass
class ObdPlan:
    """What to read: catalog signal -> rate in Hz, and how often to read the trouble codes."""

    rates_hz: Mapping[str, float]
    dtc_interval_s: float = 60.0

    def pid_rates(self) -> dict[int, float]:
        rates: dict[int, float] = {}
        for name, rate in self.rates_hz.items():
            pid = pid_for_signal(name)
            rates[pid] = max(rate, rates.get(pid, 0.0))
        return rates
