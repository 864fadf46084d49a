"""Sign-in accounts of drivers and union operators (migration 0008): argon2id passwords and
console sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106); a hash made with weaker
parameters than today's is replaced at the next successful sign-in. A session is a random token
the browser holds; only its SHA-256 is stored. Plain SQL on a connection the caller holds; the
caller owns the transaction. Clocks are passed in.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import cast

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from registry.errors import InvalidIdentity, ProvisioningError
from registry.identity import check_email

Connection = psycopg.Connection[tuple[object, ...]]

MIN_PASSWORD_LENGTH = 12
SESSION_TTL = timedelta(hours=12)

_hasher = PasswordHasher()  # Argon2id (RFC 9106's second recommendation) unless told otherwise


def hash_password(password: str) -> str:
    """The argon2id hash of a password long enough; InvalidIdentity saying the minimum if not."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidIdentity(f"a password needs at least {MIN_PASSWORD_LENGTH} characters, "
                              f"this one has {len(password)}")
    return _hasher.hash(password)


@cache
def _decoy_hash() -> str:
    """A hash to verify against when there is none, so an unknown account costs the same time."""
    return _hasher.hash(secrets.token_urlsafe(24))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def set_password(conn: Connection, email: str, password: str, now: datetime) -> None:
    """Set the account's password, creating the account if new."""
    email = check_email(email)
    password_hash = hash_password(password)
    conn.execute(
        "INSERT INTO accounts (email, password_hash, created_at, updated_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (email) DO UPDATE"
        " SET password_hash = EXCLUDED.password_hash, updated_at = EXCLUDED.updated_at",
        (email, password_hash, now, now),
    )


def check_password(conn: Connection, email: str, password: str) -> bool:
    """Whether this is the account's password. False for an unknown account and for one with no
    password, after the same work as a real check, so the time taken does not tell which."""
    row = conn.execute("SELECT password_hash FROM accounts WHERE email = %s",
                       (email.strip(),)).fetchone()
    stored = None if row is None else cast(str | None, row[0])
    if stored is None:
        _verify(_decoy_hash(), password)
        return False
    if not _verify(stored, password):
        return False
    if _hasher.check_needs_rehash(stored):
        conn.execute("UPDATE accounts SET password_hash = %s WHERE email = %s AND password_hash = %s",
                     (_hasher.hash(password), email.strip(), stored))
    return True


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def open_session(conn: Connection, email: str, now: datetime, ttl: timedelta = SESSION_TTL) -> str:
    """A new console session of the account, valid for ``ttl``; returns its token (the only copy:
    the database keeps its SHA-256)."""
    if ttl <= timedelta(0):
        raise ValueError(f"a session's lifetime must be positive, not {ttl}")
    email = email.strip()
    if conn.execute("SELECT 1 FROM accounts WHERE email = %s", (email,)).fetchone() is None:
        raise ProvisioningError(f"there is no account for {email}")
    token = secrets.token_urlsafe(32)
    conn.execute("INSERT INTO sessions (token_sha256, account_email, created_at, expires_at)"
                 " VALUES (%s, %s, %s, %s)", (_token_hash(token), email, now, now + ttl))
    return token


def session_account(conn: Connection, token: str, now: datetime) -> str | None:
    """The e-mail address of the session's account, if the session is open at ``now``."""
    row = conn.execute(
        "SELECT account_email FROM sessions WHERE token_sha256 = %s AND revoked_at IS NULL"
        " AND expires_at > %s", (_token_hash(token), now)).fetchone()
    return None if row is None else str(row[0])


def close_session(conn: Connection, token: str, now: datetime) -> None:
    """End the session (signing out); nothing happens for an unknown or closed one."""
    conn.execute("UPDATE sessions SET revoked_at = coalesce(revoked_at, %s) WHERE token_sha256 = %s",
                 (now, _token_hash(token)))
