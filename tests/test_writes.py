"""Where the readers write, and what a kill leaves (issue 28): report, history, export and merge write
only where asked (a default never outside the working directory or the results tree), never through a
symlink, whole or not at all; and a gate that cannot read a column refuses instead of guessing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from archbench.cli import cli
from archbench.report import plots
from archbench.report.render import default_folder

FIXTURE = Path(__file__).parent / "fixtures" / "results_v1"
ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def traceback_mode(monkeypatch):
    monkeypatch.setenv("ARCHBENCH_TRACEBACK", "1")


@pytest.fixture
def figures_not_rendered(monkeypatch):
    monkeypatch.setattr(plots, "_write", lambda fig, out, stem, formats, dpi: [
        (out / f"{stem}.{e}").write_bytes(b"\x89PNG") for e in formats])


def _invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_the_gate_refuses_a_boolean_column_spelt_yes_no_with_every_latency_slower(tmp_path):
    """The issue's case: bool("no") is True, so a gate that guessed would call a 3x slowdown an improvement."""
    current = tmp_path / "current"
    shutil.copytree(FIXTURE, current)
    frame = pd.read_csv(current / "results.csv")
    frame["higher_is_better"] = frame.higher_is_better.map({True: "yes", False: "no"})
    frame.loc[frame.metric == "latency", ["value", "median", "ci_low", "ci_high"]] *= 3
    frame.to_csv(current / "results.csv", index=False)
    samples = [json.loads(line) for line in (current / "samples.jsonl").read_text().splitlines()]
    (current / "samples.jsonl").write_text("".join(json.dumps({**s, "samples": [3 * v for v in s["samples"]]}) + "\n"
                                                   for s in samples))
    result = _invoke("compare", str(FIXTURE), str(current))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"error: CURRENT {str(current / 'results.csv')!r}: line 2: column "
                                     "'higher_is_better' holds 'no', not True or False")
    frame["higher_is_better"] = frame.higher_is_better.map({"yes": True, "no": False})
    frame.to_csv(current / "results.csv", index=False)
    assert _invoke("compare", str(FIXTURE), str(current)).exit_code == 1  # spelt right: the regression


def test_a_default_report_folder_never_lands_outside_the_working_directory_or_the_results(tmp_path, monkeypatch):
    work, shallow = tmp_path / "work", tmp_path / "run"
    work.mkdir()
    monkeypatch.chdir(work)
    assert default_folder(shallow) == shallow / "report"                                 # not <root>/reports
    assert default_folder(Path("/x")) == Path("/x/report")
    nested = work / "results" / "quick" / "20261207-000000"
    assert default_folder(nested) == work / "reports" / "quick" / "20261207-000000"     # beside the results root


