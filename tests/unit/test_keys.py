"""API keys and passwords, without a database: the key format, its checksum, what is stored."""

from __future__ import annotations

import hashlib
import re
import zlib
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import keys
from registry.accounts import MIN_PASSWORD_LENGTH, hash_password, set_password
from registry.errors import InvalidIdentity
from registry.keys import (
    BASE62,
    DEVELOPER_PREFIX,
    PERSONAL_PREFIX,
    checksum_ok,
    kind_of,
    make_secret,
    secret_hash,
)

PREFIXES = st.sampled_from([DEVELOPER_PREFIX, PERSONAL_PREFIX])
RANDOM_PARTS = st.text(alphabet=BASE62, min_size=30, max_size=30)
#: Replacements from outside the alphabet: separators, look-alikes, unicode digits and letters.
STRANGERS = "_-. +/=\n\x00\u00e9\uff11\uff21\u00df"  # é, fullwidth 1 and A, ß


def base62(value: int, width: int) -> str:
    digits = ""
    while value:
        value, digit = divmod(value, 62)
        digits = BASE62[digit] + digits
    return digits.rjust(width, "0")


@pytest.mark.parametrize(("prefix", "kind"), [(DEVELOPER_PREFIX, "developer"),
                                              (PERSONAL_PREFIX, "personal")])
def test_a_key_is_its_prefix_30_random_characters_and_a_crc32_checksum(prefix, kind):
    secret = make_secret(prefix)
    assert re.fullmatch(re.escape(prefix) + "[0-9A-Za-z]{36}", secret)
    body, checksum = secret[:-6], secret[-6:]
    assert checksum == base62(zlib.crc32(body.encode()), 6)  # zero-padded, 0-9A-Za-z order
    assert checksum_ok(secret) and kind_of(secret) == kind
    assert secret != make_secret(prefix)


def test_the_checksum_is_zero_padded_to_six_characters():
    assert BASE62 == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert keys._checksum("") == "000000"  # crc32(b"") == 0
    assert all(len(keys._checksum(make_secret(DEVELOPER_PREFIX)[:-6])) == 6 for _ in range(100))


def test_an_unknown_prefix_is_refused():
    with pytest.raises(ValueError, match="motus_live_"):
        make_secret("sk_live_")


@settings(max_examples=60, deadline=None)
@given(PREFIXES, RANDOM_PARTS)
def test_the_checksum_catches_every_single_character_change(prefix, random_part):
    secret = keys._compose(prefix, random_part)
    assert checksum_ok(secret)
    for i, original in enumerate(secret):
        for replacement in BASE62 + STRANGERS:
            if replacement != original:
                typo = secret[:i] + replacement + secret[i + 1:]
                assert not checksum_ok(typo), (secret, typo)
                assert kind_of(typo) is None
        assert not checksum_ok(secret[:i] + secret[i + 1:])  # a character dropped
    for i in range(len(secret) - 1):  # two neighbours swapped
        swapped = secret[:i] + secret[i + 1] + secret[i] + secret[i + 2:]
        assert swapped == secret or not checksum_ok(swapped)


def test_the_checksum_catches_changes_in_keys_as_they_are_made():
    for prefix in (DEVELOPER_PREFIX, PERSONAL_PREFIX):
        for _ in range(20):
            secret = make_secret(prefix)
            typos = {secret[:i] + c + secret[i + 1:] for i in range(len(secret)) for c in BASE62}
            assert [t for t in typos - {secret} if checksum_ok(t)] == []


@given(st.text())
def test_checksum_ok_never_raises_on_arbitrary_text(text):
    assert checksum_ok(text) in (False, True)
    assert kind_of(text) in (None, "developer", "personal")


@given(PREFIXES, st.text(max_size=40))
def test_checksum_ok_never_raises_on_text_behind_a_prefix(prefix, rest):
    well_formed = (len(rest) == 36 and set(rest) <= set(BASE62)
                   and keys._checksum(prefix + rest[:-6]) == rest[-6:])
    assert checksum_ok(prefix + rest) == well_formed


def test_checksum_ok_refuses_what_is_not_a_key():
    good = make_secret(DEVELOPER_PREFIX)
    for bad in ["", DEVELOPER_PREFIX, good + "0", good[:-1], " " + good, good.upper(),
                good.replace(DEVELOPER_PREFIX, PERSONAL_PREFIX), "sk_live_" + good[11:]]:
        assert not checksum_ok(bad) and kind_of(bad) is None
    for not_text in (None, 42, good.encode(), [good]):
        assert not checksum_ok(cast(Any, not_text))


def test_what_is_stored_is_the_sha256_of_the_secret():
    secret = make_secret(PERSONAL_PREFIX)
    digest = secret_hash(secret)
    assert digest == hashlib.sha256(secret.encode()).digest() and len(digest) == 32
    assert secret.encode() not in digest


def test_passwords_are_hashed_with_argon2id():
    hashed = hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert hash_password("correct horse battery staple") != hashed  # salted


def test_a_short_password_is_refused_before_the_database_is_touched():
    short = "x" * (MIN_PASSWORD_LENGTH - 1)
    with pytest.raises(InvalidIdentity, match=f"at least {MIN_PASSWORD_LENGTH} characters"):
        hash_password(short)
    with pytest.raises(InvalidIdentity, match=f"at least {MIN_PASSWORD_LENGTH} characters"):
        set_password(cast(Any, None), "ana@example.com", short, cast(Any, None))
    assert hash_password("x" * MIN_PASSWORD_LENGTH).startswith("$argon2id$")
