-- Drivers, their vehicles, and the devices that speak for those vehicles.

CREATE TABLE drivers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL UNIQUE CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vehicles (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    uuid NOT NULL REFERENCES drivers (id),
    -- ISO 3779: 17 characters, no I, O or Q.
    vin         text UNIQUE CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    make        text,
    model       text,
    year        smallint CHECK (year BETWEEN 1900 AND 2100),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vehicles_owner ON vehicles (owner_id);

CREATE TABLE devices (
    -- One MQTT topic level (protocol.topics.DEVICE_ID_PATTERN).
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$'),
    -- Raw 32-byte Ed25519 public key (RFC 8032) that verifies the device's events.
    public_key  bytea NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    owner_id    uuid NOT NULL REFERENCES drivers (id),
    vehicle_id  uuid REFERENCES vehicles (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX devices_vehicle ON devices (vehicle_id);
