# shellcheck shell=bash
# Small helpers for the project's scripts: logging, timed phases, free ports, waiting for HTTP readiness,
# and background servers that are always stopped (whole process group) when the script exits.
#
#   source "$ROOT/scripts/lib/common.sh"
#   vpg_trap_cleanup                      # on EXIT/INT/TERM: stop every server vpg_start started
#   port=$(vpg_free_port)
#   vpg_start NAME LOGFILE CMD [ARG...]   # new session + process group; PID in VPG_PID[NAME]
#   vpg_wait_http NAME URL TIMEOUT_S      # until URL answers 200; fails at once if NAME's processes are gone
#   vpg_stop NAME                         # SIGTERM to the group, SIGKILL after VPG_STOP_GRACE s (default 20)
#   vpg_phase "name" / vpg_phase_end      # timed phases; vpg_phase_report prints the table
#   VPG_AT_EXIT+=("cmd")                  # run on exit, after the servers are stopped; the exit status is in
#                                         # VPG_EXIT_STATUS (a command may change it)
#
# VPG_LOG_TAG prefixes log lines (default: the script's name). Processes are found by session (ps -s), so
# children that a server forks (vLLM's EngineCore and Worker, MLflow's uvicorn worker) are stopped with it.

[ -n "${VPG_COMMON_SH:-}" ] && return 0
VPG_COMMON_SH=1

VPG_LOG_TAG=${VPG_LOG_TAG:-$(basename "$0" .sh)}
declare -gA VPG_PID=() VPG_LOG=()
declare -ga VPG_STARTED=() VPG_PHASE_NAMES=() VPG_PHASE_SECS=() VPG_PHASE_RESULT=() VPG_AT_EXIT=()
VPG_PHASE_CUR=""
VPG_PHASE_T0=""

vpg_log() { printf '[%s %s] %s\n' "$VPG_LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
vpg_die() {
  vpg_log "error: $*"
  exit 1
}

# Seconds since the epoch with microseconds (bash 5).
vpg_now() { printf '%s' "$EPOCHREALTIME"; }
# vpg_elapsed T0: seconds since T0, one decimal.
vpg_elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# A free TCP port on 127.0.0.1 (bound then released by the kernel's choice).
vpg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# vpg_port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
vpg_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# vpg_group_alive PID: true while a process (not a zombie) of session PID exists.
vpg_group_alive() {
  # shellcheck disable=SC2009  # pgrep cannot leave zombies out
  ps -s "$1" -o stat= 2>/dev/null | grep -qv '^Z'
}

# vpg_start NAME LOGFILE CMD [ARG...]: runs CMD in a new session (so it leads its own process group, and
# its children are in it), stdin from /dev/null, stdout+stderr to LOGFILE.
vpg_start() {
  local name=$1 log=$2
  shift 2
  local pidfile pid=""
  pidfile=$(mktemp "${TMPDIR:-/tmp}/vpg-pid.XXXXXX")
  # shellcheck disable=SC2016  # $$, $0 and $@ are the inner shell's: it records its PID, then becomes CMD
  setsid sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >"$log" 2>&1 </dev/null &
  local i
  for i in $(seq 200); do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] && break
    sleep 0.05
  done
  rm -f "$pidfile"
  [ -n "$pid" ] || vpg_die "$name did not start ($*)"
  VPG_PID[$name]=$pid
  VPG_LOG[$name]=$log
  VPG_STARTED+=("$name")
  vpg_log "$name started: pid $pid, log $log"
}

