-- Who calls the data API and who signs in to the console (registry/keys.py, registry/accounts.py):
-- sign-in accounts, API keys (developer keys and personal tokens) and console sessions.
-- Secrets are never stored: keys and session tokens are kept as their SHA-256 (high-entropy
-- secrets need no salt), passwords as argon2id hashes.

-- People who sign in (drivers and union operators): e-mail and an argon2id password hash.
CREATE TABLE accounts (
    email          text PRIMARY KEY CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    password_hash  text CHECK (password_hash LIKE '$argon2id$%'),   -- NULL: tokens only, no sign-in
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A developer key (motus_live_...) belongs to a developer account, a personal token
-- (motus_pat_...) to a sign-in account; never both. Revoked keys stay, so a caller can be told
-- "revoked" and data_access.api_key_id keeps its meaning.
CREATE TABLE api_keys (
    id             text PRIMARY KEY CHECK (id ~ '^key_[0-9a-f]{12}$'),
    kind           text NOT NULL CHECK (kind IN ('developer', 'personal')),
    developer_id   uuid REFERENCES developers (id),
    account_email  text REFERENCES accounts (email),
    label          text NOT NULL DEFAULT '',
    -- SHA-256 of the whole secret, prefix and checksum included; the secret is shown once.
    secret_sha256  bytea NOT NULL UNIQUE CHECK (octet_length(secret_sha256) = 32),
    created_at     timestamptz NOT NULL,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    CHECK ((kind = 'developer') = (developer_id IS NOT NULL)),
    CHECK ((kind = 'personal') = (account_email IS NOT NULL))
);
CREATE INDEX api_keys_developer ON api_keys (developer_id);
CREATE INDEX api_keys_account ON api_keys (account_email);

-- Console sessions: the SHA-256 of the cookie's token, valid until expires_at or revoked_at.
CREATE TABLE sessions (
    token_sha256   bytea PRIMARY KEY CHECK (octet_length(token_sha256) = 32),
    account_email  text NOT NULL REFERENCES accounts (email),
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);
