#!/usr/bin/env bash
# The test suite: install what is missing, then run pytest (extra arguments go to pytest), on one
# worker per core up to two (pytest-xdist; `-n 0` after it runs everything in this one process).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/pytest -n auto --maxprocesses 2 "$@"
