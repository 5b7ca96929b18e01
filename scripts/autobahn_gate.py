#!/usr/bin/env python3
"""Gate on an Autobahn|Testsuite fuzzingclient report.

Usage: scripts/autobahn_gate.py REPORT_DIR/index.json

index.json has the shape
    {agent: {case_id: {"behavior": ..., "behaviorClose": ..., "duration": ...,
                       "reportfile": "<name>.html", ...}}}

A case passes when its `behavior` is OK, NON-STRICT or INFORMATIONAL and its
`behaviorClose` is OK or INFORMATIONAL. Anything else (FAILED, UNIMPLEMENTED,
WRONG CODE, UNCLEAN, FAILED BY CLIENT, ...) fails the case. For each failing
case the details from the per-case JSON report (the .json sibling of
`reportfile`) are printed. Exit status is 1 when any case fails or when there
are no cases at all, 0 otherwise. The last line printed is
`autobahn: N passed, M failed`.
"""

import json
import os
import sys

PASSING_BEHAVIOR = ("OK", "NON-STRICT", "INFORMATIONAL")
PASSING_CLOSE = ("OK", "INFORMATIONAL")
DETAIL_FIELDS = ("description", "expectation", "result", "resultClose")


def case_sort_key(case_id):
    key = []
    for part in str(case_id).split("."):
        try:
            key.append((0, int(part), ""))
        except ValueError:
            key.append((1, 0, part))
    return key


def load_case_report(report_dir, entry):
    """Return (dict, error) for the per-case JSON report of an index entry."""
    reportfile = entry.get("reportfile")
    if not reportfile:
        return None, "no reportfile in index.json"
    base, _ = os.path.splitext(reportfile)
    path = os.path.join(report_dir, base + ".json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), None
    except (OSError, ValueError) as e:
        return None, "cannot read %s: %s" % (path, e)


def indent(text, prefix="      "):
    return "\n".join(prefix + line for line in str(text).splitlines() or [""])


def main(argv):
    if len(argv) != 2:
        print("usage: autobahn_gate.py REPORT_DIR/index.json", file=sys.stderr)
        return 2
    index_path = argv[1]
    report_dir = os.path.dirname(os.path.abspath(index_path))

    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("autobahn: cannot read %s: %s" % (index_path, e))
        print("autobahn: 0 passed, 0 failed")
        return 1
    if not isinstance(index, dict):
        print("autobahn: %s is not a JSON object" % index_path)
        print("autobahn: 0 passed, 0 failed")
        return 1

    multi_agent = len(index) > 1
    passed = 0
    failed = []
    by_behavior = {}
    by_close = {}

    for agent in sorted(index):
        cases = index[agent]
        if not isinstance(cases, dict):
            print("autobahn: agent %r has no case table" % agent)
            continue
        for case_id in sorted(cases, key=case_sort_key):
            entry = cases[case_id] if isinstance(cases[case_id], dict) else {}
            behavior = str(entry.get("behavior"))
            close = str(entry.get("behaviorClose"))
            by_behavior[behavior] = by_behavior.get(behavior, 0) + 1
            by_close[close] = by_close.get(close, 0) + 1
            label = "%s %s" % (agent, case_id) if multi_agent else str(case_id)
            if behavior in PASSING_BEHAVIOR and close in PASSING_CLOSE:
                passed += 1
            else:
                failed.append((label, behavior, close, entry))

    total = passed + len(failed)

    for label, behavior, close, entry in failed:
        print("FAIL case %s: behavior=%s behaviorClose=%s" % (label, behavior, close))
        report, err = load_case_report(report_dir, entry)
        if err:
            print("    (%s)" % err)
            continue
        for field in DETAIL_FIELDS:
            print("    %s:" % field)
            print(indent(report.get(field, "<missing>")))
        # Useful context when a close went wrong.
        extra = []
        for field in ("wasClean", "wasNotCleanReason", "droppedByMe", "failedByMe",
                      "localCloseCode", "remoteCloseCode", "remoteCloseReason",
                      "wasCloseHandshakeTimeout", "wasServerConnectionDropTimeout"):
            if field in report:
                extra.append("%s=%s" % (field, report[field]))
        if extra:
            print("    close details: " + ", ".join(extra))

    if total == 0:
        print("autobahn: no test cases found in %s" % index_path)

    def fmt(counts, keys):
        return ", ".join("%s %d" % (k, counts.get(k, 0)) for k in keys)

    for title, counts, keys in (("behavior", by_behavior, PASSING_BEHAVIOR),
                                ("behaviorClose", by_close, PASSING_CLOSE)):
        keys = list(keys) + sorted(k for k in counts if k not in keys)
        print("autobahn: %s: %s" % (title, fmt(counts, keys)))
    print("autobahn: %d passed, %d failed" % (passed, len(failed)))

    return 0 if total > 0 and not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
