"""The `motus` command and the local stack of real Mosquitto and PostgreSQL."""
