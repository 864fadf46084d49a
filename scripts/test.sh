#!/usr/bin/env bash
# Set everything up, then lint, type-check, check the layer contract and run the whole test suite
# on real Mosquitto and PostgreSQL (the tests start their own throwaway servers): every tier on
# plain PostgreSQL, then the database tiers again on TimescaleDB, built once per machine from
# ../shared/timescaledb. Extra arguments go to pytest (both passes), e.g.
# scripts/test.sh -m "not integration and not e2e" for the unit tier alone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== layers (docs/architecture.md)"
.venv/bin/lint-imports --no-logo --no-cache
echo "== pytest: plain PostgreSQL"
.venv/bin/pytest "$@"
echo "== TimescaleDB"
rc=0
scripts/timescaledb.sh || rc=$?
if [ "$rc" -eq 3 ]; then
    echo "== the TimescaleDB path was NOT run: its source is not here (see docs/operations.md)"
    exit 0
fi
[ "$rc" -eq 0 ] || exit "$rc"
echo "== pytest: the database tiers on TimescaleDB"
# Exit code 5: every selected test belongs to the plain path (say, a unit-only selection).
.venv/bin/pytest --timescaledb "$@" || { rc=$?; [ "$rc" -eq 5 ] || exit "$rc"; }
