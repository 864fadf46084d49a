"""Exact splits of integer amounts (minor units, never floats).

Largest remainder (Hamilton's method): every share gets the floor of its exact part, and the units
left over go one each to the largest fractional parts, ties broken by key, so a split always sums
to its input and does not depend on the order the shares were given in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar
from uuid import UUID

#: Keys order the tie-break: text, or UUIDs (whose order is their canonical text's order).
K = TypeVar("K", str, UUID)

BPS = 10_000  # basis points in a whole


def split_by_weights(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """``total`` (>= 0) divided in proportion to ``weights`` (>= 0), summing exactly to ``total``.

    Keys with weight 0 get 0. With no positive weight only a total of 0 can be split."""
    if total < 0:
        raise ValueError(f"cannot split a negative amount ({total})")
    if any(w < 0 for w in weights.values()):
        raise ValueError("weights must not be negative")
    whole = sum(weights.values())
    if whole == 0:
        if total:
            raise ValueError(f"cannot split {total} over no positive weight")
        return dict.fromkeys(weights, 0)
    shares: dict[K, int] = {}
    remainders: list[tuple[int, int | str, K]] = []
    for key, weight in weights.items():
        share, remainder = divmod(total * weight, whole)
        shares[key] = share
        if remainder:
            # a UUID orders as its 128-bit integer, which compares at C speed
            remainders.append((-remainder, key.int if isinstance(key, UUID) else key, key))
    left = total - sum(shares.values())
    remainders.sort()  # largest remainder first, then by key
    for _, _, key in remainders[:left]:
        shares[key] += 1
    return shares


def format_minor(amount: int, exponent: int = 2) -> str:
    """``1234`` -> ``"12.34"``: an amount in minor units as a decimal string, exactly."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exponent)
    return f"{sign}{whole:,}.{frac:0{exponent}d}" if exponent else f"{sign}{whole:,}"
