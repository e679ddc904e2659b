"""tests/support/child.py - the test programs that the Python checks start
and that announce themselves on their first line of output ("PORT 12345").

    line = child.first_line(proc)   # proc: a subprocess.Popen with stdout=PIPE
"""

import threading


def first_line(proc, seconds=60):
    """The first line `proc` writes on stdout ("" at end of file), decoded;
    `proc` is killed when none comes within `seconds`."""
    timer = threading.Timer(seconds, proc.kill)
    timer.start()
    try:
        return proc.stdout.readline().decode()
    finally:
        timer.cancel()
