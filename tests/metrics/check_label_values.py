#!/usr/bin/python3
"""Parse an exposition with prometheus_client's text and OpenMetrics parsers
and check that every series of family `rand` comes back as exactly the label
values written: no two series alike, each decoding (metrics.h, "Label values":
U+FFFD + two hex digits is a byte that was not UTF-8, U+FFFD U+FFFD is U+FFFD)
to the bytes of one expected label set.

Usage: check_label_values.py TEXT_FILE OPENMETRICS_FILE EXPECTED_FILE
EXPECTED_FILE: one line per child, its two values in hex separated by a space.
Exit status 0 when both parsers agree with EXPECTED_FILE, 1 otherwise, 77 when
prometheus_client is missing.
"""
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families as parse_text
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
except ImportError:
    print("prometheus_client not found (python3-prometheus-client)")
    sys.exit(77)

REPLACEMENT = "\ufffd"


def decode(value):
    """The bytes a rendered label value stands for."""
    out = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == REPLACEMENT:
            if value[i + 1] == REPLACEMENT:
                out += REPLACEMENT.encode("utf-8")
                i += 2
            else:
                out.append(int(value[i + 1:i + 3], 16))
                i += 3
        else:
            out += ch.encode("utf-8")
            i += 1
    return bytes(out)


def check(name, families, expected):
    seen = []
    for family in families:
        if family.name != "rand":
            continue
        for sample in family.samples:
            if sample.name == "rand_total":
                seen.append((decode(sample.labels["a"]), decode(sample.labels["b"])))
    if len(seen) != len(set(seen)):
        print("%s: %d series, only %d distinct" % (name, len(seen), len(set(seen))))
        return False
    if set(seen) != expected:
        missing = expected - set(seen)
        extra = set(seen) - expected
        print("%s: %d series; %d expected label sets missing (e.g. %r), %d unexpected (e.g. %r)"
              % (name, len(seen), len(missing), next(iter(missing), None), len(extra),
                 next(iter(extra), None)))
        return False
    return True


def main():
    # newline="": a carriage return in a label value stays one (no newline translation)
    text = open(sys.argv[1], encoding="utf-8", newline="").read()
    om = open(sys.argv[2], encoding="utf-8", newline="").read()
    expected = set()
    for line in open(sys.argv[3]):
        a, b = line.rstrip("\n").split(" ")
        expected.add((bytes.fromhex(a), bytes.fromhex(b)))
    ok = check("text parser", parse_text(text), expected)
    ok = check("OpenMetrics parser", parse_om(om), expected) and ok
    print("%d label sets checked through both parsers" % len(expected) if ok else "FAILED")
    sys.exit(0 if ok else 1)


main()
