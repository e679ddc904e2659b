#!/usr/bin/env bash
# bench/run.sh BUILD_DIR - run faststream-c's benchmarks and print one table.
#
# `make bench` calls it as `bench/run.sh build/release` after a Release build.
# It runs (on an otherwise idle machine if possible):
#
#   BUILD_DIR/bench/fs_bench_metrics  the metrics library, workloads (a)-(f) of
#                                     issue 2 point 9, and two machine baselines
#                                     (an uncontended atomic add, a CLOCK_MONOTONIC
#                                     read) measured in the same run;
#   bench/bench_metrics.py            the same workloads in Python's
#                                     prometheus_client (what FastStream uses), with
#                                     /usr/bin/python3 (Debian's python3-prometheus-client);
#   the same program at scale (issue 12): child creation at 10k, 100k and 1M
#                                     label sets in random order, heap bytes per
#                                     child, render time at 1k, 10k, 100k label
#                                     sets; and, when valgrind is installed,
#                                     instructions per operation of (a)-(f) and
#                                     of creation under callgrind, which a
#                                     loaded machine does not disturb;
#   BUILD_DIR/bench/fs_bench_core     when built (it needs the core, the in-process
#                                     broker and the Prometheus middleware): messages
#                                     per second from publish to handled, without and
#                                     with the middleware, and the ns it adds per message;
#   BUILD_DIR/bench/fs_bench_BROKER   when built, for Redis, Kafka, NATS, MQTT and
#                                     RabbitMQ: ours beside the raw client library
#                                     (msg/s, then instructions per message; below).
#
# The C and Python programs take turns workload by workload, then the core
# benchmark runs. The table shows, per workload: ours (ns/op), Python's (ns/op),
# the ratio Python/ours, and the target from the issues with "pass" or "MISS".
# Every figure is measured in this run; only the targets are written here. Each
# figure is the best of BENCH_REPEATS runs (default 3; BENCH_CORE_REPEATS,
# default 5, for the core benchmark, whose two-thread pipeline is noisier) of at
# least BENCH_MIN_TIME seconds (default 0.2). The raw "key value" lines are kept
# in BUILD_DIR/bench/results.txt.
#
# Benchmarks only print: nothing here fails because a target is missed. The exit
# status is non-zero only when a benchmark program could not run.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 BUILD_DIR   (a CMake build directory, e.g. build/release)" >&2
    exit 2
fi
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${BENCH_PYTHON:-/usr/bin/python3}
MIN_TIME=${BENCH_MIN_TIME:-0.2}
REPEATS=${BENCH_REPEATS:-3}
CORE_REPEATS=${BENCH_CORE_REPEATS:-5}
OPTS=(--min-time "$MIN_TIME" --repeats "$REPEATS")

C_METRICS=$BUILD/bench/fs_bench_metrics
C_CORE=$BUILD/bench/fs_bench_core
if [ ! -x "$C_METRICS" ]; then
    echo "bench: $C_METRICS not found; build with -DFS_BUILD_BENCH=ON first" >&2
    exit 1
fi

RESULTS=$BUILD/bench/results.txt
ours=$(mktemp) py=$(mktemp) callgrind=$(mktemp)
trap 'rm -f "$ours" "$py" "$callgrind"' EXIT

# Other work on the machine disturbs the figures (the C and Python sides run
# one after the other, the core benchmark needs both cores): say so.
LOAD=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
# C and Python take turns, workload by workload, so that a busy spell of the
# machine hits both sides of a ratio alike.
echo "bench: metrics workloads, C ($C_METRICS) and Python ($PYTHON) in turn" >&2
"$C_METRICS" "${OPTS[@]}" --only baseline_atomic_add,baseline_clock >"$ours"
for key in counter_inc counter_inc_2t labels_inc hist_observe middleware middleware_kept \
    render_1000; do
    "$C_METRICS" "${OPTS[@]}" --only "$key" >>"$ours"
    if ! "$PYTHON" "$HERE/bench_metrics.py" "${OPTS[@]}" --only "$key" >>"$py"; then
        echo "bench: the Python benchmarks failed (is python3-prometheus-client installed?)" >&2
        exit 1
    fi
done
echo "bench: metrics at scale (creation, memory, render)" >&2
"$C_METRICS" "${OPTS[@]}" --only \
    create_10000,create_100000,create_1000000,mem_counter,mem_histogram,render_10000,render_100000 \
    >>"$ours"

