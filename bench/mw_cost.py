#!/usr/bin/python3
"""bench/mw_cost.py PROM_OUT N [PLAIN_OUT N_PLAIN] - the Prometheus middleware's
own instructions per message, read from the callgrind profile of a benchmark
run of N messages with the middleware installed (and of one without it).

Whole-program differences (a run with the middleware minus a run without)
also count how the threads happened to interleave: a slower consumer makes a
fetcher wait, poll and wake up more often, which callgrind counts as well
(hundreds of instructions per message on some brokers). This script counts
only the work the middleware does:

  consume  inclusive cost of fs__prom_consume minus what it spends in the
           rest of the chain (its calls of fs_consume_next, and those of the
           middleware functions it calls: the handler and inner hooks);
  publish  the same for fs__prom_publish and fs_publish_next, plus
           fs__prom_result (late publish results);
  chain    with a profile without the middleware: the core's dispatch of
           the chain level the middleware adds (self cost of the dispatch
           functions per message, with minus without: deterministic code,
           no waiting in it);

each divided by its run's message count. It prints "consume X",
"publish X", ["chain X",] "total X": instructions per message.
"""
import re
import sys
from collections import defaultdict


def parse(path):
    """self cost, call costs (caller -> callee -> cost) and call counts per function name."""
    names = {}
    self_cost = defaultdict(int)
    call_cost = defaultdict(lambda: defaultdict(int))
    calls = defaultdict(int)
    fn = cfn = None
    pending_call = None  # the cost line after calls= is the call's inclusive cost
    name_re = re.compile(r"^\((\d+)\)(?: (.*))?$")
    npos = 1  # position columns before the cost ("positions: instr line" has two)

    def resolve(spec):
        m = name_re.match(spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), spec)

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[npos]) if len(parts) > npos else 0
                if pending_call is not None:
                    call_cost[fn][pending_call] += cost
                    pending_call = None
                else:
                    self_cost[fn] += cost
                continue
            if line.startswith("positions:"):
                npos = len(line.split()) - 1
            elif line.startswith("fn="):
                fn = resolve(line[3:])
            elif line.startswith("cfn="):
                cfn = resolve(line[4:])
            elif line.startswith("calls="):
                calls[cfn] += int(line[6:].split()[0])
                pending_call = cfn
    return self_cost, call_cost, calls


# The core's dispatch of one chain level (the middleware adds one on each side).
LEVEL_FUNCS = re.compile(r"^(fs_consume_next|fs_publish_next|publish_run|dispatch|worker_main)")


def level_self(self_cost):
    return sum(v for k, v in self_cost.items() if LEVEL_FUNCS.match(k))


def main():
    if len(sys.argv) not in (3, 5):
        sys.stderr.write(__doc__)
        return 2
    self_cost, call_cost, calls = parse(sys.argv[1])
    n = int(sys.argv[2])
    if n <= 0 or not (calls.get("fs__prom_consume") or calls.get("fs__prom_publish")):
        sys.stderr.write("mw_cost: no middleware calls in %s\n" % sys.argv[1])
        return 1

    def inclusive(name):
        return self_cost.get(name, 0) + sum(call_cost.get(name, {}).values())

    def hook(name, nxt):
        """the hook's inclusive cost without the rest of the chain: every call
        of nxt made by the hook or by the middleware's functions it calls
        (not by the core's dispatch, which makes the outermost call)."""
        if name not in self_cost:
            return 0
        rest = sum(v for caller, callees in call_cost.items() if not LEVEL_FUNCS.match(caller)
                   for k, v in callees.items() if k.startswith(nxt))
        return inclusive(name) - rest

    consume = hook("fs__prom_consume", "fs_consume_next") / n
    publish = (hook("fs__prom_publish", "fs_publish_next") + inclusive("fs__prom_result")) / n
    print("consume %.1f" % consume)
    print("publish %.1f" % publish)
    total = consume + publish
    if len(sys.argv) == 5:
        plain_self, _, _ = parse(sys.argv[3])
        level = level_self(self_cost) / n - level_self(plain_self) / int(sys.argv[4])
        print("chain %.1f" % level)
        total += level
    print("total %.1f" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
