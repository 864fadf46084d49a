"""The agent's error base. Blame is explicit: the adapter or the car, the config, or the link."""

from __future__ import annotations


class AgentError(Exception):
    """Base of the agent's own errors."""


class AdapterError(AgentError):
    """The OBD adapter, CAN interface or GPS receiver misbehaved or went away."""


class SpoolError(AgentError):
    """The spool file cannot be opened or written (full disk, corrupt file, wrong schema)."""
