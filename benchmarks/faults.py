"""The fault-injection suite's counts (issue 17, item 9): attempts and passes, by class of fault.

Runs ``tests/test_faults.py`` under the thorough hypothesis profile (``HYPOTHESIS_PROFILE=ci``,
as CI does) with JUnit XML and hypothesis statistics, and writes
``benchmarks/results/faults.json``:

* per test: its outcome and, for a property test, the examples hypothesis ran (passing,
  failing, invalid) in its generate phase;
* per class of fault (the test names' subjects: signals, full disk, read-only folders,
  concurrent runs, names, symlinks, special files, huge numbers, tampered provenance, ...):
  attempts (test cases plus generated examples) and how many passed;
* CPU seconds of the run and the load average (the machine is shared).

No absolute paths: test ids are relative to the repository.

Usage: uv run python benchmarks/faults.py
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "faults.json"

#: class of fault -> words that put a test in it (first match wins, in this order)
CLASSES = {
    "signals and interrupts": ("signal", "interrupt", "sigint", "sigterm", "ctrl"),
    "full disk and write errors": ("enospc", "full_file_system", "disk", "error_while_writing"),
    "read-only outputs": ("read_only", "readonly", "unwritable"),
    "concurrent runs": ("concurrent", "together"),
    "names and paths": ("name", "traversal", "outside", "control_char", "path"),
    "symlinks": ("symlink",),
    "special files": ("fifo", "device", "dev_zero", "special"),
    "huge numbers and sizes": ("huge", "large", "overflow", "rows", "size", "digit", "limit"),
    "provenance": ("provenance", "tamper", "hash", "trust"),
    "overwrites": ("overwrite", "force", "existing", "writes_over"),
    "partial output sets": ("one_set", "as_one"),
    "usage errors and bad options": ("usage", "out_must", "out_of_range", "debug"),
    "strict JSON": ("json", "infinity", "nan"),
}


def _class(name: str) -> str:
    low = name.lower()
    for label, words in CLASSES.items():
        if any(w in low for w in words):
            return label
    return "other"


def _hypothesis_examples(output: str) -> dict[str, dict[str, int]]:
    """``{test function: {passing, failing, invalid}}`` from ``--hypothesis-show-statistics``."""
    out: dict[str, dict[str, int]] = {}
    current = None
    for line in output.splitlines():
        head = re.match(r"^tests/test_faults\.py::(\S+):\s*$", line.strip())
        if head:
            current = head.group(1).split("[")[0]
            continue
        counts = re.search(
            r"(\d+) passing,? (?:examples?, )?(\d+) failing,? (?:examples?, )?(?:and )?(\d+) invalid", line
        )
        if current and counts and "generate phase" not in line:
            entry = out.setdefault(current, {"passing": 0, "failing": 0, "invalid": 0})
            entry["passing"] += int(counts.group(1))
            entry["failing"] += int(counts.group(2))
            entry["invalid"] += int(counts.group(3))
    return out


def main() -> None:
    env = {**os.environ, "HYPOTHESIS_PROFILE": "ci"}
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "faults.xml"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_faults.py",
                "--hypothesis-show-statistics",
                f"--junitxml={junit}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cases = ET.parse(junit).getroot().iter("testcase")
        tests = []
        for case in cases:
            name = case.get("name", "")
            outcome = "passed"
            for kind in ("failure", "error", "skipped"):
                if case.find(kind) is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
            tests.append({"test": f"tests/test_faults.py::{name}", "outcome": outcome})
    examples = _hypothesis_examples(proc.stdout)
    by_class: dict[str, dict[str, int]] = {}
    for t in tests:
        function = t["test"].split("::", 1)[1].split("[")[0]
        ex = examples.get(function)
        t["examples"] = ex
        entry = by_class.setdefault(_class(function), {"attempts": 0, "passed": 0})
        if ex is not None:  # a property test: its generated examples are the attempts
            entry["attempts"] += ex["passing"] + ex["failing"]
            entry["passed"] += ex["passing"] if t["outcome"] == "passed" else 0
        elif t["outcome"] != "skipped":
            entry["attempts"] += 1
            entry["passed"] += t["outcome"] == "passed"
    total = {
        "attempts": sum(v["attempts"] for v in by_class.values()),
        "passed": sum(v["passed"] for v in by_class.values()),
    }
    record = {
        "suite": "tests/test_faults.py",
        "hypothesis_profile": "ci",
        "pytest_exit_code": proc.returncode,
        "tests": len(tests),
        "outcomes": {
            k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")
        },
        "attempts_and_passes": {"total": total, "by_class": dict(sorted(by_class.items()))},
        "cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "wall_seconds": round(wall, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "per_test": tests,
    }
    text = json.dumps(record, indent=1) + "\n"
    RESULTS.write_text(text.replace(str(ROOT) + "/", ""))
    print(
        json.dumps(
            {k: record[k] for k in ("tests", "outcomes", "attempts_and_passes", "cpu_seconds")}, indent=1
        )
    )
    sys.exit(0 if proc.returncode == 0 else 1)


if __name__ == "__main__":
    main()
