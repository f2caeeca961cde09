#!/usr/bin/env bash
# The test suite: install what is missing, then run pytest (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/pytest "$@"
