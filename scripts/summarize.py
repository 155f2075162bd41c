"""Add up what every stage printed into one closing line: "tests: N passed, N failed".

usage: summarize.py [--expect STAGE:TEST[,TEST...]]... [--same-count SIDE=SIDE]... RESULT_FILE...
       (SIDE: STAGE:TEST[+TEST...])

Result files are meson testlog files (*.json) or text files with "name: N passed, M failed"
lines. Nothing counts that did not run in this run:
- a result file that is missing or empty is a failure (test.sh deletes the old ones before each
  stage, so a file left over from an earlier run can never be counted);
- a meson stage that ran no test at all, or not every test --expect names for it (a suite that
  matched nothing exits 0 and writes no log), is a failure; in a text file --expect names the
  "name: N passed, M failed" lines that must be there;
- a test that printed no count, a skip, an error, an xfail or an xpass, and a failing exit status
  count as failures;
- --same-count: the same cases split differently (the ASan stage runs the integration cases in
  two halves) must count as many on both sides: a case lost between the halves is a failure.
Counts come from a pytest summary line ("12 passed, 1 xfailed in 3.2s") when the output has
one, otherwise from "name: N passed, M failed" lines at the start of a line, so numbers quoted
inside a failure message are never added up.
"""
import json
import os
import re
import sys

KINDS = ("passed", "failed", "skipped", "errors", "xfailed", "xpassed")
PYTEST_SUMMARY = re.compile(
    r"^=*\s*((?:\d+ (?:passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)"
    r"(?:, )?)+) in [\d.]+s\b")
PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)\b")
NAMED_COUNT = re.compile(r"^[\w./+-]+: (\d+) passed, (\d+) failed\b")
# meson's results that mean the test ran and its own counts decide.
MESON_RAN = ("OK", "FAIL", "EXPECTEDFAIL", "UNEXPECTEDPASS")


def zero():
    return dict.fromkeys(KINDS, 0)


def counts_in(text):
    """(found, counts) from one test's output."""
    c = zero()
    summaries = [m.group(1) for m in map(PYTEST_SUMMARY.match, text.splitlines()) if m]
    if summaries:
        for n, kind in PYTEST_COUNT.findall(summaries[-1]):
            c["errors" if kind.startswith("error") else kind] += int(n)
        return True, c
    found = False
    for line in text.splitlines():
        m = NAMED_COUNT.match(line.strip())
        if m:
            c["passed"] += int(m.group(1))
            c["failed"] += int(m.group(2))
            found = True
    return found, c


def add(total, part):
    for k in KINDS:
        total[k] += part[k]


def meson_stage(path, name, expected, problems, per_test):
    stage, seen = zero(), set()
    with open(path) as f:
        entries = [json.loads(raw) for raw in f if raw.strip()]
    for t in entries:
        test = t["name"].split(" / ")[-1]
        seen.add(test)
        found, c = counts_in((t.get("stdout") or "") + (t.get("stderr") or ""))
        result = t.get("result")
        if not found:
            problems.append("%s/%s printed no test counts (meson: %s)" % (name, test, result))
            c["failed"] += 1
        elif result not in MESON_RAN:
            problems.append("%s/%s ended %s" % (name, test, result))
            c["failed"] += 1
        elif result in ("FAIL", "UNEXPECTEDPASS") and \
                c["failed"] + c["errors"] + c["xpassed"] == 0:
            problems.append("%s/%s ended %s" % (name, test, result))
            c["failed"] += 1
        add(stage, c)
        per_test[(name, test)] = sum(c.values())
    if not entries:
        problems.append("%s ran no test" % name)
        stage["failed"] += 1
    for test in expected.get(name, ()):
        if test not in seen:
            problems.append("%s did not run %s" % (name, test))
            stage["failed"] += 1
    return stage


def text_stage(path, name, expected, problems):
    with open(path) as f:
        text = f.read()
    found, stage = counts_in(text)
    if not found:
        problems.append("%s printed no test counts" % name)
        stage["failed"] += 1
    for test in expected.get(name, ()):
        if not re.search(r"^%s: \d+ passed, \d+ failed" % re.escape(test), text, re.M):
            problems.append("%s has no result for %s" % (name, test))
            stage["failed"] += 1
    return stage


def parse_args(argv):
    expected, same, paths = {}, [], []
    it = iter(argv)
    for arg in it:
        if arg == "--expect":
            stage, _, tests = next(it).partition(":")
            expected.setdefault(stage, []).extend(t for t in tests.split(",") if t)
        elif arg == "--same-count":
            same.append(next(it).split("="))
        else:
            paths.append(arg)
    return expected, same, paths


def side_count(side, per_test):
    """The cases counted for STAGE:TEST[+TEST...]; None when one of them has no count."""
    stage, _, tests = side.partition(":")
    counts = [per_test.get((stage, t)) for t in tests.split("+")]
    return None if None in counts else sum(counts)


def main(argv):
    expected, same, paths = parse_args(argv)
    total, problems, per_test = zero(), [], {}
    for stage_name in expected:
        if not any(os.path.basename(p) == stage_name for p in paths):
            problems.append("no result file given for %s" % stage_name)
            total["failed"] += 1
    for path in paths:
        name = os.path.basename(path)
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            print("  %-16s missing or empty: the stage did not run or wrote nothing" % name)
            problems.append("%s is missing or empty" % name)
            total["failed"] += 1
            continue
        if path.endswith(".json"):
            stage = meson_stage(path, name, expected, problems, per_test)
        else:
            stage = text_stage(path, name, expected, problems)
        extra = "".join(", %d %s" % (stage[k], k) for k in ("skipped", "errors", "xfailed",
                                                          "xpassed") if stage[k])
        print("  %-16s %5d passed, %d failed%s" % (name, stage["passed"], stage["failed"], extra))
        add(total, stage)
    for left, right in same:
        a, b = side_count(left, per_test), side_count(right, per_test)
        if a != b:
            problems.append("%s counted %s cases, %s %s: they are the same cases"
                            % (left, a, right, b))
            total["failed"] += 1
    for p in problems:
        print("problem: " + p)
    for kind, why in (("skipped", "a skip is not a pass"),
                      ("xfailed", "a known failure is still a failure"),
                      ("xpassed", "an expected failure passed: the expectation is stale")):
        if total[kind]:
            print("problem: %d tests %s; %s" % (total[kind], kind, why))
    failed = sum(total[k] for k in KINDS if k != "passed")
    print("tests: %d passed, %d failed" % (total["passed"], failed))
    return 0 if failed == 0 and total["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
