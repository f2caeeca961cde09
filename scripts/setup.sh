#!/usr/bin/env bash
# The main job: install what is missing, then measure on the default emulated board.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/tinylab bench --board qemu-f746
