"""Reconnect delays: exponential with jitter, so a fleet that lost the broker together does not
come back in one synchronized wave ("equal jitter", half fixed and half random)."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    initial_s: float = 1.0
    max_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * float(2 ** min(self.attempts, 32)))
        self.attempts += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0

    def wait_after(self, what: str, error: Exception, stop: threading.Event) -> None:
        """Log why ``what`` failed, then wait the next delay (or until ``stop``)."""
        delay = self.next_delay()
        log.warning("%s: %s; retrying in %.1f s", what, error, delay)
        stop.wait(delay)
