"""Runs a command and prints `wall_seconds peak_rss_bytes` of it (and its children).

Usage: python measure.py OUT_FILE -- CMD ARGS...
The command's own output goes to stderr, so the figures on OUT_FILE stay clean.
"""

import resource
import subprocess
import sys
import time

out, sep, *cmd = sys.argv[1:]
assert sep == "--" and cmd, __doc__
start = time.perf_counter()
done = subprocess.run(cmd, stdout=sys.stderr)
wall = time.perf_counter() - start
# ru_maxrss is in KiB on Linux: the largest resident set of any waited-for child.
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
with open(out, "w") as f:
    f.write(f"{wall:.3f} {peak}\n")
sys.exit(done.returncode)
