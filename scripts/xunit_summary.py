#!/usr/bin/env python3
"""Prints XCTest's closing line ("Executed N tests, with S tests skipped and F failures") from the xUnit
report `swift test --parallel --xunit-output` writes: in parallel mode XCTest's own summary is not printed,
and .ci/run reads that line. A test that crashed its process is a failure in the report, so it is counted.
Also lists the failed tests, one per line, and the five slowest. SwiftPM's parallel report records a
test that skipped itself (XCTSkip) as passed, so skips are counted only when the report marks them.

Usage: xunit_summary.py REPORT.xml
"""
import sys
import xml.etree.ElementTree as ElementTree


def main():
    cases = ElementTree.parse(sys.argv[1]).getroot().iter("testcase")
    total = skipped = 0
    failed, timings = [], []
    for case in cases:
        total += 1
        name = f"{case.get('classname')}.{case.get('name')}"
        timings.append((float(case.get("time") or 0), name))
        if case.find("skipped") is not None:
            skipped += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
    for name in failed:
        print(f"failed: {name}")
    for seconds, name in sorted(timings, reverse=True)[:5]:
        print(f"slowest: {name} {seconds:.1f} s")
    print(f"\t Executed {total} tests, with {skipped} tests skipped and {len(failed)} failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
