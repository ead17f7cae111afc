#!/usr/bin/env python3
"""Runs the interop checkers side by side, one per core, and fails if any of them fails.

Each checker is one shell command (the Makefile's `interop` target lists them, the longest first).
They share nothing on disk but their inputs (each writes in a directory of its own), and each is
mostly one Python process waiting on one `scion` process, so running one per core roughly halves
the wall time on CI's two cores. A checker's output is printed whole when it ends, with its time,
so the logs do not interleave; the checkers' own summary lines ("keras: N passed, ...") are kept.

Usage: run_checkers.py [--jobs N] COMMAND...
"""
import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed


def run(command):
    started = time.monotonic()
    result = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return command, result.returncode, result.stdout, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="checkers at once (default: the cores)")
    parser.add_argument("commands", nargs="+")
    options = parser.parse_args()
    failures = []
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        for done in as_completed([pool.submit(run, command) for command in options.commands]):
            command, status, output, seconds = done.result()
            print(f"== {command}\n{output.rstrip()}\n== exit {status} after {seconds:.0f} s", flush=True)
            if status != 0:
                failures.append(command)
    for command in failures:
        print(f"FAILED: {command}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
