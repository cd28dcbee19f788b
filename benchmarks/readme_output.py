"""Regenerate the README's example output from a real run of the quick suite.

    python benchmarks/readme_output.py            # runs `archbench run suites/quick.yaml`, rewrites README.md
    python benchmarks/readme_output.py --check    # exit 1 if the README's point count is not the suite's

The block between the README's ``<!-- quick-output -->`` and ``<!-- /quick-output -->`` markers is
replaced by what the run printed from its Table 1 to its last line, with this machine's paths made
neutral. Run it alone on an idle machine: the Table 1 exponents are fits to timings.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- quick-output -->", "<!-- /quick-output -->"


def block(text: str) -> str:
    """The README's example output, between the markers."""
    try:
        return text.split(START, 1)[1].split(END, 1)[0]
    except IndexError:
        raise SystemExit(f"README.md has no {START} ... {END} block") from None


def documented_points(text: str) -> int:
    found = re.search(r"^(\d+) points, \d+ rows", block(text), re.M)
    if not found:
        raise SystemExit("README.md's example output has no 'N points, N rows' line")
    return int(found.group(1))


def planned_points() -> int:
    from archbench.suite.load import load_suite
    from archbench.suite.plan import count_points

    return count_points(load_suite(ROOT / "suites" / "quick.yaml"))


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([sys.executable, "-m", "archbench.cli", "run", "suites/quick.yaml", "--out", out,
                              "--no-progress"], cwd=ROOT, capture_output=True, text=True, check=True)
        printed = run.stdout + run.stderr
        tail = printed[printed.index("Table 1, measured"):].rstrip("\n")
        tail = re.sub(re.escape(out) + r"/", "results/", tail)
        tail = re.sub(r"report: .*/reports/", "report: /path/to/reports/", tail)
    text = README.read_text()
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    README.write_text(f"{before}{START}\n```\n{tail}\n```\n{END}{after}")
    print(tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the README's point count")
    if not parser.parse_args().check:
        regenerate()
    documented, planned = documented_points(README.read_text()), planned_points()
    if documented != planned:
        print(f"README.md shows {documented} points; suites/quick.yaml plans {planned}: "
              "run python benchmarks/readme_output.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
