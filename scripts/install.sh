#!/usr/bin/env bash
# Installs what tinylab needs and is missing: the Debian packages (the Arm C and C++ toolchain, QEMU, and
# headless Chromium for the HTML report's tests, Fashion-MNIST for the search) and a virtual environment at .venv/ with the
# project installed editable. Safe to run again: it does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm chromium dataset-fashion-mnist
                 gcc libc6-dev)  # the host compiler builds the execution profiler (QEMU plugin) of hil/cycles

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tinylab: installing Debian packages: ${missing[*]}"
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "tinylab: creating the virtual environment .venv/"
    python3 -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install.
stamp=.venv/.tinylab-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "tinylab: installing the project and its pinned dependencies into .venv/ (torch takes a while)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
    echo "$wanted" > "$stamp"
fi
