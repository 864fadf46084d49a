#!/usr/bin/env bash
# Prepare this Debian/Ubuntu machine for Motus. Safe to run again: it installs only what is
# missing (Python >= 3.11 with venv, Mosquitto and its clients, PostgreSQL server binaries,
# OpenSSL), then creates .venv and installs the project with its dev extras. It prints a few
# lines; the installers' own output goes to .motus/setup.log.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh

mkdir -p .motus
SETUP_LOG="$PWD/.motus/setup.log"
echo "== setup $(date -u +%FT%TZ)" >>"$SETUP_LOG"

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

started=$(date +%s)
if [ "${#packages[@]}" -gt 0 ]; then
    echo "setup: installing ${packages[*]} (apt)"
    apt_install "${packages[@]}"
    PYTHON="$(find_python)"
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PYTHON"
    run_logged "$PYTHON" -m venv .venv
fi
stamp=.venv/.motus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing the project and its Python packages into .venv"
    run_logged .venv/bin/python -m pip install --upgrade pip
    run_logged .venv/bin/python -m pip install -e '.[dev]'
    touch "$stamp"
fi
echo "setup: ready ($(($(date +%s) - started)) s; details in .motus/setup.log)"
