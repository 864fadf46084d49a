#!/usr/bin/env bash
# Set everything up, then run the demo of the whole network (extra arguments go to `motus demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/motus demo "$@"
