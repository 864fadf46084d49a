"""The error base of the ingest."""

from __future__ import annotations


class IngestError(Exception):
    """The ingest could not reach the broker or the database, or the broker refused it."""
