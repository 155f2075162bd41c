"""Add up the counts every suite printed (meson's testlog.json) into one closing line.

Unit tests print "suite: N passed, M failed"; pytest prints "N passed[, M failed][, K skipped]".
A suite that printed no count, a skip, or a failing exit status counts as a failure: a run that
tested nothing must not look green.
"""
import json
import re
import sys

COUNT = re.compile(r"(\d+) (passed|failed|skipped|error|errors)\b")


def main(paths):
    passed = failed = skipped = 0
    problems = []
    for path in paths:
        with open(path) as f:
            for raw in f:
                t = json.loads(raw)
                out = (t.get("stdout") or "") + (t.get("stderr") or "")
                counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0, "errors": 0}
                found = False
                for line in out.splitlines():
                    if "passed" in line or "failed" in line:
                        for n, kind in COUNT.findall(line):
                            counts[kind] += int(n)
                            found = True
                if not found:
                    problems.append("%s printed no test counts" % t["name"])
                    failed += 1
                if t.get("result") not in ("OK", "EXPECTEDFAIL"):
                    problems.append("%s: %s" % (t["name"], t.get("result")))
                    if counts["failed"] == 0:
                        failed += 1
                passed += counts["passed"]
                failed += counts["failed"] + counts["error"] + counts["errors"]
                skipped += counts["skipped"]
    for p in problems:
        print("problem: " + p)
    if skipped:
        print("problem: %d tests were skipped; a skip is not a pass" % skipped)
    print("tests: %d passed, %d failed" % (passed, failed + skipped))
    return 0 if failed == 0 and skipped == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
