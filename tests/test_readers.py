"""Damaged results folders through every reader: compare, report, export, run --resume, history and merge.

Each case damages a copy of tests/fixtures/results_v1 (a real small run) one way. Every verb must
answer with its exit code and, on refusal, one line on stderr naming the damaged folder or file; never
a traceback; and a refusal writes nothing (no report folder, no export file, the resumed folder
unchanged). The tests run in traceback mode (ARCHBENCH_TRACEBACK=1): an exception archbench did not
turn into BadInput propagates and fails the test, instead of passing as the CLI's catch-all exit 2.
history reads the damaged folder beside two clean runs: a damaged run is skipped with one warning
naming it, and the history goes on (exit 0).
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

pytestmark = pytest.mark.heavy(55)  # s of the run on one core: started first (conftest.py)

FIXTURE = Path(__file__).parent / "fixtures" / "results_v1"
VERBS = ("compare", "report", "export", "resume", "history", "merge")


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


def _hib_text_and_slower(folder: Path) -> None:
    """higher_is_better spelt yes/no and every latency 3x slower: a gate that reads bool("no") passes it."""
    import pandas as pd

    frame = pd.read_csv(folder / "results.csv")
    frame["higher_is_better"] = frame.higher_is_better.map({True: "yes", False: "no"})
    frame.loc[frame.metric == "latency", ["value", "median", "ci_low", "ci_high"]] *= 3
    frame.to_csv(folder / "results.csv", index=False)
    (folder / "samples.jsonl").unlink()  # the CIs decide, as in a table without samples


def _meta(update: dict) -> Callable[[Path], None]:
    """meta.json with ``update`` merged in (one level deep into objects)."""
    def edit(text: str) -> str:
        meta = json.loads(text)
        for key, value in update.items():
            meta[key] = {**meta[key], **value} if isinstance(value, dict) and isinstance(meta.get(key), dict) else value
        return json.dumps(meta)
    return _edit("meta.json", edit)


def _artifact(fn: Callable[[dict], None], name: str = "gradient_profile") -> Callable[[Path], None]:
    """Change the first line of artifacts.jsonl named ``name`` with ``fn``."""
    def edit(text: str) -> str:
        lines = text.splitlines()
        at = next(i for i, line in enumerate(lines) if json.loads(line)["name"] == name)
        item = json.loads(lines[at])
        fn(item)
        lines[at] = json.dumps(item)
        return "\n".join(lines) + "\n"
    return _edit("artifacts.jsonl", edit)


def _lock(pid: object) -> Callable[[Path], None]:
    """A lock file of this host whose pid is ``pid``."""
    import socket

    return _write(".lock", json.dumps({"pid": pid, "host": socket.gethostname(), "command": "archbench run x"}))


def _empty_folder(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


OK = dict.fromkeys(VERBS, 0)
BAD = {**dict.fromkeys(VERBS, 2), "history": 0}  # history skips the damaged run and goes on
BAD.pop("merge")


def _only(**codes: int) -> dict[str, int]:
    """Exit 2 from the verbs named (those that read the damaged file), 0 from the others (merge's
    code, where not named, follows from the file damaged: see _MERGE_READS)."""
    out = {**OK, **codes}
    if "merge" not in codes:
        del out["merge"]
    return out


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
    ("csv-is-a-folder", lambda f: ((f / "results.csv").unlink(), (f / "results.csv").mkdir()), dict(BAD)),
    # a symlink planted in a results folder: never read through outside it, never written through
    ("csv-symlink-outside", _symlink("results.csv", "/etc/passwd"), dict(BAD)),
    ("csv-symlink-dangling", _symlink("results.csv", "gone.csv"), dict(BAD)),
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
    # issue 28: typed columns, typed provenance, typed arrays, damaged locks
    ("csv-hib-yes-no-slower", _hib_text_and_slower, _only(compare=2, report=2, export=2)),
    ("csv-hib-numbers", _csv_column("higher_is_better", "1"), _only(compare=2, report=2, export=2)),
    ("csv-hib-empty", _csv_column("higher_is_better", ""), _only(compare=2, report=2, export=2)),
    ("csv-noisy-text", _csv_column("noisy", "maybe"), _only(compare=2, report=2, export=2)),
    ("csv-causal-text", _csv_column("causal", "sometimes"), _only(compare=2, report=2, export=2)),
    ("csv-converged-text", _csv_column("converged", "nearly"), _only(compare=2, report=2, export=2)),
    ("csv-seq_len-fraction", _csv_column("seq_len", "16.5"), _only(compare=2, report=2, export=2)),
    ("csv-batch-negative", _csv_column("batch", "-2"), _only(compare=2, report=2, export=2)),
    ("csv-ci_low-text", _csv_column("ci_low", "low"), _only(compare=2, report=2, export=2)),
    ("csv-calls-text", _csv_column("calls", "many"), _only(compare=2, report=2, export=2)),
    ("csv-unit-html", _csv_column("unit", "<img src=x onerror=alert(1)>"), OK),
    ("csv-arch-html", _csv_column("arch", "<script>alert(1)</script>"), OK),
    ("records-hib-text", _record(lambda r: r["rows"][0].update(higher_is_better="no")), _only(compare=2, export=2)),
    ("meta-git-dirty-text", _meta({"environment": {"git": {"commit": "a" * 40, "dirty": "no"}}}),
     _only(report=2, export=2, resume=2)),
    ("meta-timing-warmup-text", _meta({"timing": {"warmup": "no"}}), _only(report=2, export=2, resume=2)),
    ("meta-gpus-number", _meta({"environment": {"gpus": 5}}), _only(report=2, export=2, resume=2)),
    ("meta-flags-list", _meta({"flags": {"tf32": [1, 2]}}), _only(merge=0)),
    ("meta-device-html", _meta({"device": "<img src=x onerror=alert(1)>"}), _only(report=2, export=2, resume=2)),
    ("artifacts-data-text", _artifact(lambda a: a.update(data="abc")), _only(report=2)),
    ("artifacts-heatmap-ragged", _artifact(lambda a: a.update(data=[[1.0, 2.0], [3.0]]), "heatmap"), _only(report=2)),
    ("artifacts-curve-text", _artifact(lambda a: a["data"].update(step="x"), "curve"), _only(report=2)),
    ("table1-text", _edit("table1.csv", lambda t: t.replace(",1.0,1.0,1.0,", ",x,y,z,", 1)), _only(report=2)),
    ("lock-garbage", _write(".lock", "not json"), _only(resume=2, merge=2)),
    ("lock-pid-huge", _lock(2**70), _only(resume=2, merge=2)),
    ("lock-pid-text", _lock("12"), _only(resume=2, merge=2)),
    ("lock-pid-zero", _lock(0), _only(resume=2, merge=2)),
    ("lock-pid-negative", _lock(-1), _only(resume=2, merge=2)),
    ("lock-folder", lambda f: (f / ".lock").mkdir(), _only(resume=2, merge=2)),
    ("lock-symlink-outside", _symlink(".lock", "/etc/passwd"), _only(resume=2, merge=2)),
    # the folder itself
    ("folder-empty", _empty_folder, {**BAD, "history": 2}),  # a folder given that holds no run
]


# merge reads meta.json, the lock, records.jsonl, samples.jsonl and artifacts.jsonl (not the tables,
# which it writes anew): a damaged one of those is exit 2, anything else merges
_MERGE_READS = ("records-", "samples-", "artifacts-", "meta-", "folder-")
_MERGES_ANYWAY = {"records-torn-last", "records-empty"}
for _name, _, _codes in CASES:
    _codes.setdefault("merge", 2 if _name.startswith(_MERGE_READS) and _name not in _MERGES_ANYWAY else 0)

# the cases whose damage history reads (meta.json, results.csv or the records in its place): skipped
# with one warning naming the folder; every other case reads as a third run
HISTORY_SKIPS = {name for name, _, codes in CASES
                 if name.startswith(("csv-", "meta-")) and 2 in (codes["compare"], codes["report"])
                 } | {"meta-missing", "records-and-csv-gone"}


# the file each family of cases damages, which a refusal must name (a few name the folder instead: the
# file is gone or a folder, or what is wrong is the folder as a whole)
_DAMAGED = {"csv": "results.csv", "records": "records.jsonl", "samples": "samples.jsonl", "artifacts": "artifacts.jsonl",
            "meta": "meta.json", "suite": "suite.yaml", "table1": "table1.csv", "lock": ".lock"}
_NAMES_THE_FOLDER = {"meta-missing", "records-and-csv-gone"}


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


@pytest.fixture(scope="module")
def clean_pair(tmp_path_factory) -> list[Path]:
    """Two clean runs, read by every history beside the damaged one."""
    root = tmp_path_factory.mktemp("clean")
    for name in ("a", "b"):
        shutil.copytree(FIXTURE, root / name)
    return [root / "a", root / "b"]


def _invoke(verb: str, folder: Path, scratch: Path, clean: list[Path] | None = None
            ) -> tuple[int, str, str, Path | None]:
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
    elif verb == "history":
        target = scratch / "history.json"
        if clean is None:
            clean = [scratch / "clean-a", scratch / "clean-b"]
            for path in clean:
                shutil.copytree(FIXTURE, path, dirs_exist_ok=True)
        args = ["history", *map(str, clean), str(folder), "--format", "json", "-o", str(target)]
    elif verb == "merge":
        target = scratch / "merged"
        args = ["merge", str(folder), "--out", str(target)]
    else:
        args = ["run", str(FIXTURE / "suite.yaml"), "--resume", str(folder), "--no-progress", "--no-report"]
    result = runner.invoke(cli, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError(f"{verb} {folder.name}: a traceback, not one line:\n"
                             + "".join(traceback.format_exception(result.exception))) from result.exception
    return result.exit_code, result.stdout, result.stderr, target


@pytest.fixture(autouse=True)
def traceback_mode(monkeypatch):
    """An exception archbench did not turn into BadInput propagates (and fails the test) instead of
    being the CLI's catch-all `error: ... could not read its input` line."""
    monkeypatch.setenv("ARCHBENCH_TRACEBACK", "1")


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
def test_a_damaged_folder_is_one_line_and_its_exit_code(corpus, clean_pair, tmp_path, no_points, case, verb):
    expected = next(codes for name, _, codes in CASES if name == case)[verb]
    folder = tmp_path / case
    shutil.copytree(corpus / case, folder, symlinks=True)
    before = _digest(folder)
    code, out, err, target = _invoke(verb, folder, tmp_path, clean_pair)
    OUTCOMES[(verb, code)] += 1
    assert "Traceback" not in out + err
    assert code == expected, f"{case} {verb}: exit {code}, expected {expected}\n{out}\n{err}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "\n" not in lines[0]
        assert str(folder) in lines[0], f"{case} {verb}: the message names no damaged file: {lines[0]}"
        damaged = _DAMAGED.get(case.split("-")[0])
        if damaged and case not in _NAMES_THE_FOLDER:
            assert damaged in lines[0], f"{case} {verb}: the message does not name {damaged}: {lines[0]}"
        assert target is None or not target.exists(), f"{verb} wrote {target} while refusing"
        assert _digest(folder) == before, f"{verb} changed {folder} while refusing"
    else:
        warnings = [line for line in err.splitlines() if line.startswith("warning:")]
        assert len(warnings) <= 1, err  # a damaged or torn record line: one warning
        assert all(str(folder) in line for line in warnings), f"{case} {verb}: a warning names no file: {err}"
        assert not any(line.startswith("error:") for line in err.splitlines()), err
        if verb == "history":
            assert bool(warnings) == (case in HISTORY_SKIPS), f"{case}: {err}"
            assert len(json.loads(target.read_text())["runs"]) == 2 + (case not in HISTORY_SKIPS)


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 90


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
