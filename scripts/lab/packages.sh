#!/usr/bin/env bash
# The Debian packages the tests' services need, found by the command each one provides (on PATH).
#   packages.sh            print "MARKER PACKAGE" for each missing one (the pytest marker of the tests needing it)
#   packages.sh install    install the missing ones with apt-get (as root): update, then install
set -euo pipefail

# marker package command
needed=(
    "slurm slurmctld slurmctld"
    "slurm slurmd slurmd"
    "slurm slurm-client sbatch"
    "slurm munge munged"
    "chromium chromium chromium"
)

missing=()
for entry in "${needed[@]}"; do
    read -r marker package command <<< "$entry"
    command -v "$command" >/dev/null || missing+=("$marker $package")
done

if [[ ${1:-} != install ]]; then
    for entry in "${missing[@]}"; do echo "$entry"; done
    exit 0
fi
((${#missing[@]})) || exit 0
[[ $EUID -eq 0 ]] || { echo "installing Debian packages needs root" >&2; exit 1; }
packages=("${missing[@]#* }")
echo "installing the Debian packages the tests need: ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${packages[@]}" >&2
