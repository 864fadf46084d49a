#!/usr/bin/env bash
# Set everything up, then lint, type-check, check the layer contract and run the whole test suite
# on real Mosquitto and PostgreSQL (the tests start their own throwaway servers). Extra arguments
# go to pytest, e.g. scripts/test.sh -m "not integration and not e2e" for the unit tier alone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== layers (docs/architecture.md)"
.venv/bin/lint-imports --no-logo --no-cache
echo "== pytest"
.venv/bin/pytest "$@"
