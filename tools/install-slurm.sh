#!/usr/bin/env bash
# Install Debian's Slurm (slurmctld, slurmd, srun) and munge, for the real-Slurm tests.
# Idempotent and fast when everything is there already: it only checks the programs exist.
# Needs root and apt (Debian/Ubuntu); anywhere else it says so and exits 0, and the tests
# that need Slurm skip with that reason.
set -euo pipefail
need=(slurmctld slurmd srun sinfo munged mungekey)
missing=()
for p in "${need[@]}"; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-slurm: missing ${missing[*]} and cannot install (needs root and apt-get); Slurm tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# The packages' maintainer scripts try to start the daemons; the tests run their own.
apt_get() { apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; }
if ! apt_get install --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1; then
    apt-get -q update >/dev/null
    apt_get install --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
