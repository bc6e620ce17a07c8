#!/usr/bin/env bash
# Stop the lab cluster in $SLURM_LAB: cancel its jobs, then stop its daemons by
# PID file. `--purge` also deletes the lab folder.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

down_args SLURM_LAB "$@"   # sets D (the lab folder) and purge; exits if there is no lab
export SLURM_CONF=$D/etc/slurm.conf
marker="SLURM_CONF=$SLURM_CONF"    # slurm-up.sh started the daemons with it

# Jobs outlive the daemons (slurmstepd keeps running), so cancel them first and
# wait until they are gone. Only ids from this lab's own controller are used.
if pid_alive "$D/run/slurmctld.pid" slurmctld "$marker"; then
    mapfile -t jobs < <(squeue -h -t PENDING,RUNNING,SUSPENDED -o %A 2>/dev/null || true)
    ((${#jobs[@]} == 0)) || scancel "${jobs[@]}" || true
    queue_empty() { [[ -z $(squeue -h -o %A 2>/dev/null) ]]; }
    wait_until 15 queue_empty || echo "lab: jobs still listed after 15 s: stopping anyway" >&2
fi

# Read the PIDs first: the daemons delete their PID files before they exit.
# Each takes a moment to exit, so signal all at once and wait for all.
pids=()
for d in slurmd:run/slurmd.pid slurmctld:run/slurmctld.pid munged:munge/munged.pid; do
    if pid_alive "$D/${d#*:}" "${d%%:*}" "$marker"; then pids+=("$(cat "$D/${d#*:}")"); fi
done
alive() { local p; for p in "$@"; do proc_alive "$p" && echo "$p"; done; return 0; }
none_alive() { [[ -z $(alive ${pids[@]+"${pids[@]}"}) ]]; }
if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    if ! wait_until 15 none_alive; then
        echo "lab: daemons still up 15 s after SIGTERM: SIGKILL" >&2
        mapfile -t left < <(alive "${pids[@]}")
        kill -KILL "${left[@]}" 2>/dev/null || true
        wait_until 5 none_alive || die "could not stop the daemons of $D"
    fi
fi
# A killed daemon leaves its PID file behind; drop them so they mislead nobody.
rm -f "$D/run/slurmd.pid" "$D/run/slurmctld.pid" "$D/munge/munged.pid"

# Job steps outlive a controller that died before it could cancel them. Each
# slurmstepd listens on a socket in this lab's spool dir, and the job's
# processes share its session: SIGKILL both.
mapfile -t steps < <(unix_socket_pids "$D/spool")
if ((${#steps[@]})); then
    own_sid=$(sid_of $$)
    mapfile -t left < <(for p in "${steps[@]}"; do
        echo "$p"
        s=$(sid_of "$p")
        if [[ -n $s && $s != "$own_sid" ]]; then session_pids "$s"; fi
    done | sort -u)
    echo "lab: SIGKILL to ${#left[@]} leftover job processes: ${left[*]}" >&2
    kill -KILL "${left[@]}" 2>/dev/null || true
fi

if ((purge)); then
    [[ -e $D/.slurm-lab ]] || die "$D is not a lab folder: not purging"
    rm -rf "$D"
fi
echo "lab: Slurm is down in $D" >&2
