"""Checks of what people type when they register: e-mail addresses and VINs (pure).

The database checks the same rules (migration 0002); checking here first gives an error a
person can act on instead of a constraint name.
"""

from __future__ import annotations

import re

from registry.errors import InvalidIdentity

VIN_LENGTH = 17
#: ISO 3779: digits and capital letters except I, O and Q (they read like 1 and 0).
VIN_PATTERN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def check_email(text: str) -> str:
    """The address, trimmed; InvalidIdentity unless it looks like name@domain.tld."""
    email = text.strip()
    if not EMAIL_PATTERN.fullmatch(email):
        raise InvalidIdentity(f"{text!r} is not an e-mail address (expected name@example.com)")
    return email


def check_vin(text: str) -> str:
    """The VIN in capitals; InvalidIdentity naming what is wrong with it (ISO 3779)."""
    vin = text.strip().upper()
    if len(vin) != VIN_LENGTH:
        raise InvalidIdentity(f"{text!r} is not a VIN: a VIN has {VIN_LENGTH} characters (ISO 3779), "
                              f"this one has {len(vin)}")
    wrong = sorted({c for c in vin if not VIN_PATTERN.fullmatch(c * VIN_LENGTH)})
    if wrong:
        said = ", ".join(repr(c) for c in wrong)
        hint = " (I, O and Q never appear in a VIN: they read like 1 and 0)" \
            if set(wrong) & set("IOQ") else ""
        raise InvalidIdentity(f"{text!r} is not a VIN: it holds {said}{hint}")
    return vin
