#!/usr/bin/env bash
# Start, stop or locate the local broker servers that the tests, the demo and
# the benchmarks use, each on loopback with its state in a temp folder.
#
#   scripts/services.sh start  [NAME...]   start each (default: every one installed)
#   scripts/services.sh stop   [NAME...]   stop each one this script started
#   scripts/services.sh status [NAME...]   exit 0 when every one named answers
#   scripts/services.sh url    NAME        print the URL a client uses
#   scripts/services.sh list               print the names whose server is installed
#
# NAME: redis, kafka, rabbitmq, nats, mqtt. Each server's recipe lives in
# scripts/services.d/NAME.sh, which defines NAME_start, NAME_stop,
# NAME_status and NAME_url (and may define NAME_available, true when its
# server can run here). A server that was already answering is used as it is
# and never stopped: stop only stops what start started (it keeps a pid file
# for those alone). State goes under $FS_SERVICES_DIR (default: a folder per
# user under $TMPDIR); ports come from FS_<NAME>_PORT variables.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${FS_SERVICES_DIR:-${TMPDIR:-/tmp}/faststream-services-$(id -u)}"
ALL=(redis kafka rabbitmq nats mqtt)

wait_for() { # wait_for SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}

# alive PID: the process runs and is not a zombie (re-parented daemons are
# reaped late here, and kill -0 succeeds on a zombie).
alive() {
  [ -r "/proc/$1/status" ] || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

# stop_pidfile FILE [SECONDS]: SIGTERM the pid in FILE, SIGKILL after SECONDS (5).
stop_pidfile() {
  local f="$1" secs="${2:-5}"
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < secs * 10; i++)); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

load() { # load NAME: source its recipe
  local f="$ROOT/scripts/services.d/$1.sh"
  [ -f "$f" ] || { echo "services: unknown server '$1' (known: ${ALL[*]})" >&2; return 2; }
  # shellcheck source=/dev/null
  . "$f"
}

available() { # available NAME: its recipe exists and its server is installed
  load "$1" 2>/dev/null || return 1
  if declare -F "$1_available" >/dev/null; then "$1_available"; else return 0; fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
names=("$@")
if [ ${#names[@]} -eq 0 ] && [ "$cmd" != url ]; then
  names=()
  for n in "${ALL[@]}"; do available "$n" && names+=("$n"); done
fi

case "$cmd" in
  start | stop | status)
    rc=0
    for n in "${names[@]}"; do
      load "$n" || exit 2
      mkdir -p "$STATE/$n"
      "${n}_${cmd}" || rc=1
    done
    exit $rc
    ;;
  list) printf '%s\n' "${names[@]}" ;;
  url)
    [ ${#names[@]} -eq 1 ] || { echo "usage: $0 url NAME" >&2; exit 2; }
    load "${names[0]}" || exit 2
    "${names[0]}_url"
    ;;
  *) echo "usage: $0 start|stop|status [NAME...] | url NAME | list" >&2; exit 2 ;;
esac
