"""API keys (migration 0008): developer keys and personal tokens of drivers and union operators.

A key reads like Stripe's or GitHub's: a prefix that names its kind, 30 random base62 characters
(about 178 bits) and 6 base62 characters of the CRC32 of what comes before them. The checksum
lets a scanner recognise a leaked key offline and lets the API refuse a mistyped one without a
database read. Only the key's SHA-256 is stored (a high-entropy secret needs no salt); the secret
itself is shown once, when it is made.

The format functions are pure; the store functions take a psycopg connection the caller holds,
and the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast
from uuid import UUID

import psycopg

from registry.errors import InvalidIdentity, ProvisioningError
from registry.identity import check_email

Connection = psycopg.Connection[tuple[object, ...]]
Kind = Literal["developer", "personal"]

DEVELOPER_PREFIX = "motus_live_"
PERSONAL_PREFIX = "motus_pat_"
PREFIXES: dict[str, Kind] = {DEVELOPER_PREFIX: "developer", PERSONAL_PREFIX: "personal"}
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 30
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: every CRC32 fits
MAX_LABEL_LENGTH = 100
_BASE62_SET = frozenset(BASE62)


# --- the format (pure) ---------------------------------------------------------------------------

def _checksum(body: str) -> str:
    """The CRC32 of ``body`` (prefix and random part) in 6 base62 digits, zero-padded."""
    value = zlib.crc32(body.encode("utf-8"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def _compose(prefix: str, random_part: str) -> str:
    return prefix + random_part + _checksum(prefix + random_part)


def make_secret(prefix: str) -> str:
    """A new key: ``prefix``, 30 random base62 characters, 6 of checksum."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown key prefix {prefix!r}; expected one of {sorted(PREFIXES)}")
    return _compose(prefix, "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH)))


def _prefix_of(secret: str) -> str | None:
    return next((p for p in PREFIXES if secret.startswith(p)), None)


def checksum_ok(secret: str) -> bool:
    """Whether ``secret`` is a well-formed Motus key: a known prefix, the right length, base62
    only, a matching checksum. Never raises; says nothing of whether the key exists."""
    if not isinstance(secret, str):
        return False
    prefix = _prefix_of(secret)
    if prefix is None or len(secret) != len(prefix) + RANDOM_LENGTH + CHECKSUM_LENGTH:
        return False
    rest = secret[len(prefix):]
    if not _BASE62_SET.issuperset(rest):
        return False
    return _checksum(secret[:-CHECKSUM_LENGTH]) == secret[-CHECKSUM_LENGTH:]


def kind_of(secret: str) -> Kind | None:
    """The kind of a well-formed key (``checksum_ok``), by its prefix; None for anything else."""
    if not checksum_ok(secret):
        return None
    prefix = _prefix_of(secret)
    return PREFIXES[prefix] if prefix is not None else None


def secret_hash(secret: str) -> bytes:
    """What is stored of a key: the SHA-256 digest of its text (32 bytes)."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def check_label(text: str) -> str:
    """The label with its white space folded; InvalidIdentity past 100 characters."""
    label = " ".join(text.split())
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidIdentity(f"a key's label has at most {MAX_LABEL_LENGTH} characters, "
                              f"this one has {len(label)}")
    return label


# --- the store -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    kind: str
    developer_id: UUID | None
    account_email: str | None
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


_COLUMNS = "id, kind, developer_id, account_email, label, created_at, last_used_at, revoked_at"


def _key(row: tuple[object, ...]) -> ApiKey:
    return ApiKey(str(row[0]), str(row[1]), cast(UUID | None, row[2]), cast(str | None, row[3]),
                  str(row[4]), cast(datetime, row[5]), cast(datetime | None, row[6]),
                  cast(datetime | None, row[7]))


def _insert(conn: Connection, prefix: str, *, developer_id: UUID | None, email: str | None,
            label: str, now: datetime) -> tuple[ApiKey, str]:
    kind = PREFIXES[prefix]
    for _ in range(5):  # an id (48 bits) taken already: draw again rather than fail the transaction
        secret = make_secret(prefix)
        row = conn.execute(
            f"INSERT INTO api_keys (id, kind, developer_id, account_email, label, secret_sha256,"
            f" created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            f" RETURNING {_COLUMNS}",
            (f"key_{secrets.token_hex(6)}", kind, developer_id, email, label, secret_hash(secret), now),
        ).fetchone()
        if row is not None:
            return _key(row), secret
    raise ProvisioningError("could not draw a free API key id; try again")


def create_developer_key(conn: Connection, developer_id: UUID, label: str,
                         now: datetime) -> tuple[ApiKey, str]:
    """A new key of the developer account; returns the record and the secret (show it once)."""
    label = check_label(label)
    if conn.execute("SELECT 1 FROM developers WHERE id = %s", (developer_id,)).fetchone() is None:
        raise ProvisioningError(f"no developer account has the id {developer_id}")
    return _insert(conn, DEVELOPER_PREFIX, developer_id=developer_id, email=None, label=label, now=now)


def create_personal_token(conn: Connection, email: str, label: str,
                          now: datetime) -> tuple[ApiKey, str]:
    """A new personal token of the account with this e-mail address (created, with no password,
    if new); returns the record and the secret (show it once)."""
    email, label = check_email(email), check_label(label)
    conn.execute("INSERT INTO accounts (email, created_at, updated_at) VALUES (%s, %s, %s)"
                 " ON CONFLICT (email) DO NOTHING", (email, now, now))
    return _insert(conn, PERSONAL_PREFIX, developer_id=None, email=email, label=label, now=now)


def find_key(conn: Connection, secret: str) -> ApiKey | None:
    """The key whose secret this is, revoked or not (``ApiKey.active`` tells); None for an unknown
    key, and for a malformed one without a database read."""
    if not checksum_ok(secret):
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE secret_sha256 = %s",
                       (secret_hash(secret),)).fetchone()
    return None if row is None else _key(row)


def touch_key(conn: Connection, key_id: str, now: datetime) -> None:
    """Record a use of the key (last_used_at never goes back)."""
    conn.execute("UPDATE api_keys SET last_used_at = greatest(last_used_at, %s) WHERE id = %s",
                 (now, key_id))


def revoke_key(conn: Connection, key_id: str, now: datetime) -> ApiKey | None:
    """Revoke the key (keeping the first revocation time); None if there is no such key."""
    row = conn.execute(f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"
                       f" RETURNING {_COLUMNS}", (now, key_id)).fetchone()
    return None if row is None else _key(row)


def list_keys(conn: Connection, *, developer_id: UUID | None = None,
              email: str | None = None) -> list[ApiKey]:
    """Keys oldest first: of one developer account, of one sign-in account, or (neither given)
    all of them; both given: keys matching both (none, since a key has one holder)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys"
        " WHERE (%(developer)s::uuid IS NULL OR developer_id = %(developer)s::uuid)"
        " AND (%(email)s::text IS NULL OR account_email = %(email)s::text)"
        " ORDER BY created_at, id",
        {"developer": developer_id, "email": None if email is None else email.strip()},
    ).fetchall()
    return [_key(r) for r in rows]
