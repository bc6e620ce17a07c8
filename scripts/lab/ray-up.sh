#!/usr/bin/env bash
# Start a private Ray head (with the dashboard, which serves the Jobs API) whose
# temp files, logs and PID file live in $RAY_LAB. Idempotent: does nothing if
# the head recorded there still runs. Writes $RAY_LAB/address (dashboard URL,
# for the Jobs API) and $RAY_LAB/gcs_address (for ray.init); on success prints
# `export RAY_ADDRESS=<dashboard URL>` on stdout, everything else on stderr.
# RAY_LAB_GPUS=N declares N logical GPUs (jobs may ask for them on any machine;
# GPU-hours are counted from them); unset, Ray counts the machine's own.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"

[[ -n ${RAY_LAB:-} ]] || die "set RAY_LAB to the lab folder"
mkdir -p "$RAY_LAB"
D=$(cd "$RAY_LAB" && pwd)
RAY_BIN=${RAY_BIN:-$here/../../.venv/bin/ray}
READY_TIMEOUT=${RAY_LAB_TIMEOUT:-90}
# Ray's unix sockets live at $D/tmp/session_<date>_<pid>/sockets/plasma_store,
# and a socket path may not exceed 107 bytes.
((${#D} <= 39)) || die "RAY_LAB path too long for Ray's sockets (${#D} > 39 chars): $D"
[[ -x $RAY_BIN ]] || die "no ray at $RAY_BIN (pip install 'ray[default]', or set RAY_BIN)"
touch "$D/.ray-lab"            # marks the folder as a lab, so down --purge may delete it

if pid_alive "$D/ray.pid" ray "TMPDIR=$D/tmp"; then
    echo "lab: Ray head already runs in $D" >&2
    echo "export RAY_ADDRESS=$(cat "$D/address")"
    exit 0
fi

# Free ports for everything Ray would otherwise put on a fixed default
# (6379, 8265, 10001, 52365), so that two labs can run side by side.
mapfile -t ports < <(free_ports 4)
((${#ports[@]} == 4)) || die "could not pick ports"
gcs_port=${ports[0]} dash_port=${ports[1]} client_port=${ports[2]} agent_port=${ports[3]}

# Without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray swaps 127.0.0.1 for the
# machine's external address; with it, everything binds to loopback.
# Ray's dashboard leaves files in $TMPDIR, so point that into the lab; being
# inherited by every Ray process, it also lets ray-down.sh find them all.
# --block keeps `ray start` in the foreground as the parent of every Ray
# process; on SIGTERM it stops them all, at once: no drain (which would wait up
# to 30 s for running jobs). setsid gives them a session of their own (its id
# is that PID), which ray-down.sh sweeps.
mkdir -p "$D/tmp"
env RAY_USAGE_STATS_ENABLED=0 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 TMPDIR="$D/tmp" \
    RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 \
  setsid "$RAY_BIN" start --head --block --disable-usage-stats \
    --num-cpus="$(nproc)" ${RAY_LAB_GPUS:+--num-gpus="$RAY_LAB_GPUS"} \
    --object-store-memory=200000000 --temp-dir="$D/tmp" \
    --port="$gcs_port" --ray-client-server-port="$client_port" \
    --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$dash_port" \
    --dashboard-agent-listen-port="$agent_port" \
    > "$D/ray-head.log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$D/ray.pid"
echo "http://127.0.0.1:$dash_port" > "$D/address"
echo "127.0.0.1:$gcs_port" > "$D/gcs_address"

up() { http_ok "$dash_port" /api/version; }
up_or_dead() { up || ! kill -0 "$pid" 2>/dev/null; }
wait_until "$READY_TIMEOUT" up_or_dead || true
if ! up; then
    why="Ray dashboard did not answer on port $dash_port within ${READY_TIMEOUT}s"
    kill -0 "$pid" 2>/dev/null || why="ray start exited early"
    tail_logs "$D/ray-head.log"
    RAY_LAB=$D "$here/ray-down.sh" || true      # leave nothing half-started behind
    die "$why"
fi

echo "lab: Ray head is up in $D" >&2
echo "export RAY_ADDRESS=http://127.0.0.1:$dash_port"
