"""MQTT consumer -> verify, validate, dedupe -> binary COPY into TimescaleDB/PostgreSQL."""
