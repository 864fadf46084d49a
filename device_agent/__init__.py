"""The in-car agent: sources (ELM327 serial, CAN, GPS NMEA, phone bridge) -> readings ->
signed events -> durable SQLite spool -> MQTT publisher."""