# Instructions per operation under callgrind, collected only inside the
# functions measured (--toggle-collect), over a fixed number of operations
# (--iters): KEY|operations per run|functions|operations per iteration.
if command -v valgrind >/dev/null 2>&1; then
    echo "bench: instruction counts under callgrind" >&2
    for spec in "counter_inc|1000000|fs_counter_inc|1" \
        "counter_inc_2t|500000|fs_counter_inc|2" \
        "labels_inc|1000000|fs_counter_family_labels,fs_counter_inc|1" \
        "hist_observe|1000000|fs_histogram_observe|1" \
        "middleware|100000|run_middleware|1" \
        "render_1000|20|fs_registry_render|1" \
        "create|10000|run_create|1" "create|100000|run_create|1"; do
        IFS='|' read -r key n fns per <<<"$spec"
        toggles=()
        for f in ${fns//,/ }; do toggles+=("--toggle-collect=$f"); done
        ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "${toggles[@]}" \
            "$C_METRICS" --iters "$n" --only "$key" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
        [ "$key" = create ] && key=create_$n
        [ -n "$ir" ] && echo "$key $(awk -v ir="$ir" -v n="$n" -v per="$per" \
            'BEGIN { printf "%.1f", ir / (n * per) }')" >>"$callgrind"
    done
else
    echo "bench: valgrind not installed: no instruction counts" >&2
fi

if [ -x "$C_CORE" ]; then
    echo "bench: C core benchmark ($C_CORE)" >&2
    "$C_CORE" --min-time "$MIN_TIME" --repeats "$CORE_REPEATS" >>"$ours"
else
    echo "bench: $C_CORE not built (needs the core and the Prometheus middleware); skipped" >&2
fi
{ sed 's/^/ours /' "$ours"; sed 's/^/python /' "$py"; sed 's/^/instructions /' "$callgrind"; } \
    >"$RESULTS"

# The table. Targets: issue 2 point 9 (a)-(f), issue 3 "Benchmarks" (core).
# Row spec: key|label|target kind (le: ns/op at most, ge: msg/s at least)|target|shown target
awk -v ours="$ours" -v py="$py" -v load="$LOAD" '
function group(x,   s, r) {            # 1234567 -> 1,234,567
    s = sprintf("%.0f", x); r = ""
    while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
    return s r
}
function num(x) {
    if (x == "") return "-"
    if (x >= 1000) return group(x)
    if (x >= 100) return sprintf("%.0f", x)
    return sprintf("%.2f", x)
}
function ratio(p, o) {
    if (p == "" || o == "" || o <= 0) return "-"
    return (p / o >= 100) ? sprintf("%.0fx", p / o) : sprintf("%.1fx", p / o)
}
BEGIN {
    while ((getline line < ours) > 0) {
        if (line ~ /^# WARNING/) { warnings = warnings substr(line, 3) "\n"; continue }
        if (line !~ /^#/) { split(line, f, " "); O[f[1]] = f[2] }
    }
    while ((getline line < py) > 0) {
        if (line ~ /^#/) { pyver = substr(line, 3); continue }
        split(line, f, " "); P[f[1]] = f[2]
    }
    n = split("counter_inc|(a) counter inc, kept child, 1 thread|le|2|<= 2 ns;" \
              "counter_inc_2t|(b) counter inc, kept child, 2 threads|le|5|<= 5 ns;" \
              "labels_inc|(c) lookup by 3 label values + inc|le|25|<= 25 ns;" \
              "hist_observe|(d) histogram observe, kept child|le|8|<= 8 ns;" \
              "middleware|(e) middleware per-message updates|le|100|<= 100 ns;" \
              "middleware_kept|    the same with kept children|-|-|-;" \
              "render_1000|(f) render 1,000 label sets (text)|le|2000000|<= 2 ms;" \
              "core_plain_ns|core: memory broker, publish->handled|ge|3000000|>= 3 M msg/s;" \
              "core_prom_ns|core: the same + Prometheus middleware|-|-|-;" \
              "core_added_ns|core: added by the middleware, per msg|le|150|<= 150 ns;" \
              "core_plain_cpu_ns|core: CPU time per msg, both threads|-|-|-;" \
              "core_prom_cpu_ns|core: the same + Prometheus middleware|-|-|-;" \
              "core_added_cpu_ns|core: CPU time added per msg|-|-|-", rows, ";")
    fmt = "%-40s %14s %14s %9s  %-14s %s\n"
    printf fmt, "workload", "ours (ns/op)", "Python (ns/op)", "Py/ours", "target", ""
    printf fmt, "----------------------------------------", "--------------", "--------------",
           "---------", "--------------", "----"
    for (i = 1; i <= n; i++) {
        split(rows[i], r, "|"); key = r[1]
        if (!(key in O)) continue
        o = O[key]; p = (key in P) ? P[key] : ""
        mark = ""
        if (r[3] == "le") mark = (o + 0 <= r[4] + 0) ? "pass" : "MISS"
        if (r[3] == "ge") mark = (o > 0 && 1e9 / o >= r[4] + 0) ? "pass" : "MISS"
        printf fmt, r[2], num(o), num(p), ratio(p, o), r[5], mark
        if (r[3] == "ge" || key == "core_prom_ns")
            printf "%-40s %14s\n", "", sprintf("= %.2f M msg/s", (o > 0 ? 1e3 / o : 0))
    }
    printf "\nmachine baselines, this run: uncontended atomic add %s ns, CLOCK_MONOTONIC read %s ns\n",
           num(O["baseline_atomic_add"]), num(O["baseline_clock"])
    printf "(the targets assume about 2 ns and 23 ns); Python: %s\n", pyver
    printf "%s", warnings
    if (load + 0 >= 1)
        printf "load average %s when the run began: other work was running, figures may be disturbed\n", load
}'

# At scale and instruction counts (issue 12).
awk -v ours="$ours" -v cg="$callgrind" '
function mark(v, t) { return (v == "" || t == "") ? "" : (v + 0 <= t + 0) ? "pass" : "MISS" }
function row(label, v, unit, t, shown) {
    if (v == "") return
    if (shown == "-" || shown == "flat") t = ""
    printf "%-46s %12s %-6s  %-18s %s\n", label, v, unit, shown, mark(v, t)
}
BEGIN {
    while ((getline line < ours) > 0) if (line !~ /^#/) { split(line, f, " "); O[f[1]] = f[2] }
    while ((getline line < cg) > 0) { split(line, f, " "); I[f[1]] = f[2] }
    print ""
    printf "%-46s %12s %-6s  %-18s %s\n", "at scale (issue 12)", "ours", "", "target", ""
    printf "%-46s %12s %-6s  %-18s %s\n", "----------------------------------------------",
           "------------", "", "------------------", "----"
    c["create_10000"] = "new child, 10k random label sets"
    c["create_100000"] = "new child, 100k random label sets"
    c["create_1000000"] = "new child, 1M random label sets"
    split("create_10000 create_100000 create_1000000", ck, " ")
    for (i = 1; i <= 3; i++) if (ck[i] in O)
        row(c[ck[i]], sprintf("%.0f", O[ck[i]]), "ns", 1500, "<= 1.5 us, flat")
    if ("create_1000000" in O)
        row("1M random label values, in all", sprintf("%.2f", O["create_1000000"] * 1e6 / 1e9), "s", 2,
            "< 2 s")
    if ("mem_counter" in O)
        row("memory per child, 3-label counter", sprintf("%.0f", O["mem_counter"]), "B", 450, "<= 450 B")
    if ("mem_histogram" in O)
        row("memory per child, 12-bucket histogram", sprintf("%.0f", O["mem_histogram"]), "B", 750,
            "<= 750 B")
    split("render_1000 render_10000 render_100000", rk, " ")
    split("1k 10k 100k", rn, " ")
    for (i = 1; i <= 3; i++) if (rk[i] in O)
        row("render " rn[i] " label sets (counter + histogram)", sprintf("%.2f", O[rk[i]] / 1e6), "ms",
            (i == 3) ? 30 : 1e9, (i == 3) ? "<= 30 ms" : "-")
    if (length(I) == 0) exit
    print ""
    printf "%-46s %12s %-6s  %-18s %s\n", "callgrind: instructions per operation", "ours", "", "target", ""
    printf "%-46s %12s %-6s  %-18s %s\n", "----------------------------------------------",
           "------------", "", "------------------", "----"
    row("(a) counter inc, kept child", I["counter_inc"], "instr", 16, "<= 16")
    row("(b) the same, 2 threads (per increment)", I["counter_inc_2t"], "instr", 1e9, "-")
    row("(c) lookup by 3 label values + inc", I["labels_inc"], "instr", 1e9, "-")
    row("(d) histogram observe, kept child", I["hist_observe"], "instr", 60, "<= 60")
    row("(e) middleware per-message updates", I["middleware"], "instr", 1e9, "-")
    row("(f) render 1,000 label sets", I["render_1000"], "instr", 1e18, "-")
    row("new child at 10k label sets", I["create_10000"], "instr", 1e9, "flat")
    row("new child at 100k label sets", I["create_100000"], "instr", 1e9, "flat")
    print "(valgrind serialises threads: the 2-thread figure counts instructions, not contention)"
}'

# The middleware's own instructions a message on the in-process broker
# (bench/mw_cost.py on callgrind profiles), publishing through a publisher
# (its label id) and by name (the name compared on each publish).
if [ -x "$C_CORE" ] && command -v valgrind >/dev/null 2>&1; then
    echo "bench: the middleware's own work under callgrind ($C_CORE)" >&2
    cg_core=$(mktemp -d)
    printf '\n%-46s %8s %8s %8s %8s\n' "callgrind: the middleware's own instr/msg" publish consume chain total
    for how in publisher name; do
        for side in plain prom; do
            valgrind --tool=callgrind --callgrind-out-file="$cg_core/$side.%p" "$C_CORE" \
                --callgrind "$how" --side "$side" --count 100000 >/dev/null 2>&1 || true
            cat "$cg_core/$side".[0-9]* >"$cg_core/$side" 2>/dev/null || true
        done
        "$PYTHON" "$HERE/mw_cost.py" "$cg_core/prom" 100000 "$cg_core/plain" 100000 2>/dev/null |
            awk -v how="$how" -v res="$RESULTS" '{ v[$1] = $2 }
                END { if (!("total" in v)) { printf "%-46s (callgrind failed)\n", "in-process broker, " how; exit }
                      printf "%-46s %8.0f %8.0f %8.0f %8.0f\n", "in-process broker, " \
                          (how == "name" ? "fs_publish by name" : "through a publisher"),
                          v["publish"], v["consume"], v["chain"], v["total"]
                      printf "ours core_mw_own_%s %.0f\n", how, v["total"] >>res }'
        rm -f "$cg_core"/*
    done
    rm -rf "$cg_core"
fi

# ---------------------------------------------------------------------------
# The broker benchmarks (issues 4 and 8-11): BUILD_DIR/bench/fs_bench_NAME,
# when built, puts ours without and with the Prometheus middleware beside the
# raw client library doing the same work, in the same run. First wall clock
# (messages per second, best of REPEATS; the program prints its own table),
# then, when valgrind is installed, instructions per message under callgrind,
# which the machine's load does not move. BENCH_NAME_CALLGRIND=0 (e.g.
# BENCH_NATS_CALLGRIND=0) skips the callgrind part of one broker.
#
# Each broker below is a short declaration read by bench_broker:
#   CG_CASES  the cases, "CASE|N" (one run of N messages: instructions over
#             the messages) or "CASE|N1,N2" (two runs: the difference of
#             instructions over the difference of messages, so that start-up
#             cancels out), optionally "|EXTRA" passed on to NAME_cg_args
#   NAME_cg_args CASE SIDE N EXTRA  sets CG_ARGS, the program's options for
#             one callgrind run of one side (ours, prom, raw)
#   CG_READ   total: what callgrind collected in the whole run (or what the
#             program switched on: CG_VALGRIND=(--instr-atstart=no)); dump:
#             the program's first CALLGRIND_DUMP_STATS (OUT.1, every thread)
#   CG_NKEY   when set, the messages counted are the program's "CG_NKEY* N" line
#   CG_KEY    the results.txt key, with {case} and {side} replaced
#   CG_TITLE, CG_HEAD, CG_ROW, CG_ORDER, CG_FOOT  the table: optional title,
#             header (printf format, labels), row format (case, ours, prom, raw,
#             then "cost ratio" or "ratio cost": what the middleware adds, raw
#             over ours) and the lines under it
#   SERVICE   a scripts/services.sh recipe the benchmark needs, started here
#             when it is not running (and then stopped again); SERVICE_FOR
#             "all" or "callgrind" (only the callgrind part needs it)
SERVICES=$HERE/../scripts/services.sh

# cg_run CASE SIDE N EXTRA: "INSTRUCTIONS MESSAGES" of one run under callgrind
# (0 when callgrind or the program failed).
cg_run() {
    local dir ir n=$3
    dir=$(mktemp -d)
    "${BROKER}_cg_args" "$@"
    env "${CG_ENV[@]}" valgrind --tool=callgrind "${CG_VALGRIND[@]}" \
        --callgrind-out-file="$dir/cg.%p" "$PROG" "${CG_ARGS[@]}" >"$dir/out" 2>"$dir/err" || true
    if [ "$CG_READ" = dump ]; then
        ir=$(cat "$dir"/cg.*.1 2>/dev/null | awk '/^(summary|totals):/ { print $2; exit }' || true)
    else
        ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$dir/err" | head -n 1)
    fi
    if [ -n "$CG_NKEY" ]; then
        n=$(awk -v k="$CG_NKEY" 'index($1, k) == 1 { print $2; exit }' "$dir/out")
    fi
    # the profile is kept (the last run of a side) for the middleware's own cost
    if [ -n "$CG_KEEP" ]; then
        if [ "$CG_READ" = dump ]; then cat "$dir"/cg.*.1; else cat "$dir"/cg.*; fi \
            >"$CG_KEEP/$2" 2>/dev/null || true
        echo "${n:-0}" >"$CG_KEEP/$2.n"
    fi
    rm -rf "$dir"
    echo "${ir:-0} ${n:-0}"
}

# cg_per_msg CASE COUNTS SIDE EXTRA: instructions per message of one side.
cg_per_msg() {
    local a b n1 n2 _
    if [[ $2 == *,* ]]; then
        n1=${2%,*} n2=${2#*,}
        read -r a _ <<<"$(cg_run "$1" "$3" "$n1" "$4")"
        read -r b _ <<<"$(cg_run "$1" "$3" "$n2" "$4")"
        awk -v a="$a" -v b="$b" -v n=$((n2 - n1)) 'BEGIN { printf "%.3f", (a > 0 && b > 0) ? (b - a) / n : 0 }'
    else
        read -r a n1 <<<"$(cg_run "$1" "$3" "$2" "$4")"
        awk -v a="$a" -v n="$n1" 'BEGIN { printf "%.3f", (n > 0) ? a / n : 0 }'
    fi
}

# cg_table: the callgrind table of the declared broker.
cg_table() {
    local spec c counts extra s key
    local -A per
    [ -n "$CG_TITLE" ] && printf '\n%s\n' "$CG_TITLE" || echo
    # shellcheck disable=SC2059
    printf "${CG_HEAD[@]}"
    for spec in "${CG_CASES[@]}"; do
        IFS='|' read -r c counts extra <<<"$spec"
        per=()
        CG_KEEP=$(mktemp -d)
        for s in ours prom raw; do
            per[$s]=$(cg_per_msg "$c" "$counts" "$s" "$extra")
            key=${CG_KEY//\{case\}/${c// /_}}
            echo "ours ${key//\{side\}/$s} ${per[$s]%.*}" >>"$RESULTS"
        done
        awk -v fmt="$CG_ROW" -v order="$CG_ORDER" -v c="$c" -v o="${per[ours]}" -v p="${per[prom]}" \
            -v r="${per[raw]}" 'BEGIN {
            if (o <= 0) { printf "%-14s (callgrind failed)\n", c; exit }
            if (fmt ~ /%[0-9]*d/) { o = int(o); p = int(p); r = int(r) } # as printed
            cost = 100 * (p - o) / o; ratio = 100 * r / o
            if (order == "cost ratio") printf fmt, c, o, p, r, cost, ratio
            else printf fmt, c, o, p, r, ratio, cost }'
        cg_mw_own "$c" "${per[ours]}"
        rm -rf "$CG_KEEP"
        CG_KEEP=''
    done
    echo "mw own: the middleware's own instructions per message (bench/mw_cost.py: its hooks"
    echo "without the rest of the chain, plus the chain level it adds), over ours (target < 3 %)"
    if [ ${#CG_FOOT[@]} -gt 0 ]; then printf '%s\n' "${CG_FOOT[@]}"; fi
}

# cg_mw_own CASE OURS: the middleware's own work from the kept profiles, a line
# under the case's row (the whole-program difference also counts how valgrind's
# serialised threads happened to wait and wake, which swings from run to run).
cg_mw_own() {
    local own key
    [ -s "$CG_KEEP/prom" ] && [ -s "$CG_KEEP/ours" ] || return 0
    own=$("$PYTHON" "$HERE/mw_cost.py" "$CG_KEEP/prom" "$(cat "$CG_KEEP/prom.n")" \
        "$CG_KEEP/ours" "$(cat "$CG_KEEP/ours.n")" 2>/dev/null | awk '$1 == "total" { print $2 }')
    [ -n "$own" ] || return 0
    key=${CG_KEY//\{case\}/${1// /_}}
    echo "ours ${key//\{side\}/mw_own} ${own%.*}" >>"$RESULTS"
    awk -v m="$own" -v o="$2" 'BEGIN { pct = o > 0 ? 100 * m / o : 0
        printf "  %-12s mw own %6.0f instr/msg  %5.1f%% of ours\n", "", m, pct }'
}

# bench_broker NAME LABEL [WHERE]: the wall-clock run, then the callgrind
# table, of the broker declared just before; then the declaration is cleared.
bench_broker() {
    BROKER=$1 PROG=$BUILD/bench/fs_bench_$1
    local label=$2 where=${3:+, $3} out started='' skip_cg=BENCH_${1^^}_CALLGRIND have_svc=1
    [ -z "$SERVICE" ] || "$SERVICES" list 2>/dev/null | grep -qx "$SERVICE" || have_svc=''
    if [ -x "$PROG" ] && { [ -n "$have_svc" ] || [ "$SERVICE_FOR" != all ]; }; then
        [ "$SERVICE_FOR" = all ] && svc_up && started=1
        echo "bench: $label ($PROG$where)" >&2
        out=$(mktemp)
        if "$PROG" --repeats "$REPEATS" >"$out"; then
            grep -v '^#' "$out" | sed 's/^/ours /' >>"$RESULTS"
            echo
            sed -n 's/^# \{0,1\}//p' "$out"
        else
            echo "bench: the $label benchmark failed" >&2
        fi
        rm -f "$out"
        if [ ${#CG_CASES[@]} -gt 0 ] && [ "${!skip_cg:-1}" != 0 ] && command -v valgrind >/dev/null &&
            { [ -n "$have_svc" ] || [ "$SERVICE_FOR" != callgrind ]; }; then
            [ "$SERVICE_FOR" = callgrind ] && svc_up && started=1
            echo "bench: $label under callgrind (instructions per message)" >&2
            cg_table
        fi
        if [ -n "$started" ]; then "$SERVICES" stop "$SERVICE" >&2; fi
    fi
    bench_reset
}
# svc_up: start SERVICE unless it runs; true when started here.
svc_up() {
    "$SERVICES" status "$SERVICE" >/dev/null 2>&1 && return 1
    "$SERVICES" start "$SERVICE" >&2
}
# bench_reset: no declaration (the defaults).
bench_reset() {
    SERVICE='' SERVICE_FOR='' CG_READ=total CG_NKEY='' CG_TITLE='' CG_ORDER="cost ratio" CG_KEEP=''
    CG_CASES=() CG_VALGRIND=() CG_ENV=() CG_FOOT=()
}
bench_reset

# Redis (issue 4): channels, lists and streams, on a redis-server the
# benchmark starts itself; wall clock only (no CG_CASES).
bench_broker redis Redis "on its own redis-server"

# Kafka (issue 8): wall clock on librdkafka's in-process mock cluster; under
# callgrind the client alone, on the stand-alone mock of scripts/services.sh
# (its own process), counted between the first record and the last.
SERVICE=kafka SERVICE_FOR=callgrind CG_READ=dump CG_NKEY=kafka_cg_messages
CG_CASES=("produce|5000" "consume_single|5000" "consume_batch|5000")
kafka_cg_args() {
    CG_ENV=("FS_KAFKA_BOOTSTRAP=$("$SERVICES" url kafka 2>/dev/null | sed 's,^kafka://,,')")
    CG_ARGS=(--only "$1" --side "$2" --callgrind --messages "$3")
}
CG_KEY='kafka_{case}_{side}_instructions' CG_ORDER="ratio cost"
CG_HEAD=('%-16s %12s %12s %12s %9s %10s\n' "instr/msg" ours ours+prom raw ours/raw middleware)
CG_ROW='%-16s %12d %12d %12d %8.0f%% %+9.1f%%\n'
CG_FOOT=("(ours/raw: raw's instructions per message over ours, as a throughput ratio; middleware: instructions it adds)")
bench_broker kafka Kafka "on librdkafka's mock cluster"

# NATS (issue 10): core publish, core publish+receive, JetStream publish
# (PubAck) and pull+ack, on a nats-server -js the benchmark starts itself.
# Callgrind counts only what the program switches on; the messages are
# bench_nats.c's counts x the scale, enough that set-up (consumer, threads,
# first request) and valgrind's serialised threads weigh little.
CG_VALGRIND=(--instr-atstart=no)
CG_CASES=("core publish|10000|0.05" "core pubsub|10000|0.05" "js publish|2000|0.2" "js pull|10000|0.2")
nats_cg_args() { CG_ARGS=(--repeats 1 --scale "$4" --case "$1" --side "$2" --callgrind); }
CG_KEY='nats_{case}_instr_{side}'
CG_HEAD=('%-14s %12s %12s %12s %9s %9s\n' "instr/msg" "ours" "+prometheus" "raw nats.c" "mw cost" "raw/ours")
CG_ROW='%-14s %12.0f %12.0f %12.0f %8.1f%% %8.0f%%\n'
MW_COST="mw cost: instructions the Prometheus middleware adds (target < 3 %);"
CG_FOOT=("$MW_COST" "raw/ours: raw nats.c's instructions per message over ours (target >= 90 %)")
bench_broker nats NATS "on its own nats-server"

# MQTT (issue 11): QoS 0 and QoS 1, publish and consume, on a mosquitto the
# benchmark starts itself. Callgrind: BENCH_MQTT_CG_N and 3x as many messages
# per side. The raw side does the same work in libmosquitto (a QoS 1
# consumer's PUBACK leaves when on_message returns); consume counts include
# the raw publisher that feeds both sides.
N=${BENCH_MQTT_CG_N:-1000}
CG_CASES=("qos0 publish|$N,$((N * 3))" "qos0 consume|$N,$((N * 3))" "qos1 publish|$N,$((N * 3))"
    "qos1 consume|$N,$((N * 3))")
mqtt_cg_args() { CG_ARGS=(--case "$1" --side "$2" --count "$3" --repeats 1); }
CG_KEY='mqtt_{case}_{side}_instr'
CG_HEAD=('%-16s %14s %14s %14s %9s %9s\n' "instr/msg" "ours" "+prometheus" "raw mosq" "mw cost" "raw/ours")
CG_ROW='%-16s %14d %14d %14d %8.1f%% %8.0f%%\n'
CG_FOOT=("$MW_COST" "raw/ours: raw libmosquitto's instructions over ours (target >= 90 %)")
bench_broker mqtt MQTT "on its own mosquitto"

# RabbitMQ (issue 9): confirmed publish (one at a time and batched) and
# consume + ack, on the rabbitmq-server of scripts/services.sh; callgrind
# counts the client (every thread) between the program's start and dump.
SERVICE=rabbitmq SERVICE_FOR=all CG_READ=dump
CG_CASES=("publish_single|1000,3000" "publish_batch|1000,3000" "consume|1000,3000")
rabbitmq_cg_args() { CG_ARGS=(--side "$2" --workload "$1" --count "$3"); }
CG_KEY='rabbitmq_{case}_{side}_ir' CG_ORDER="ratio cost"
CG_TITLE="RabbitMQ, client instructions per message (callgrind, all threads)"
CG_HEAD=('%-16s %10s %10s %10s %9s %9s\n' workload ours ours+prom raw ours/raw "mw cost")
CG_ROW='%-16s %10d %10d %10d %8.0f%% %8.1f%%\n'
CG_FOOT=("(ours/raw here: raw's instructions as a share of ours; 100 % = the same work)")
bench_broker rabbitmq RabbitMQ