def test_report_and_history_defaults_stay_in_the_results_tree(tmp_path, monkeypatch, figures_not_rendered):
    work, root = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    for name in ("a", "b"):
        shutil.copytree(FIXTURE, root / name)
    monkeypatch.chdir(work)
    result = _invoke("report", str(root / "a"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"report: {root / 'a' / 'report' / 'index.html'}"
    result = _invoke("history", str(root))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"history: {root / 'history' / 'index.html'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "work"] and list(work.iterdir()) == []


@pytest.mark.parametrize("verb", ["report", "history-html", "history-json", "export"])
def test_no_write_follows_a_symlink(verb, tmp_path, figures_not_rendered):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    target = tmp_path / "out"
    if verb in ("history-json", "export"):
        victim = victim / "keep.txt"
    target.symlink_to(victim)
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        shutil.copytree(FIXTURE, run)
    args = {"report": ["report", str(runs[0]), "--out", str(target)],
            "history-html": ["history", *map(str, runs), "--out", str(target)],
            "history-json": ["history", *map(str, runs), "--format", "json", "--out", str(target)],
            "export": ["export", str(runs[0]), "--format", "pytest-benchmark", "-o", str(target)]}[verb]
    result = _invoke(*args)
    assert result.exit_code == 2 and str(target) in result.stderr and "symlink" in result.stderr, result.output
    assert (tmp_path / "victim" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "victim").iterdir()) == ["keep.txt"]


def test_a_report_replaces_its_own_folder_but_never_one_holding_other_files(tmp_path, figures_not_rendered):
    out = tmp_path / "r"
    assert _invoke("report", str(FIXTURE), "--out", str(out)).exit_code == 0
    assert _invoke("report", str(FIXTURE), "--out", str(out)).exit_code == 0  # again: its own files, replaced
    assert (out / "index.html").is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    (out / "notes.txt").write_text("mine")
    result = _invoke("report", str(FIXTURE), "--out", str(out))
    assert result.exit_code == 2 and "'notes.txt', which archbench did not write there" in result.stderr
    assert (out / "notes.txt").read_text() == "mine"


def test_an_export_that_fails_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "export.json"
    out.write_text("old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    result = _invoke("export", str(FIXTURE), "--format", "pytest-benchmark", "-o", str(out))
    assert result.exit_code == 2 and "no space left on device" in result.stderr and str(out) in result.stderr
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]


FULL = """
import os, sys
sys.path.insert(0, {root!r})
from archbench.report import plots
def full(fig, out, stem, formats, dpi):
    if os.getpid() == main:
        raise SystemExit("rendered in the report's own process: no child was forked")
    raise OSError(28, "No space left on device")
main = os.getpid()
plots._write = full
from archbench.cli import cli
cli(["report", {fixture!r}, "--out", sys.argv[1]], prog_name="archbench")
"""


def test_a_full_disk_in_a_child_rendering_a_figure_is_one_line_and_leaves_nothing(tmp_path):
    """In a process of its own (one thread: report/figure_writer.py forks a child per figure), the
    child's OSError comes back as itself and the report's staged folder makes it one line."""
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-c", FULL.format(root=str(ROOT), fixture=str(FIXTURE)), str(out)],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "cannot write the report folder" in lines[0] and "no space left on device" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["same", "inside"])
def test_merge_never_writes_into_its_inputs(where, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    out = run if where == "same" else run / "merged"
    result = _invoke("merge", str(run), "--out", str(out))
    assert result.exit_code == 2 and "one of the folders merged" in result.stderr and str(run) in result.stderr
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in FIXTURE.iterdir())


KILL = """
import os, signal, sys
sys.path.insert(0, {root!r})
from archbench.report import plots
from archbench.results import store
main = os.getpid()  # the run's process, also from a child rendering a figure (report/figure_writer.py)
kill = lambda *a, **k: os.kill(main, signal.SIGKILL)
if sys.argv[1] == "merge":
    store.ResultStore.consolidate = kill
    from archbench.results.merge import merge
    merge([{fixture!r}], sys.argv[2])
else:
    plots._write = kill
    from archbench.report import write_report
    write_report({fixture!r}, out=sys.argv[2])
"""


@pytest.mark.parametrize("verb", ["merge", "report"])
def test_a_killed_merge_or_report_leaves_only_a_folder_named_incomplete(verb, tmp_path):
    out = tmp_path / "out"
    code = KILL.format(root=str(ROOT), fixture=str(FIXTURE))
    done = subprocess.run([sys.executable, "-c", code, verb, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    parent = out / "fixture" if verb == "merge" else tmp_path
    left = [p.name for p in parent.iterdir() if p.name != "out" or verb == "merge"]
    assert len(left) == 1 and left[0].startswith(".") and left[0].endswith(".incomplete"), left
    if verb == "merge":  # and no reader takes it for a run
        result = _invoke("history", str(out))
        assert result.exit_code == 2 and "holds no results folder" in result.stderr


def test_an_unforeseen_error_names_the_paths_it_was_given(tmp_path, monkeypatch):
    monkeypatch.delenv("ARCHBENCH_TRACEBACK")
    from archbench.gate import judge

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(judge, "compare", broken)
    result = CliRunner().invoke(cli, ["compare", str(FIXTURE), str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: compare could not read its input ({str(FIXTURE)!r}, {str(tmp_path)!r}): "
                                    "TypeError: unsupported operand")


def test_history_skips_a_run_whose_column_it_cannot_read_and_goes_on(tmp_path):
    runs = [tmp_path / name for name in ("a", "b", "c")]
    for run in runs:
        shutil.copytree(FIXTURE, run)
    meta = json.loads((runs[2] / "meta.json").read_text())
    meta["environment"]["git"]["dirty"] = "no"
    (runs[2] / "meta.json").write_text(json.dumps(meta))
    result = _invoke("history", *map(str, runs), "--format", "json")
    assert result.exit_code == 0
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert str(runs[2] / "meta.json") in warning and "'environment.git.dirty' is the text 'no'" in warning
    assert len(json.loads(result.stdout)["runs"]) == 2
