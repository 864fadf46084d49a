"""The error base of the local stack and the services harness."""

from __future__ import annotations


class StackError(Exception):
    """The local stack could not be started, stopped or read."""


class MissingBinary(StackError):
    """A server program the stack needs is not installed (scripts/setup.sh installs it)."""


class ServiceError(StackError):
    """A `motus` service did not become ready, or died; the message carries its log's tail."""
