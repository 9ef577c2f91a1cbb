"""JUnit reports of a test run: one closing line over all of them, and records for script checks.

    summarize_reports.py REPORT.xml...
        prints 'tests: N passed, N failed, N skipped'; exits 1 when a test failed, a report is
        missing or nothing passed.
    summarize_reports.py --record OUT.xml NAME STATUS LOG
        writes a report with the single test NAME, passed when STATUS is 0, else failed with the
        end of the file LOG (a check that is not a pytest test, e.g. `run-hub.sh --check`).
"""

import re
import sys
import xml.etree.ElementTree as ET

LOG_TAIL_CHARS = 20_000
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
NOT_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # XML 1.0 cannot hold these


def count(paths):
    """(passed, failed, skipped, missing report paths) over the JUnit files at `paths`."""
    passed = failed = skipped = 0
    missing = []
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError):
            missing.append(path)
            continue
        for suite in root.iter("testsuite"):
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += tests - bad - skip
            failed += bad
            skipped += skip
    return passed, failed, skipped, missing


def record(out_path, name, status, log_path):
    """Write a JUnit report holding one test, `name`, which failed unless `status` is 0."""
    failed = status != 0
    suite = ET.Element("testsuite", name="scripts", tests="1", failures=str(int(failed)), errors="0", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="scripts", name=name)
    if failed:
        try:
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()[-LOG_TAIL_CHARS:]
        except OSError as exc:
            text = f"(no log: {exc})"
        text = NOT_XML_CHARS.sub("", ANSI_ESCAPE.sub("", text))
        ET.SubElement(case, "failure", message=f"exit status {status}").text = text
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(out_path, encoding="utf-8", xml_declaration=True)


def main(argv):
    if argv[:1] == ["--record"]:
        if len(argv) != 5 or not argv[3].lstrip("-").isdigit():
            print("usage: summarize_reports.py --record OUT.xml NAME STATUS LOG", file=sys.stderr)
            return 2
        record(argv[1], argv[2], int(argv[3]), argv[4])
        return 0
    passed, failed, skipped, missing = count(argv)
    if missing:
        print(f"missing test reports: {', '.join(missing)}", file=sys.stderr)
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or missing or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
