"""The agent's stop handler: a second signal while the first is being handled never waits on
the stop event's lock (Python runs the handler on the main thread, possibly inside set())."""

from __future__ import annotations

import signal
import threading

from device_agent.cli import stop_handler


def test_the_first_signal_asks_the_agent_to_stop():
    stop = threading.Event()
    stop_handler(stop)(signal.SIGTERM, None)
    assert stop.is_set()


def test_a_signal_arriving_inside_stop_set_returns_at_once():
    stop = threading.Event()
    handler = stop_handler(stop)
    handler(signal.SIGTERM, None)
    returned = threading.Event()

    def as_if_inside_set() -> None:
        with stop._cond:  # type: ignore[attr-defined]  # the lock Event.set() holds (not reentrant)
            handler(signal.SIGINT, None)  # would block forever if it called set() again
            returned.set()

    worker = threading.Thread(target=as_if_inside_set, daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert returned.is_set()
