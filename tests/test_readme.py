"""The README's example output is a real run's: its point count is what `archbench plan` gives for the
quick suite (benchmarks/readme_output.py regenerates it)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("readme_output", ROOT / "benchmarks" / "readme_output.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_example_has_the_quick_suites_point_count():
    script = _script()
    assert script.documented_points((ROOT / "README.md").read_text()) == script.planned_points()


def test_the_check_reads_the_count_between_the_markers():
    script = _script()
    text = f"intro 3 points, 9 rows\n{script.START}\n```\n12 points, 40 rows (12 ok)\n```\n{script.END}\n"
    assert script.documented_points(text) == 12
