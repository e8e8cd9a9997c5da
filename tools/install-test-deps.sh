#!/usr/bin/env bash
# System programs the test suite drives for real (Python packages are in pyproject.toml's dev
# extra). Idempotent, and silent when everything is already installed; needs root and apt-get
# to install (CI runs as root on Debian).
#   tmux             migctl top's terminal tests (tests/test_top.py)
#   systemd-analyze  the boot unit's `systemd-analyze verify` (tests/test_boot.py)
#   slurmd + munge   the real single-node Slurm cluster (tests/test_slurm.py): tools/install-slurm.sh
set -euo pipefail
here=$(dirname "$0")
need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: please install: ${need[*]} (no apt-get here)" >&2
        exit 1
    fi
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "install-test-deps: installing ${need[*]}" >&2
    "${sudo[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash "$here/install-slurm.sh"
