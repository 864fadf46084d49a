"""Identities for the data API on a real database: API keys, personal tokens, passwords, console
sessions, and the commands that make them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import psycopg
import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from registry import accounts
from registry.accounts import (
    SESSION_TTL,
    check_password,
    close_session,
    open_session,
    session_account,
    set_password,
)
from registry.cli import account_app, developer_app
from registry.developers import Developer, add_developer
from registry.errors import InvalidIdentity, ProvisioningError
from registry.keys import (
    DEVELOPER_PREFIX,
    PERSONAL_PREFIX,
    ApiKey,
    checksum_ok,
    create_developer_key,
    create_personal_token,
    find_key,
    kind_of,
    list_keys,
    make_secret,
    revoke_key,
    secret_hash,
    touch_key,
)
from tests.fixtures.screen import assert_readable

pytestmark = pytest.mark.integration

T0 = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
KEY_ID = re.compile(r"key_[0-9a-f]{12}")


@pytest.fixture
def conn(database_url) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def developer(conn) -> Developer:
    return add_developer(conn, "Road Research Ltd", "data@road.example")


def account_row(conn, email):
    return conn.execute("SELECT password_hash, created_at, updated_at FROM accounts WHERE email = %s",
                        (email,)).fetchone()


def test_developer_keys_are_created_found_touched_revoked_and_listed(conn, developer):
    key, secret = create_developer_key(conn, developer.id, "  nightly\texport ", T0)
    assert KEY_ID.fullmatch(key.id)
    assert key == ApiKey(key.id, "developer", developer.id, None, "nightly export", T0, None, None)
    assert key.active and secret.startswith(DEVELOPER_PREFIX) and kind_of(secret) == "developer"
    assert find_key(conn, secret) == key
    assert find_key(conn, make_secret(DEVELOPER_PREFIX)) is None  # well-formed, unknown

    touch_key(conn, key.id, T0 + timedelta(minutes=5))
    touch_key(conn, key.id, T0 + timedelta(minutes=1))  # a late report never moves it back
    found = find_key(conn, secret)
    assert found is not None and found.last_used_at == T0 + timedelta(minutes=5)

    other, other_secret = create_developer_key(conn, developer.id, "", T0 + timedelta(hours=1))
    assert other.label == "" and other.id != key.id and other_secret != secret
    assert [k.id for k in list_keys(conn, developer_id=developer.id)] == [key.id, other.id]
    assert list_keys(conn, developer_id=uuid4()) == []
    assert list_keys(conn, email="data@road.example") == []  # a developer key has no account

    revoked = revoke_key(conn, key.id, T0 + timedelta(days=1))
    assert revoked is not None and not revoked.active and revoked.revoked_at == T0 + timedelta(days=1)
    again = revoke_key(conn, key.id, T0 + timedelta(days=2))
    assert again is not None and again.revoked_at == T0 + timedelta(days=1)  # the first time stays
    still = find_key(conn, secret)  # found, so the API can say "revoked" rather than "unknown"
    assert still is not None and not still.active
    assert revoke_key(conn, "key_000000000000", T0) is None
    assert [k.active for k in list_keys(conn, developer_id=developer.id)] == [False, True]

    with pytest.raises(ProvisioningError, match="no developer account"):
        create_developer_key(conn, uuid4(), "", T0)
    with pytest.raises(InvalidIdentity, match="at most 100"):
        create_developer_key(conn, developer.id, "x" * 101, T0)


def test_the_database_holds_only_the_hash(conn, developer):
    _, developer_secret = create_developer_key(conn, developer.id, "ci", T0)
    _, personal_secret = create_personal_token(conn, "ana@example.com", "laptop", T0)
    rows = conn.execute("SELECT k::text, secret_sha256 FROM api_keys k").fetchall()
    stored = " ".join(str(r[0]) for r in rows)
    for secret in (developer_secret, personal_secret):
        body = secret.split("_")[-1]
        for form in (secret, body, body[:30], secret.encode().hex(), body.encode().hex()):
            assert form not in stored
        assert secret_hash(secret) in {bytes(r[1]) for r in rows}

    token = open_session(conn, "ana@example.com", T0)
    sessions = str(conn.execute("SELECT s::text FROM sessions s").fetchall())
    assert token not in sessions and token.encode().hex() not in sessions


def test_a_key_with_a_wrong_checksum_is_refused_without_a_query(conn, developer, database_url):
    _, secret = create_developer_key(conn, developer.id, "", T0)
    typo = secret[:-1] + ("0" if secret[-1] != "0" else "1")
    assert not checksum_ok(typo)
    closed = psycopg.connect(database_url)
    closed.close()
    for bad in (typo, secret[:20], "", "Bearer " + secret, secret.upper()):
        assert find_key(closed, bad) is None
    with pytest.raises(psycopg.OperationalError):  # a well-formed key would have needed the database
        find_key(closed, secret)


def test_a_personal_token_creates_the_account(conn):
    key, secret = create_personal_token(conn, " ana@example.com ", "laptop", T0)
    assert key == ApiKey(key.id, "personal", None, "ana@example.com", "laptop", T0, None, None)
    assert secret.startswith(PERSONAL_PREFIX) and kind_of(secret) == "personal"
    assert find_key(conn, secret) == key
    password_hash, created_at, _ = account_row(conn, "ana@example.com")
    assert password_hash is None and created_at == T0  # tokens only: no sign-in
    assert not check_password(conn, "ana@example.com", "")

    set_password(conn, "ana@example.com", PASSWORD, T0 + timedelta(hours=1))
    second, _ = create_personal_token(conn, "ana@example.com", "phone", T0 + timedelta(hours=2))
    assert account_row(conn, "ana@example.com")[0].startswith("$argon2id$")  # kept
    assert list_keys(conn, email="ana@example.com") == [key, second]
    assert [k.id for k in list_keys(conn)] == [key.id, second.id]
    with pytest.raises(InvalidIdentity):
        create_personal_token(conn, "not an address", "", T0)


def test_passwords_right_wrong_and_unknown(conn):
    set_password(conn, " ana@example.com", PASSWORD, T0)
    first_hash, created_at, updated_at = account_row(conn, "ana@example.com")
    assert first_hash.startswith("$argon2id$") and PASSWORD not in first_hash
    assert created_at == updated_at == T0
    assert check_password(conn, "ana@example.com", PASSWORD)
    assert check_password(conn, " ana@example.com ", PASSWORD)
    assert not check_password(conn, "ana@example.com", PASSWORD.upper())
    assert not check_password(conn, "ana@example.com", "")
    assert not check_password(conn, "ben@example.com", PASSWORD)

    set_password(conn, "ana@example.com", "a brand new passphrase", T0 + timedelta(days=1))
    new_hash, created_at, updated_at = account_row(conn, "ana@example.com")
    assert new_hash != first_hash and created_at == T0 and updated_at == T0 + timedelta(days=1)
    assert not check_password(conn, "ana@example.com", PASSWORD)
    assert check_password(conn, "ana@example.com", "a brand new passphrase")

    with pytest.raises(InvalidIdentity, match="at least 12 characters"):
        set_password(conn, "ana@example.com", "too short", T0)
    with pytest.raises(InvalidIdentity, match="not an e-mail address"):
        set_password(conn, "ana", PASSWORD, T0)
    assert account_row(conn, "ana@example.com")[0] == new_hash


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, hash, password):
        self.verified += 1
        return super().verify(hash, password)


def test_an_unknown_account_costs_one_verification_like_a_known_one(conn, monkeypatch):
    set_password(conn, "ana@example.com", PASSWORD, T0)
    create_personal_token(conn, "ben@example.com", "", T0)  # an account with no password
    for email, password in [("ana@example.com", PASSWORD), ("ana@example.com", "wrong password!"),
                            ("nobody@example.com", PASSWORD), ("ben@example.com", PASSWORD)]:
        hasher = CountingHasher()
        monkeypatch.setattr(accounts, "_hasher", hasher)
        check_password(conn, email, password)
        assert hasher.verified == 1, email


def test_a_hash_with_weaker_parameters_is_replaced_at_the_next_sign_in(conn):
    set_password(conn, "ana@example.com", PASSWORD, T0)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    conn.execute("UPDATE accounts SET password_hash = %s WHERE email = 'ana@example.com'", (weak,))
    assert not check_password(conn, "ana@example.com", "wrong password!")
    assert account_row(conn, "ana@example.com")[0] == weak  # only the right password rehashes
    assert check_password(conn, "ana@example.com", PASSWORD)
    rehashed = account_row(conn, "ana@example.com")[0]
    assert rehashed != weak and rehashed.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(rehashed)
    assert check_password(conn, "ana@example.com", PASSWORD)


def test_sessions_open_find_expire_and_close(conn):
    set_password(conn, "ana@example.com", PASSWORD, T0)
    token = open_session(conn, "ana@example.com", T0)
    assert len(token) >= 43
    stored = conn.execute("SELECT token_sha256, created_at, expires_at FROM sessions").fetchone()
    assert stored is not None and bytes(stored[0]) == secret_hash(token)
    assert (stored[1], stored[2]) == (T0, T0 + SESSION_TTL) and timedelta(hours=12) == SESSION_TTL

    assert session_account(conn, token, T0) == "ana@example.com"
    assert session_account(conn, token, T0 + SESSION_TTL - timedelta(microseconds=1)) == "ana@example.com"
    assert session_account(conn, token, T0 + SESSION_TTL) is None  # expired
    assert session_account(conn, token + "x", T0) is None
    assert session_account(conn, "", T0) is None

    short = open_session(conn, "ana@example.com", T0, ttl=timedelta(minutes=5))
    assert short != token
    assert session_account(conn, short, T0 + timedelta(minutes=6)) is None
    close_session(conn, token, T0 + timedelta(hours=1))
    assert session_account(conn, token, T0 + timedelta(hours=2)) is None
    close_session(conn, token, T0 + timedelta(hours=3))  # closing twice, or an unknown token: no-op
    close_session(conn, "no such token", T0)
    revoked_at = conn.execute("SELECT revoked_at FROM sessions WHERE token_sha256 = %s",
                              (secret_hash(token),)).fetchone()
    assert revoked_at == (T0 + timedelta(hours=1),)

    with pytest.raises(ProvisioningError, match="no account"):
        open_session(conn, "nobody@example.com", T0)
    with pytest.raises(ValueError):
        open_session(conn, "ana@example.com", T0, ttl=timedelta(0))


@pytest.fixture
def cli(database_url):
    runner = CliRunner()
    env = {"MOTUS_DATABASE_URL": database_url, "COLUMNS": "80"}

    def run(app, *args: str, code: int = 0, stdin: str | None = None) -> str:
        result = runner.invoke(app, list(args), env=env, input=stdin)
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_developer_key_commands(cli, conn):
    cli(developer_app, "add", "Road Research Ltd", "--contact", "data@road.example")
    label = "nightly export for the fleet dashboard and the quarterly road-safety report"
    created = cli(developer_app, "key", "create", "Road Research Ltd", "--label", label)
    secrets = re.findall(r"motus_live_[0-9A-Za-z]{36}", created)
    assert len(secrets) == 1 and checksum_ok(secrets[0])
    assert "will not be shown again" in created
    first = find_key(conn, secrets[0])
    assert first is not None and first.label == label and first.id in created

    shown = json.loads(cli(developer_app, "key", "create", "Road Research Ltd", "--label", "ci [nightly]",
                           "--json"))
    assert set(shown) == {"id", "secret", "developer", "label"}
    assert shown["developer"] == "Road Research Ltd" and shown["label"] == "ci [nightly]"
    second = find_key(conn, shown["secret"])
    assert second is not None and second.id == shown["id"] and kind_of(shown["secret"]) == "developer"

    revoked = cli(developer_app, "key", "revoke", first.id)
    assert first.id in revoked and "revoked" in revoked
    assert json.loads(cli(developer_app, "key", "revoke", first.id, "--json"))["active"] is False
    touch_key(conn, second.id, datetime.now(UTC))

    table = cli(developer_app, "key", "list", "Road Research Ltd")
    assert_readable(table, [first.id, second.id, "revoked", "active", "Road Research Ltd", "ci [nightly]"])
    assert table.count("never") == 1  # the first key was never used, the second was
    assert "nightly export for" in table and "road-safety report" in table  # the label folds
    assert secrets[0] not in table and shown["secret"] not in table and "motus_live_" not in table
    listed = json.loads(cli(developer_app, "key", "list", "Road Research Ltd", "--json"))
    assert [(k["id"], k["active"], k["label"]) for k in listed] == [(first.id, False, label),
                                                                   (second.id, True, "ci [nightly]")]
    assert "secret" not in listed[0] and "motus_live_" not in json.dumps(listed)

    assert "no developer named" in cli(developer_app, "key", "create", "Nobody Ltd", code=1)
    assert "no developer named" in cli(developer_app, "key", "list", "Nobody Ltd", code=1)
    assert "no API key" in cli(developer_app, "key", "revoke", "key_000000000000", code=1)
    assert "at most 100" in cli(developer_app, "key", "create", "Road Research Ltd", "--label", "x" * 101,
                                code=2)
    cli(developer_app, "add", "Empty Co", "--contact", "hello@empty.example")
    assert "0 API keys of Empty Co" in cli(developer_app, "key", "list", "Empty Co")
    assert json.loads(cli(developer_app, "key", "list", "Empty Co", "--json")) == []


def test_account_commands(cli, conn):
    said = cli(account_app, "password", "ana@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    assert "password set for ana@example.com" in said and PASSWORD not in said
    assert check_password(conn, "ana@example.com", PASSWORD)

    prompted = cli(account_app, "password", "ana@example.com",
                   stdin="a brand new passphrase\na brand new passphrase\n")
    assert "a brand new passphrase" not in prompted  # hidden as it is typed
    assert check_password(conn, "ana@example.com", "a brand new passphrase")
    cli(account_app, "password", "ana@example.com", stdin="first passphrase\nsecond passphrase\n"
        "a brand new passphrase\na brand new passphrase\n")  # a mismatch asks again

    assert "at least 12" in cli(account_app, "password", "ana@example.com", "--password-stdin",
                                stdin="short\n", code=2)
    assert "not an e-mail address" in cli(account_app, "password", "ana", "--password-stdin",
                                          stdin=PASSWORD + "\n", code=2)
    assert check_password(conn, "ana@example.com", "a brand new passphrase")

    made = cli(account_app, "token", "op@lakeside.example", "--label", "reports")
    tokens = re.findall(r"motus_pat_[0-9A-Za-z]{36}", made)
    assert len(tokens) == 1 and "will not be shown again" in made
    key = find_key(conn, tokens[0])
    assert key is not None and key.kind == "personal" and key.account_email == "op@lakeside.example"
    assert account_row(conn, "op@lakeside.example")[0] is None  # created, tokens only

    shown = json.loads(cli(account_app, "token", "ana@example.com", "--json"))
    assert set(shown) == {"id", "secret", "account", "label"} and shown["account"] == "ana@example.com"
    assert kind_of(shown["secret"]) == "personal"
    assert [k.id for k in list_keys(conn, email="ana@example.com")] == [shown["id"]]
    cli(developer_app, "key", "revoke", shown["id"])
    revoked = find_key(conn, shown["secret"])
    assert revoked is not None and not revoked.active
    assert "not an e-mail address" in cli(account_app, "token", "ana", code=2)
