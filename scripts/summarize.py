"""Add up what every stage printed into one closing line.

Inputs: meson testlog files (*.json: unit tests print "suite: N passed, M failed", pytest prints
"N passed[, M failed][, K skipped]") and text files with "name: N passed, M failed" lines.
A test that printed no count, a skip, or a failing exit status counts as a failure: a run that
tested nothing must not look green.
"""
import json
import os
import re
import sys

COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?)\b")


def counts_in(text):
    found, c = False, {"passed": 0, "failed": 0, "skipped": 0}
    for line in text.splitlines():
        if "passed" not in line and "failed" not in line:
            continue
        for n, kind in COUNT.findall(line):
            c["failed" if kind.startswith("error") else kind] += int(n)
            found = True
    return found, c


def main(paths):
    total = {"passed": 0, "failed": 0, "skipped": 0}
    for path in paths:
        name = os.path.basename(path)
        stage = {"passed": 0, "failed": 0, "skipped": 0}
        if path.endswith(".json"):
            with open(path) as f:
                for raw in f:
                    t = json.loads(raw)
                    found, c = counts_in((t.get("stdout") or "") + (t.get("stderr") or ""))
                    if not found:
                        print("problem: %s/%s printed no test counts" % (name, t["name"]))
                        c["failed"] += 1
                    if t.get("result") not in ("OK", "EXPECTEDFAIL") and c["failed"] == 0:
                        print("problem: %s/%s ended %s" % (name, t["name"], t.get("result")))
                        c["failed"] += 1
                    for k in stage:
                        stage[k] += c[k]
        else:
            with open(path) as f:
                found, stage = counts_in(f.read())
            if not found:
                print("problem: %s printed no test counts" % name)
                stage["failed"] += 1
        print("  %-14s %5d passed, %d failed, %d skipped"
              % (name, stage["passed"], stage["failed"], stage["skipped"]))
        for k in total:
            total[k] += stage[k]
    if total["skipped"]:
        print("problem: %d tests were skipped; a skip is not a pass" % total["skipped"])
    failed = total["failed"] + total["skipped"]
    print("tests: %d passed, %d failed" % (total["passed"], failed))
    return 0 if failed == 0 and total["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
