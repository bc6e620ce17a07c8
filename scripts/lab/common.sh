# shellcheck shell=bash
# Helpers shared by the lab scripts (sourced, not run).
# The lab's processes are ours alone: we find them through PID files in the lab
# folder and through what they inherited from the lab scripts, never by name.

die() { echo "lab: $*" >&2; exit 1; }

# Under `set -e` a failing command ends the script silently: say which one.
trap 'echo "lab: ${0##*/}: line $LINENO: \`$BASH_COMMAND\` failed" >&2' ERR

# proc_alive PID [NAME [VAR=VALUE]]: true when PID is a live (not zombie)
# process, called NAME, whose environment holds VAR=VALUE. Name and variable
# guard against a stale PID file whose PID now belongs to someone else.
proc_alive() {
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    local stat comm
    read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
    stat=${stat##*) }                                   # the fields after "(comm) "
    [[ ${stat%% *} != Z ]] || return 1
    read -r comm 2>/dev/null < "/proc/$1/comm" || return 1
    [[ -z ${2:-} || $comm == "$2" ]] || return 1
    [[ -z ${3:-} ]] || grep -qzxF -- "$3" "/proc/$1/environ" 2>/dev/null
}

# pid_alive FILE [NAME [VAR=VALUE]]: proc_alive for the PID held in FILE.
pid_alive() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    proc_alive "$pid" "${@:2}"
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s; false if it never succeeds.
wait_until() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# free_ports N: print N distinct TCP ports on 127.0.0.1 that nobody listens on.
# They are random, so two labs on one machine don't pick the same ones, and
# below the kernel's ephemeral range (32768+), so client sockets don't take them.
free_ports() {
    local -A seen=()
    local port tries=0
    while ((${#seen[@]} < $1)); do
        ((tries++ < 500)) || die "no free TCP ports found"
        port=$((20000 + RANDOM % 12000))
        [[ -z ${seen[$port]:-} ]] || continue
        # A refused connection means the port is free (bash's /dev/tcp needs no extra tools).
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            seen[$port]=1
            echo "$port"
        fi
    done
}

# tail_logs FILE...: last lines of each log, for error messages.
tail_logs() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "---- last lines of $f ----" >&2
        tail -n 25 "$f" >&2
    done
}

# session_pids SID: PIDs of the live (not zombie) processes in session SID.
# While any process is in the session, the kernel won't hand out SID as a new
# PID, so these are all descendants of whoever started the session.
session_pids() {
    local f stat state sid
    for f in /proc/[0-9]*/stat; do
        read -r stat 2>/dev/null < "$f" || continue    # builtins only: this runs often
        read -r state _ _ sid _ <<< "${stat##*) }"     # the fields after "(comm) "
        [[ $sid == "$1" && $state != Z ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
    return 0
}

# sid_of PID: the session id of PID (empty if it is gone).
sid_of() {
    local stat
    read -r stat 2>/dev/null < "/proc/$1/stat" || return 0
    read -r _ _ _ sid _ <<< "${stat##*) }"
    echo "$sid"
}

# unix_socket_pids DIR: PIDs holding a unix socket bound to a path under DIR.
# The kernel remembers the path even after the file is deleted.
unix_socket_pids() {
    local -A inodes=()
    local inode fd link
    while read -r inode; do inodes[$inode]=1; done \
        < <(awk -v dir="$1/" 'index($8, dir) == 1 {print $7}' /proc/net/unix)
    ((${#inodes[@]})) || return 0
    for fd in /proc/[0-9]*/fd/*; do
        link=$(readlink "$fd" 2>/dev/null) || continue
        [[ $link =~ ^socket:\[([0-9]+)\]$ && -n ${inodes[${BASH_REMATCH[1]}]:-} ]] || continue
        fd=${fd#/proc/}; echo "${fd%%/*}"
    done | sort -u
}

# pids_with_env VAR=VALUE: PIDs of the processes whose environment holds exactly
# VAR=VALUE. A variable the lab script exported marks every process started
# below it, even those that left its process group and session.
pids_with_env() {
    local f pid
    for f in /proc/[0-9]*/environ; do
        pid=${f#/proc/}; pid=${pid%/environ}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue    # never ourselves
        grep -qzxF -- "$1" "$f" 2>/dev/null && echo "$pid"
    done
    return 0
}

# http_ok PORT PATH: true when http://127.0.0.1:PORT/PATH answers 200. Plain
# bash, so it needs neither curl nor a particular Python.
http_ok() (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    read -r -t 5 _ status _ <&3 && [[ $status == 200 ]]
) 2>/dev/null

# The down scripts' arguments: the lab folder from the variable named in $1, and an optional --purge.
# Sets D (the folder, absolute) and purge (0 or 1); exits quietly when the folder does not exist.
down_args() {
    local var=$1 arg
    shift
    [[ -n ${!var:-} ]] || die "set $var to the lab folder"
    purge=0
    for arg in "$@"; do
        case $arg in
            --purge) purge=1 ;;
            *) die "usage: $var=DIR $0 [--purge]" ;;
        esac
    done
    [[ -d ${!var} ]] || exit 0
    D=$(cd "${!var}" && pwd)
}
