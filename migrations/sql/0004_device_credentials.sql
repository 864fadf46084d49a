-- Broker credentials of each device, kept where any broker can check them.
-- Mosquitto's dynamic security plugin holds its own copy (broker_config/); an EMQX cluster
-- authenticates straight against the mqtt_credentials view (broker_config/emqx/).
-- Hash: hex of PBKDF2-HMAC-SHA512(password, salt as UTF-8, 10000 rounds, 64 bytes).
ALTER TABLE devices
    ADD COLUMN mqtt_password_hash text CHECK (mqtt_password_hash ~ '^[0-9a-f]{128}$'),
    ADD COLUMN mqtt_password_salt text CHECK (mqtt_password_salt ~ '^[A-Za-z0-9_-]{16,64}$');

-- Ingest asks "who was revoked lately?" once per batch.
CREATE INDEX devices_revoked_at ON devices (revoked_at) WHERE revoked_at IS NOT NULL;

-- A revoked device has no credentials.
CREATE VIEW mqtt_credentials AS
    SELECT id AS username, mqtt_password_hash AS password_hash, mqtt_password_salt AS salt,
           false AS is_superuser
    FROM devices
    WHERE revoked_at IS NULL AND mqtt_password_hash IS NOT NULL;
