"""The `motus` command (it mounts every package's own sub-commands) and the demo of the whole
network."""