# vpg_wait_http NAME URL TIMEOUT_S: waits until URL answers 200. Fails (return 1, last log lines shown) when
# NAME's processes exit first or the timeout passes.
vpg_wait_http() {
  local name=$1 url=$2 timeout=$3 t0 code
  t0=$(vpg_now)
  local deadline=$((SECONDS + timeout))
  while :; do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)
    if [ "$code" = 200 ]; then
      vpg_log "$name ready after $(vpg_elapsed "$t0") s ($url)"
      return 0
    fi
    if [ -n "${VPG_PID[$name]:-}" ] && ! vpg_group_alive "${VPG_PID[$name]}"; then
      vpg_log "$name exited while starting; last lines of ${VPG_LOG[$name]}:"
      tail -n 25 "${VPG_LOG[$name]}" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      vpg_log "$name not ready after ${timeout} s ($url answered ${code:-nothing}); last lines of ${VPG_LOG[$name]:-?}:"
      tail -n 25 "${VPG_LOG[$name]:-/dev/null}" >&2 || true
      return 1
    fi
    sleep 0.25
  done
}

# vpg_stop NAME: SIGTERM to NAME's process group, SIGKILL to what is left after VPG_STOP_GRACE seconds.
vpg_stop() {
  local name=$1 pid t0 grace=${VPG_STOP_GRACE:-20}
  pid=${VPG_PID[$name]:-}
  [ -n "$pid" ] || return 0
  unset "VPG_PID[$name]"
  t0=$(vpg_now)
  kill -TERM -- "-$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while vpg_group_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if vpg_group_alive "$pid"; then
    vpg_log "$name (pid $pid) still running after ${grace} s: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  vpg_log "$name stopped in $(vpg_elapsed "$t0") s"
}

# Stops everything still running, newest first.
vpg_stop_all() {
  local i
  for ((i = ${#VPG_STARTED[@]} - 1; i >= 0; i--)); do
    vpg_stop "${VPG_STARTED[$i]}"
  done
}

# Stops every server, then runs the VPG_AT_EXIT commands in order (they see the exit status in
# VPG_EXIT_STATUS, and may change it). Installed by vpg_trap_cleanup.
vpg_cleanup() {
  VPG_EXIT_STATUS=$?
  local cmd
  trap - EXIT INT TERM
  set +e
  vpg_stop_all
  for cmd in "${VPG_AT_EXIT[@]}"; do eval "$cmd"; done
  exit "$VPG_EXIT_STATUS"
}

vpg_trap_cleanup() {
  trap vpg_cleanup EXIT
  trap 'vpg_log "interrupted"; exit 130' INT
  trap 'vpg_log "terminated"; exit 143' TERM
}

# Timed phases: vpg_phase NAME ends the previous phase (if any) and starts NAME; vpg_phase_end [RESULT]
# ends the current one (RESULT default "ok"). A phase still open at vpg_phase_report is reported "aborted".
vpg_phase() {
  [ -n "$VPG_PHASE_CUR" ] && vpg_phase_end
  VPG_PHASE_CUR=$1
  VPG_PHASE_T0=$(vpg_now)
  vpg_log "=== phase: $1"
}

vpg_phase_end() {
  [ -n "$VPG_PHASE_CUR" ] || return 0
  local secs
  secs=$(vpg_elapsed "$VPG_PHASE_T0")
  VPG_PHASE_NAMES+=("$VPG_PHASE_CUR")
  VPG_PHASE_SECS+=("$secs")
  VPG_PHASE_RESULT+=("${1:-ok}")
  vpg_log "=== phase done: $VPG_PHASE_CUR (${secs} s)"
  VPG_PHASE_CUR=""
}

vpg_phase_report() {
  [ -n "$VPG_PHASE_CUR" ] && vpg_phase_end aborted
  local i total=0
  printf '%-48s %9s  %s\n' "phase" "seconds" "result"
  for i in "${!VPG_PHASE_NAMES[@]}"; do
    printf '%-48s %9s  %s\n' "${VPG_PHASE_NAMES[$i]}" "${VPG_PHASE_SECS[$i]}" "${VPG_PHASE_RESULT[$i]}"
    total=$(awk -v a="$total" -v b="${VPG_PHASE_SECS[$i]}" 'BEGIN { printf "%.1f", a + b }')
  done
  printf '%-48s %9s\n' "total" "$total"
}
