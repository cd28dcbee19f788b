"""Damaged results folders through every reader: compare, report, export and run --resume.

Each case damages a copy of tests/fixtures/results_v1 (a real small run) one way. Every verb must
answer with its exit code and, on refusal, one line on stderr naming the file; never a traceback;
and a refusal writes nothing (no report folder, no export file, the resumed folder unchanged).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from archbench.cli import cli
from archbench.execute import session
from archbench.execute.schedule import Summary

FIXTURE = Path(__file__).parent / "fixtures" / "results_v1"
VERBS = ("compare", "report", "export", "resume")


def _edit(name: str, fn: Callable[[str], str]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / name
        path.write_text(fn(path.read_text(encoding="utf-8")), encoding="utf-8")
    return damage


def _write(name: str, data: str | bytes) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / name
        path.unlink(missing_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return damage


def _line(name: str, line: str, at: int = 1) -> Callable[[Path], None]:
    """Put ``line`` in place of line ``at`` (1-based) of a JSON-lines file."""
    def fn(text: str) -> str:
        lines = text.splitlines()
        lines[at - 1] = line
        return "\n".join(lines) + "\n"
    return _edit(name, fn)


def _record(fn: Callable[[dict], None], at: int = 1) -> Callable[[Path], None]:
    """Change record line ``at`` of records.jsonl with ``fn`` (and keep it valid JSON)."""
    def edit(text: str) -> str:
        lines = text.splitlines()
        record = json.loads(lines[at - 1])
        fn(record)
        lines[at - 1] = json.dumps(record)
        return "\n".join(lines) + "\n"
    return _edit("records.jsonl", edit)


def _csv_column(column: str, value: str | None) -> Callable[[Path], None]:
    """Set ``column`` of every results.csv row to ``value``, or drop the column (None)."""
    def damage(folder: Path) -> None:
        import pandas as pd

        frame = pd.read_csv(folder / "results.csv")
        if value is None:
            frame = frame.drop(columns=[column])
        else:
            frame[column] = value
        frame.to_csv(folder / "results.csv", index=False)
    return damage


def _symlink(name: str, target: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(target)
    return damage


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _other_suite(folder: Path) -> None:
    """Every point renamed (another experiment and architecture): nothing matches the baseline."""
    for name in ("results.csv", "records.jsonl", "samples.jsonl", "artifacts.jsonl"):
        path = folder / name
        text = path.read_text()
        for old, new in (("latency", "speedy"), ("lstm", "gru")):
            text = text.replace(f'"{old}"', f'"{new}"').replace(f",{old},", f",{new},")
        path.write_text(text)
    import pandas as pd

    frame = pd.read_csv(folder / "results.csv")
    frame["point_id"] = "x" + frame.point_id.astype(str)
    frame["experiment"] = "other_" + frame.experiment.astype(str)
    frame.to_csv(folder / "results.csv", index=False)


def _empty_folder(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


OK = dict.fromkeys(VERBS, 0)
BAD = dict.fromkeys(VERBS, 2)


def _only(**codes: int) -> dict[str, int]:
    """Exit 2 from the verbs named (those that read the damaged file), 0 from the others."""
    return {**OK, **codes}


# (name, damage, exit code per verb); the resume skips a damaged record line with one warning
CASES: list[tuple[str, Callable[[Path], None], dict[str, int]]] = [
    # results.csv: read by compare, report and export (a resume rewrites it from the records)
    ("csv-empty", _write("results.csv", b""), _only(compare=2, report=2, export=2)),
    ("csv-header-only", _edit("results.csv", lambda t: t.splitlines()[0] + "\n"), _only(compare=2, export=2)),
    ("csv-truncated", _edit("results.csv", lambda t: t[: len(t) // 2]), _only(compare=2, report=2, export=2)),
    ("csv-binary", _write("results.csv", bytes(range(256)) * 8), _only(compare=2, report=2, export=2)),
    ("csv-latin1", _write("results.csv", "point_id,metric\n\xe9t\xe9,x\n".encode("latin-1")),
     _only(compare=2, report=2, export=2)),
    ("csv-nul-inside", _edit("results.csv", lambda t: t[:500] + "\0" + t[500:]), _only(compare=2, report=2, export=2)),
    ("csv-no-value", _csv_column("value", None), _only(compare=2, report=2, export=2)),
    ("csv-no-status", _csv_column("status", None), _only(compare=2, report=2, export=2)),
    ("csv-no-point_id", _csv_column("point_id", None), _only(compare=2, report=2, export=2)),
    ("csv-no-arch", _csv_column("arch", None), _only(report=2, export=2)),
    ("csv-not-a-table", _write("results.csv", "a,b,c\n1,2,3\n"), _only(compare=2, report=2, export=2)),
    ("csv-value-text", _csv_column("value", "fast"), _only(compare=2, report=2, export=2)),
    ("csv-status-unknown", _csv_column("status", "great"), _only(compare=2, report=2, export=2)),
    ("csv-seq_len-text", _csv_column("seq_len", "long"), _only(compare=2, report=2, export=2)),
    ("csv-ragged", _edit("results.csv", lambda t: t + "1,2,3," * 100 + "\n"), _only(compare=2, report=2, export=2)),
    ("csv-is-a-folder", lambda f: ((f / "results.csv").unlink(), (f / "results.csv").mkdir()), BAD),
    # a symlink planted in a results folder: never read through outside it, never written through
    ("csv-symlink-outside", _symlink("results.csv", "/etc/passwd"), BAD),
    ("csv-symlink-dangling", _symlink("results.csv", "gone.csv"), BAD),
    # an ok value that is not finite: compare cannot judge it (exit 3); report and export refuse it
    ("csv-value-nan", _csv_column("value", "nan"), _only(compare=3, report=2, export=2)),
    ("csv-value-inf", _csv_column("value", "inf"), _only(compare=3, report=2, export=2)),
    ("other-suite", _other_suite, _only(compare=3, export=2)),
    # records.jsonl: read by compare (task columns), report and export when no results.csv, resume
    ("records-42", _line("records.jsonl", "42"), _only(compare=2, export=2)),
    ("records-{}", _line("records.jsonl", "{}"), _only(compare=2, export=2)),
    ("records-null", _line("records.jsonl", "null"), _only(compare=2, export=2)),
    ("records-[]", _line("records.jsonl", "[]"), _only(compare=2, export=2)),
    ("records-text", _line("records.jsonl", "hello world", at=3), _only(compare=2, export=2)),
    ("records-deep", _line("records.jsonl", _deep(100_000)), _only(compare=2, export=2)),
    ("records-binary", _write("records.jsonl", bytes(range(256)) * 8), _only(compare=2, export=2, resume=2)),
    ("records-status", _record(lambda r: r.update(status="splendid")), _only(compare=2, export=2)),
    ("records-rows-5", _record(lambda r: r.update(rows=5)), _only(compare=2, export=2)),
    ("records-point-list", _record(lambda r: r.update(point=[1, 2])), _only(compare=2, export=2)),
    ("records-seq_len-text", _record(lambda r: r["point"].update(seq_len="16")), _only(compare=2, export=2)),
    ("records-value-nan-ok", _record(lambda r: r["rows"][0].update(value=float("nan"))), _only(compare=2, export=2)),
    ("records-row-42", _record(lambda r: r["rows"].append(42)), _only(compare=2, export=2)),
    ("records-torn-last", _edit("records.jsonl", lambda t: t.rstrip("\n")[:-40]), OK),
    ("records-empty", _write("records.jsonl", b""), OK),
    ("records-symlink-outside", _symlink("records.jsonl", "/etc/passwd"), _only(compare=2, export=2, resume=2)),
    ("records-and-csv-gone", lambda f: (_remove("results.csv")(f), _line("records.jsonl", "42")(f)),
     _only(compare=2, report=2, export=2)),
    # samples.jsonl: read by compare and export
    ("samples-nan", _line("samples.jsonl", '{"point_id": "2fc398762193", "metric": "latency", "samples": [NaN]}'),
     _only(compare=2, export=2)),
    ("samples-text", _line("samples.jsonl", '{"point_id": "2fc398762193", "metric": "latency", "samples": ["x"]}'),
     _only(compare=2, export=2)),
    ("samples-negative", _line("samples.jsonl", '{"point_id": "a", "metric": "latency", "samples": [-1]}'),
     _only(compare=2, export=2)),
    ("samples-42", _line("samples.jsonl", "42"), _only(compare=2, export=2)),
    ("samples-binary", _write("samples.jsonl", b"\xff\xfe\0\x01" * 100), _only(compare=2, export=2)),
    ("samples-not-list", _line("samples.jsonl", '{"point_id": "a", "metric": "latency", "samples": 5}'),
     _only(compare=2, export=2)),
    # artifacts.jsonl: read by report
    ("artifacts-42", _line("artifacts.jsonl", "42"), _only(report=2)),
    ("artifacts-garbage", _line("artifacts.jsonl", "not json at all"), _only(report=2)),
    ("artifacts-no-data", _line("artifacts.jsonl", '{"point_id": "a", "metric": "m", "name": "n"}'), _only(report=2)),
    # meta.json: read by report, export (pytest-benchmark) and resume
    ("meta-null", _write("meta.json", "null"), _only(report=2, export=2, resume=2)),
    ("meta-list", _write("meta.json", "[]"), _only(report=2, export=2, resume=2)),
    ("meta-42", _write("meta.json", "42"), _only(report=2, export=2, resume=2)),
    ("meta-empty", _write("meta.json", b""), _only(report=2, export=2, resume=2)),
    ("meta-binary", _write("meta.json", b"\x89PNG\r\n\x1a\n\0\0"), _only(report=2, export=2, resume=2)),
    ("meta-point_ids-5", _edit("meta.json", lambda t: json.dumps({**json.loads(t), "point_ids": 5})),
     _only(report=2, export=2, resume=2)),
    ("meta-point_ids-numbers", _edit("meta.json", lambda t: json.dumps({**json.loads(t), "point_ids": [1, 2]})),
     _only(report=2, export=2, resume=2)),
    ("meta-environment-text", _edit("meta.json", lambda t: json.dumps({**json.loads(t), "environment": "x"})),
     _only(report=2, export=2, resume=2)),
    ("meta-peak-text", _edit("meta.json", lambda t: json.dumps({**json.loads(t), "device_peak": {"flops_per_s": "x"}})),
     _only(report=2, export=2, resume=2)),
    ("meta-missing", _remove("meta.json"), _only(resume=2)),
    ("meta-symlink-outside", _symlink("meta.json", "/etc/hostname"), _only(report=2, export=2, resume=2)),
    # suite.yaml: read by compare (its compare: rules)
    ("suite-binary", _write("suite.yaml", b"\0\1\2\3\xff"), _only(compare=2)),
    ("suite-bad-rules", _write("suite.yaml", "name: x\ncompare: {latency: {threshold: lots}}\n"), _only(compare=2)),
    # table1.csv: read by report
    ("table1-binary", _write("table1.csv", b"\0" * 64), _only(report=2)),
    # the folder itself
    ("folder-empty", _empty_folder, BAD),
]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file() and not path.is_symlink():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """One damaged copy of the fixture run per case, under corpus/<case>/."""
    root = tmp_path_factory.mktemp("corpus")
    for name, damage, _ in CASES:
        shutil.copytree(FIXTURE, root / name)
        damage(root / name)
    return root


def _invoke(verb: str, folder: Path, scratch: Path) -> tuple[int, str, str, Path | None]:
    """(exit code, stdout, stderr, the path the verb would write) of one reader on ``folder``."""
    runner = CliRunner()
    target: Path | None = None
    if verb == "compare":
        args = ["compare", str(FIXTURE), str(folder)]
    elif verb == "report":
        target = scratch / "report"
        args = ["report", str(folder), "--out", str(target)]
    elif verb == "export":
        target = scratch / "export.json"
        args = ["export", str(folder), "--format", "pytest-benchmark", "-o", str(target)]
    else:
        args = ["run", str(FIXTURE / "suite.yaml"), "--resume", str(folder), "--no-progress", "--no-report"]
    result = runner.invoke(cli, args)
    return result.exit_code, result.stdout, result.stderr, target


@pytest.fixture(autouse=True)
def figures_not_rendered(monkeypatch):
    """A report here draws its figures but does not render them to PNG and SVG (most of its time):
    what is checked is the reading of a folder; tests/test_report.py renders and checks every figure."""
    import matplotlib.pyplot as plt

    from archbench.report import plots

    def save(fig, out: Path, stem: str) -> str:
        plt.close(fig)
        for ext in ("png", "svg"):
            (out / f"{stem}.{ext}").write_bytes(b"")
        return stem

    monkeypatch.setattr(plots, "_save", save)


@pytest.fixture
def no_points(monkeypatch):
    """A resume that runs nothing: what is checked is the reading of the folder, not the measuring."""
    ran: list[int] = []

    def run_points(todo, *args, **kwargs):
        ran.append(len(todo))
        return Summary(points=len(todo))

    monkeypatch.setattr(session, "run_points", run_points)
    return ran


OUTCOMES: Counter = Counter()


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_a_damaged_folder_is_one_line_and_its_exit_code(corpus, tmp_path, no_points, case, verb):
    expected = next(codes for name, _, codes in CASES if name == case)[verb]
    folder = tmp_path / case
    shutil.copytree(corpus / case, folder, symlinks=True)
    before = _digest(folder)
    code, out, err, target = _invoke(verb, folder, tmp_path)
    OUTCOMES[(verb, code)] += 1
    assert "Traceback" not in out + err
    assert code == expected, f"{case} {verb}: exit {code}, expected {expected}\n{out}\n{err}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "\n" not in lines[0]
        assert target is None or not target.exists(), f"{verb} wrote {target} while refusing"
        assert _digest(folder) == before, f"{verb} changed {folder} while refusing"
    else:
        warnings = [line for line in err.splitlines() if line.startswith("warning:")]
        assert len(warnings) <= 1, err  # a damaged or torn record line: one warning
        assert not any(line.startswith("error:") for line in err.splitlines()), err


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


def test_a_resume_runs_again_the_point_of_a_damaged_line(corpus, tmp_path, no_points):
    folder = tmp_path / "f"
    shutil.copytree(corpus / "records-42", folder)
    code, out, err, _ = _invoke("resume", folder, tmp_path)
    assert code == 0, err
    assert err.count("warning:") == 1 and "line 1" in err and "run again" in err
    assert no_points == [1]  # the point whose line was damaged, and only it


def test_compare_of_nan_values_is_its_own_verdict(corpus):
    result = CliRunner().invoke(cli, ["compare", str(FIXTURE), str(corpus / "csv-value-nan")])
    assert result.exit_code == 3 and "CANNOT JUDGE" in result.stdout and "unjudged" in result.stdout


def test_compare_of_two_suites_refuses_to_pass(corpus):
    result = CliRunner().invoke(cli, ["compare", str(FIXTURE), str(corpus / "other-suite"), "--format", "json"])
    doc = json.loads(result.stdout)
    assert result.exit_code == 3 and doc["verdict"] == "CANNOT JUDGE" and doc["exit_code"] == 3
    assert "no point" in doc["cannot_judge"][0]


def test_compare_help_lists_the_exit_codes():
    out = CliRunner().invoke(cli, ["compare", "--help"]).stdout
    assert all(f"  {code}  " in out for code in "0123") and "CANNOT JUDGE" in out


def test_the_clean_fixture_reads_everywhere(tmp_path, no_points):
    shutil.copytree(FIXTURE, tmp_path / "clean")
    for verb in VERBS:
        code, out, err, _ = _invoke(verb, tmp_path / "clean", tmp_path)
        assert code == 0, (verb, out, err)
