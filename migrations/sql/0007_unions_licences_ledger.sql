-- The money side (rewards/, docs/rewards.md): developers, data unions and their bylaws,
-- memberships and the driver's knob, strikes, licences, the access log, the ledger and epochs.

-- Who may hold a licence. API keys come with the data API.
CREATE TABLE developers (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation   text NOT NULL UNIQUE CHECK (length(btrim(organisation)) BETWEEN 1 AND 120),
    contact_email  text NOT NULL CHECK (contact_email ~ '^[^@\s]+@[^@\s]+$'),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE unions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
    operator_email  text NOT NULL CHECK (operator_email ~ '^[^@\s]+@[^@\s]+$'),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Versioned bylaws (rewards/bylaws.py): a version adopted during a week applies from the next
-- week's Monday; the first applies from its union's first week.
CREATE TABLE union_bylaws (
    union_id        uuid NOT NULL REFERENCES unions (id),
    version         integer NOT NULL CHECK (version > 0),
    effective_from  date NOT NULL CHECK (extract(isodow FROM effective_from) = 1),
    adopted_at      timestamptz NOT NULL,
    document        jsonb NOT NULL,
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (union_id, version)
);

-- A vehicle belongs to at most one union at a time. A request to a union that admits by
-- approval waits with joined_at NULL.
CREATE TABLE memberships (
    id            bigserial PRIMARY KEY,
    vehicle_id    uuid NOT NULL REFERENCES vehicles (id),
    union_id      uuid NOT NULL REFERENCES unions (id),
    requested_at  timestamptz NOT NULL,
    joined_at     timestamptz,
    left_at       timestamptz,
    CHECK (joined_at IS NULL OR joined_at >= requested_at),
    CHECK (left_at IS NULL OR left_at >= requested_at)
);
CREATE UNIQUE INDEX memberships_one_union ON memberships (vehicle_id) WHERE left_at IS NULL;
CREATE INDEX memberships_union ON memberships (union_id);

CREATE TABLE membership_pauses (
    membership_id  bigint NOT NULL REFERENCES memberships (id),
    paused_at      timestamptz NOT NULL,
    resumed_at     timestamptz CHECK (resumed_at IS NULL OR resumed_at >= paused_at),
    PRIMARY KEY (membership_id, paused_at)
);
CREATE UNIQUE INDEX membership_pauses_one_open ON membership_pauses (membership_id)
    WHERE resumed_at IS NULL;

-- The one knob (rewards/knob.py), with its history: coverage is judged day by day.
CREATE TABLE knob_settings (
    driver_id  uuid NOT NULL REFERENCES drivers (id),
    set_at     timestamptz NOT NULL,
    level      smallint NOT NULL CHECK (level BETWEEN 0 AND 2),
    PRIMARY KEY (driver_id, set_at)
);

-- A data strike stops the union's licences (or one developer's) while it lasts.
CREATE TABLE strikes (
    id            bigserial PRIMARY KEY,
    union_id      uuid NOT NULL REFERENCES unions (id),
    developer_id  uuid REFERENCES developers (id),
    called_by     text NOT NULL CHECK (called_by IN ('operator', 'member-vote')),
    votes         integer CHECK (votes >= 0),
    reason        text NOT NULL,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX strikes_union ON strikes (union_id);
CREATE UNIQUE INDEX strikes_one_running ON strikes
    (union_id, coalesce(developer_id, '00000000-0000-0000-0000-000000000000'::uuid)) WHERE ended_at IS NULL;

CREATE TABLE licences (
    id            uuid PRIMARY KEY,
    union_id      uuid NOT NULL REFERENCES unions (id),
    developer_id  uuid NOT NULL REFERENCES developers (id),
    purpose       text NOT NULL,
    scope         text[] NOT NULL CHECK (cardinality(scope) > 0),
    starts        date NOT NULL,
    ends          date NOT NULL CHECK (ends > starts),
    price_minor   bigint NOT NULL CHECK (price_minor >= 0),
    granted_at    timestamptz NOT NULL,
    revoked_at    timestamptz CHECK (revoked_at IS NULL OR revoked_at >= granted_at),
    receipt       jsonb NOT NULL
);
CREATE INDEX licences_union ON licences (union_id);
CREATE INDEX licences_developer ON licences (developer_id);

-- Every read that returns data (written by the data API): what rewards divide "by data served"
-- and what a driver sees of who read their car.
CREATE TABLE data_access (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    developer_id  uuid NOT NULL REFERENCES developers (id),
    api_key_id    text,
    licence_id    uuid NOT NULL REFERENCES licences (id),
    purpose       text NOT NULL,
    vehicle_id    uuid NOT NULL REFERENCES vehicles (id),
    signals       text[] NOT NULL,
    range_from    timestamptz NOT NULL,
    range_to      timestamptz NOT NULL CHECK (range_to >= range_from),
    rows          integer NOT NULL CHECK (rows >= 0)
);
CREATE INDEX data_access_vehicle_at ON data_access (vehicle_id, at);
CREATE INDEX data_access_licence_at ON data_access (licence_id, at);

-- The ledger (rewards/ledger.py): double entry in integer minor units, append-only, each row
-- chained to the one before by SHA-256. `at` is kept as the text that was hashed.
CREATE TABLE ledger_entries (
    seq        bigint PRIMARY KEY CHECK (seq > 0),
    txn        text NOT NULL,
    kind       text NOT NULL,
    settles    text NOT NULL,
    memo       text NOT NULL,
    asset      text NOT NULL,
    account    text NOT NULL,
    amount     bigint NOT NULL CHECK (amount <> 0),
    at         text NOT NULL,
    prev_hash  bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash       bytea NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account, asset);
-- A transaction posts to an account once per asset: a transaction recorded twice is refused.
CREATE UNIQUE INDEX ledger_entries_txn_posting ON ledger_entries (txn, asset, account);
CREATE INDEX ledger_entries_settles ON ledger_entries (settles);

CREATE FUNCTION motus_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'correct an entry with a new transaction';
END $$;
CREATE TRIGGER ledger_entries_no_update_or_delete BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION motus_ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION motus_ledger_append_only();

-- Late proofs are found by when they were written: the clock at the insert, not the start of
-- the proving transaction (which may have begun before an epoch closed).
ALTER TABLE movement_proofs ALTER COLUMN proved_at SET DEFAULT clock_timestamp();

-- A closed epoch: its rows of the ledger, the chain's head after them and the signed payout root.
CREATE TABLE epochs (
    week            text PRIMARY KEY CHECK (week ~ '^\d{4}-W\d{2}$'),
    closed_at       timestamptz NOT NULL,
    first_seq       bigint,
    last_seq        bigint,
    head_hash       bytea,
    payout_root     bytea NOT NULL CHECK (octet_length(payout_root) = 32),
    root_signature  bytea NOT NULL CHECK (octet_length(root_signature) = 64),
    summary         jsonb NOT NULL
);
CREATE TRIGGER epochs_no_update_or_delete BEFORE UPDATE OR DELETE ON epochs
    FOR EACH ROW EXECUTE FUNCTION motus_ledger_append_only();

-- The leaves of each epoch's payout tree, in tree order, for inclusion proofs.
CREATE TABLE epoch_payouts (
    week        text NOT NULL REFERENCES epochs (week),
    leaf_index  integer NOT NULL,
    driver_id   uuid NOT NULL,
    leaf        bytea NOT NULL,
    PRIMARY KEY (week, leaf_index)
);
CREATE UNIQUE INDEX epoch_payouts_driver ON epoch_payouts (driver_id, week);

-- Per licence and epoch: what was covered, charged and split (the operators' reports).
CREATE TABLE epoch_licences (
    week           text NOT NULL REFERENCES epochs (week),
    licence_id     uuid NOT NULL REFERENCES licences (id),
    vehicles       integer NOT NULL,
    vehicle_days   integer NOT NULL,
    charge         bigint NOT NULL,
    network_fee    bigint NOT NULL,
    operator_fee   bigint NOT NULL,
    members_share  bigint NOT NULL,
    PRIMARY KEY (week, licence_id)
);
