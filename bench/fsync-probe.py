#!/usr/bin/env python3
"""bench/fsync-probe.py [DIR] [COUNT]: how long one fdatasync takes on DIR's file system.

The floor under every "fsync always" figure in compare.sh's durability section: a
server that syncs once per request cannot go faster than one request per sync, and
one that commits a group per sync gets at most one group per sync.

Writes a 48-byte record (about one PUT of 32 bytes with its header) and calls
os.fdatasync, COUNT times (default 1000), in two ways: appending to a growing file
(the file size changes, so the sync also writes metadata), and rewriting the first
block of a file already that long (no size change: what preallocated segment files
get). Prints CSV on stdout: mode,syncs,p50_us,p99_us,max_us. DIR defaults to the
directory mktemp uses ($TMPDIR, else /tmp); the probe file is removed afterwards.
"""

import os
import sys
import tempfile
import time


def probe(fd, count, append):
    samples = []
    for _ in range(count):
        if append:
            os.write(fd, b"x" * 48)
        else:
            os.pwrite(fd, b"y" * 48, 0)
        t0 = time.perf_counter_ns()
        os.fdatasync(fd)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, len(samples) * 99 // 100)], samples[-1]


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    fd, path = tempfile.mkstemp(prefix="beuss-fsync-probe.", dir=base)
    try:
        print("mode,syncs,p50_us,p99_us,max_us")
        for mode, append in (("append", True), ("overwrite", False)):
            p50, p99, worst = probe(fd, count, append)
            print(f"{mode},{count},{p50:.0f},{p99:.0f},{worst:.0f}")
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    main()
