"""The API's error base."""

from __future__ import annotations


class ApiError(Exception):
    """Base of the errors the API defines; each is answered as an RFC 9457 problem."""
