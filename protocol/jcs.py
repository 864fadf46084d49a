"""RFC 8785 (JSON Canonicalization Scheme) at C speed for the documents we sign.

``dumps`` hands the document to the standard library's C JSON encoder once it has checked that
the encoder's output is already canonical for it, and to the reference ``rfc8785`` package
otherwise. The C encoder is canonical when:

* every object key is ASCII, so sorting by code point equals RFC 8785's sort by UTF-16 code
  units (section 3.2.3);
* strings hold no lone surrogates; its escapes are RFC 8785's (section 3.2.2.2: the two-letter
  escapes, ``\\u00xx`` in lower case for other controls, everything else as UTF-8);
* numbers print as ECMAScript does (section 3.2.2.3): integers and integral floats within
  2^53 (printed as integers), and other floats in [1e-4, 1e16), where Python's shortest round-trip
  ``repr`` uses plain notation, like ECMAScript's Number.prototype.toString.

A property test (tests/unit/test_signing.py) holds ``dumps`` equal to ``rfc8785.dumps``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import rfc8785

from protocol.errors import ProtocolError

_SAFE_INTEGER = 2**53 - 1  # Number.MAX_SAFE_INTEGER; the reference refuses larger integers
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


class _NotPlain(ProtocolError):
    """The document needs the reference canonicalizer."""


def _plain(value: Any) -> Any:
    """``value`` with integral floats as ints; raise _NotPlain where the C encoder would differ."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
            return value
        raise _NotPlain
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlain
        if value.is_integer():
            if abs(value) <= _SAFE_INTEGER:
                return int(value)  # also -0.0 -> 0, as ECMAScript prints it
            raise _NotPlain  # ECMAScript pads the shortest digits with zeros; int() would not
        if 1e-4 <= abs(value) < 1e16:
            return value
        raise _NotPlain
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise _NotPlain
            out[key] = _plain(item)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    raise _NotPlain


class PlainObject(dict[str, Any]):
    """A parsed JSON object known to be plain throughout (see ``loads``): ``dumps`` of it, or of
    a copy of its members, needs no checking walk."""


def loads(text: str, **options: Any) -> Any:
    """``json.loads`` that notes, while parsing, whether the document is plain: then the top
    object comes back as a PlainObject, with integral numbers as ints (JSON has one number type,
    so 50.0 and 50 are the same value)."""
    plain = [text.isascii()]  # an ASCII text has ASCII keys (escaped ones are checked below)

    def parse_float(literal: str) -> float | int:
        value = float(literal)
        if value.is_integer():
            if abs(value) <= _SAFE_INTEGER:
                return int(value)
            plain[0] = False
        elif not 1e-4 <= abs(value) < 1e16:
            plain[0] = False
        return value

    def parse_int(literal: str) -> int:
        value = int(literal)
        if abs(value) > _SAFE_INTEGER:
            plain[0] = False
        return value

    document = json.loads(text, parse_float=parse_float, parse_int=parse_int, **options)
    if plain[0] and "\\u" in text:
        plain[0] = False  # escapes may spell non-ASCII keys or lone surrogates: check the slow way
    if plain[0] and isinstance(document, dict):
        return PlainObject(document)
    return document


def dumps(value: Any, *, plain: bool = False) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``value`` (raises as ``rfc8785.dumps`` does).

    ``plain``: the caller knows ``value`` is plain (the members of a PlainObject)."""
    try:
        return _ENCODER.encode(value if plain else _plain(value)).encode("utf-8")
    except (_NotPlain, UnicodeEncodeError, ValueError):
        return bytes(rfc8785.dumps(value))
