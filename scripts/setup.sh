#!/usr/bin/env bash
# Prepare this Debian/Ubuntu machine for Motus. Safe to run again: it installs only what is
# missing (Python >= 3.11 with venv, Mosquitto and its clients, PostgreSQL server binaries,
# OpenSSL), then creates .venv and installs the project with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

find_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

packages=()
PYTHON="$(find_python || true)"
if [ -z "$PYTHON" ]; then
    packages+=(python3.11 python3.11-venv)
elif ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    packages+=("$(basename "$PYTHON")-venv")
fi
# Mosquitto 2.x with its dynamic security plugin (both in Debian's 'mosquitto' package).
if ! { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } \
    || ! compgen -G "/usr/lib/*/mosquitto_dynamic_security.so" >/dev/null; then
    packages+=(mosquitto)
fi
command -v mosquitto_pub >/dev/null 2>&1 || packages+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then
    packages+=(postgresql)
fi

if [ "${#packages[@]}" -gt 0 ]; then
    echo "setup: installing ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >/dev/null
    PYTHON="$(find_python)"
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.motus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing Python packages"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
echo "setup: ready"
