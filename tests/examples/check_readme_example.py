#!/usr/bin/python3
"""A documentation page shows exactly an example file (which the build compiles).

    check_readme_example.py PAGE.md examples/NAME.c

Passes when one ```c block of the README is byte-for-byte the example file.
"""
import re
import sys


def main():
    readme, example = sys.argv[1], sys.argv[2]
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    with open(example, encoding="utf-8") as f:
        code = f.read()
    blocks = re.findall(r"^```c\n(.*?)^```", text, flags=re.S | re.M)
    if code in blocks:
        print("ok   the README shows %s exactly" % example)
        return 0
    print("FAIL: no ```c block of %s equals %s (%d C blocks found)" % (readme, example, len(blocks)),
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
