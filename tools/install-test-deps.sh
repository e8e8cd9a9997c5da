#!/usr/bin/env bash
# System packages the test suite drives for real (not Python packages: those are in
# pyproject.toml's dev extra). Idempotent, and silent when everything is already installed.
#   tmux   migctl top's terminal tests (tests/test_top.py)
set -euo pipefail
need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: please install: ${need[*]} (no apt-get here)" >&2
    exit 1
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "install-test-deps: installing ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
