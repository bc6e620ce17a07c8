#!/usr/bin/env bash
# Stop the Ray head recorded in $RAY_LAB/ray.pid and everything it started.
# Never `ray stop`: that finds Ray processes by name, including other people's.
# `--purge` also deletes the lab folder.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

down_args RAY_LAB "$@"   # sets D (the lab folder) and purge; exits if there is no lab

# ray-up.sh started the head with this TMPDIR, and every Ray process inherits
# it (though those that set their process title overwrite it). setsid made the
# head the leader of a session that all Ray processes share, except the
# drivers of Ray jobs, which get sessions of their own.
marker="TMPDIR=$D/tmp"
sid=$(cat "$D/ray.pid" 2>/dev/null || true)
[[ $sid =~ ^[0-9]+$ ]] || sid=none
session_empty() { [[ -z $(session_pids "$sid") ]]; }
leftovers() {
    {
        pids_with_env "$marker"
        # A leader other than our head means the PID in ray.pid is stale and
        # now leads someone else's session. Without a leader, the members are
        # what remains of our head's: the kernel doesn't reuse a session's id
        # while it has members.
        if ! proc_alive "$sid" || proc_alive "$sid" ray "$marker"; then session_pids "$sid"; fi
    } | sort -u
}
no_leftovers() { [[ -z $(leftovers) ]]; }

if pid_alive "$D/ray.pid" ray "$marker"; then
    # `ray start --block` stops all its processes on SIGTERM (~3 s).
    kill -TERM "$sid" 2>/dev/null || true
    wait_until 30 session_empty || echo "lab: Ray still up 30 s after SIGTERM" >&2
fi
# Ray kills job drivers only a second after their supervisor dies; and a head
# may have crashed or ignored SIGTERM: SIGKILL whatever is left.
mapfile -t left < <(leftovers)
if ((${#left[@]})); then
    echo "lab: SIGKILL to ${#left[@]} leftover Ray processes: ${left[*]}" >&2
    kill -KILL "${left[@]}" 2>/dev/null || true
    wait_until 5 no_leftovers || die "could not stop the processes of $D"
fi
rm -f "$D/ray.pid"

if ((purge)); then
    [[ -e $D/.ray-lab ]] || die "$D is not a lab folder: not purging"
    rm -rf "$D"
fi
echo "lab: Ray is down in $D" >&2
