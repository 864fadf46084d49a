"""The error base of ``connections``: a broker or database that could not be reached or refused us."""

from __future__ import annotations


class ConnectionsError(Exception):
    """Base of the errors of ``connections``."""


class BrokerRefused(ConnectionsError):
    """The broker refused a connection, a subscription or a message; ``reason`` is what it said
    (an MQTT 5 reason code string, or "no answer")."""

    def __init__(self, context: str, reason: str) -> None:
        super().__init__(f"{context}: {reason}")
        self.reason = reason


class BrokerUnreachable(ConnectionsError):
    """No broker listens where the endpoint points (connection refused, unknown host, TLS failure)."""


class DatabaseUnreachable(ConnectionsError):
    """The database could not be reached; the message says where it looked and what to run."""
