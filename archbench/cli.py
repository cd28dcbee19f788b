"""The command line, one verb each: run, plan, ls, env, report, compare, export, history, merge.

    archbench run suites/quick.yaml        # measure, write results/<suite>/<stamp>/
    archbench plan suites/quick.yaml       # the points it would run
    archbench ls                           # architectures, tasks, metrics and their parameters
    archbench env                          # this machine, paste-able
    archbench report RESULTS_DIR           # the report of a results folder, drawn again
    archbench compare BASELINE CURRENT     # the regression gate: exit 1 on a regression
    archbench export RESULTS --format pytest-benchmark   # or github-action-benchmark
    archbench history results/ci           # each metric over many runs, with its steps
    archbench merge DIR... --out OUT       # join the folders of a suite's shards (run --shard I/N)

    archbench run SUITE --executor ray --workers 4    # points in parallel (serial | process | ray)
    archbench run SUITE --resume RESULTS_DIR          # finish a run that stopped part-way

Bad input exits with code 2 and one line on stderr, before anything is written. A run that
completes exits 0 whatever its points' statuses; one interrupted (Ctrl-C) lets the points in flight
finish, keeps and consolidates the points it finished, prints the command that resumes it and exits 130;
SIGTERM does the same without waiting for the points in flight and exits 143.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from archbench.errors import BadInput
from archbench.suite import MAX_POINTS

# Paths are checked by archbench itself, so that a bad one is one line (click's checks print usage).
SUITE = click.Path(path_type=Path)
PLUGINS = click.option("--allow-plugins/--no-allow-plugins", default=False, show_default=True,
                       help="Import the Python modules the suite's plugins: names (entry points of installed "
                            "packages need no flag).")
YES = click.option("--yes", "-y", is_flag=True, default=False,
                   help=f"Go ahead with a suite of more than {MAX_POINTS:,} points.")


READERS = ("compare", "report", "export", "history", "merge")  # verbs that read results folders (merge writes a new one)


class Group(click.Group):
    """Turn BadInput and click's usage errors anywhere below into `error: ...` and exit code 2.

    A reader of results (compare, report, export, history, merge) never ends in a traceback: an error
    archbench did not foresee is one line too, naming the paths it was given, exit 2 (never 1, which
    compare keeps for a regression); ARCHBENCH_TRACEBACK=1 shows the traceback instead (the tests of
    the readers run with it, so that such a case fails them).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.ClickException as exc:  # a usage error before any command ran
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["archbench.words"] = list(args)  # the command line below the group, for the catch-all line
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        words = ctx.meta.get("archbench.words", [])
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warning_line
                return super().invoke(ctx)
        except BadInput as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            ctx.exit(2)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"error: {_one_line(exc.format_message())}{where}", err=True)
            ctx.exit(2)
        except (click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if ctx.invoked_subcommand not in READERS or os.environ.get("ARCHBENCH_TRACEBACK"):
                raise
            inputs = ", ".join(repr(w) for w in words[1:] if not w.startswith("-") and Path(w).exists())
            click.echo(f"error: {ctx.invoked_subcommand} could not read its input ({inputs or 'no path given'}): "
                       f"{type(exc).__name__}: {_one_line(str(exc))} (a case archbench does not check yet; "
                       "ARCHBENCH_TRACEBACK=1 shows where)", err=True)
            ctx.exit(2)


def _warning_line(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """A warning as one line on stderr (not Python's two, with the source line)."""
    click.echo(f"warning: {_one_line(str(message))}", err=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="archbench")
def cli() -> None:
    """Benchmark and compare sequence architectures: LSTM, dilated CNN, Transformer."""


@cli.command()
@click.argument("suite_path", metavar="SUITE", type=SUITE)
@click.option("--out", "out", default="results", show_default=True, type=click.Path(path_type=Path),
              help="Root folder; the run goes to OUT/<suite>/<timestamp>/ and nowhere else.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Override the suite's device.")
@click.option("--executor", "executor_name", type=click.Choice(["serial", "process", "ray"]), default=None,
              help="Where points run: this process, a fresh process per group, or a Ray cluster "
                   "[default: the suite's executor:, else serial].")
@click.option("--workers", type=int, default=None, help="Groups run at once by process or ray [default: 1].")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="With --executor ray: join the Ray cluster there; 'local': start a local one at once "
                   "[default: a local one, started only when the points are worth it].")
@click.option("--resume", "resume", default=None, type=click.Path(path_type=Path), metavar="RESULTS_DIR",
              help="Append to RESULTS_DIR, an earlier run of SUITE, running only the points it has not "
                   "finished (--out is not used).")
@click.option("--retry-failed/--no-retry-failed", default=False, show_default=True,
              help="With --resume: run again the points that ended error, timeout, oom or diverged.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
@click.option("--report/--no-report", default=True, show_default=True, help="Write the report when the run ends.")
@click.option("--reports", "reports", default=None, type=click.Path(path_type=Path),
              help="Root folder of reports, REPORTS/<suite>/<timestamp>/ [default: 'reports' beside OUT where "
                   "that is in the working directory, else the run folder's report/].")
@click.option("--shard", "shard", default=None, metavar="I/N",
              help="Run only the I-th of N deterministic slices of the points (a CI matrix job); "
                   "join the folders with archbench merge.")
@PLUGINS
@YES
def run(suite_path: Path, out: Path, device: str | None, executor_name: str | None, workers: int | None,
        address: str | None, resume: Path | None, retry_failed: bool, progress: bool, report: bool,
        reports: Path | None, shard: str | None, allow_plugins: bool, yes: bool) -> None:
    """Run SUITE and write its results folder (or, with --resume, finish an earlier one)."""
    from archbench.execute.session import Interrupted
    from archbench.execute.session import run as run_suite
    from archbench.execute.signals import EXIT_CODE, Terminated

    try:
        outcome = run_suite(suite_path, out, device=device, executor=executor_name, workers=workers,
                            address=address, resume=resume, retry_failed=retry_failed, progress=progress,
                            max_points=None if yes else MAX_POINTS, say=lambda line: click.echo(line, err=True),
                            allow_plugins=allow_plugins, shard=shard)
    except Interrupted as stop:
        click.echo(str(stop), err=True)
        click.echo(f"resume with: {_resume_command(suite_path, stop.folder, executor_name, workers, address)}",
                   err=True)
        click.echo(f"results: {stop.folder}")
        click.get_current_context().exit(EXIT_CODE if stop.terminated else 130)
    except Terminated:  # before any point ran: nothing to keep
        click.echo("terminated (SIGTERM) before any point ran", err=True)
        click.get_current_context().exit(EXIT_CODE)
    _print_tables(outcome.folder)
    click.echo(f"{outcome.summary.line()}")
    click.echo(f"results: {outcome.folder}")
    if report:
        from archbench.report import write_report

        click.echo(f"report: {write_report(outcome.folder, reports_root=reports) / 'index.html'}")


def _resume_command(suite_path: Path, folder: Path, executor: str | None, workers: int | None,
                    address: str | None) -> str:
    import shlex

    words = ["archbench", "run", str(suite_path), "--resume", str(folder)]
    for flag, value in (("--executor", executor), ("--workers", workers), ("--address", address)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


def _emit(text: str, path: Path | None, option: str) -> None:
    """``text`` to stdout, or to ``path`` (given as ``option``) with a line on stderr saying so."""
    if path is None:
        click.echo(text, nl=False)
        return
    from archbench.results.output import write_file

    write_file(path, text, option)  # through a temporary file renamed into place; never through a symlink
    click.echo(f"wrote {path}", err=True)


def _print_tables(folder: Path) -> None:
    """Table 1, measured, when the run has graph rows at three lengths or more."""
    import pandas as pd

    from archbench.results.table1 import format_table1

    table = pd.read_csv(folder / "table1.csv")
    if not table.empty:
        click.echo(format_table1(table))
    from archbench.results.table1_generation import print_table1_generation

    print_table1_generation(folder, click.echo)
    from archbench.results.accuracy import unconverged_lines
    from archbench.results.load import load_results

    lines = unconverged_lines(load_results(folder))
    if lines:
        click.echo(f"{len(lines)} trained point{'s' if len(lines) > 1 else ''} did not converge:")
        for line in lines:
            click.echo(f"  {line}")


@cli.command("report")
@click.argument("results_dir", metavar="RESULTS_DIR", type=click.Path(path_type=Path))
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="Folder to write the report to (default: reports/<suite>/<timestamp>/ beside the results root "
                   "where that is in the working directory, else report/ in RESULTS_DIR).")
def report_command(results_dir: Path, out: Path | None) -> None:
    """Write the report of a results folder again, from its files alone (no torch, no re-running)."""
    from archbench.report import write_report

    folder = write_report(results_dir, out=out)
    click.echo(f"report: {folder / 'index.html'}")


@cli.command()
@click.argument("suite_path", metavar="SUITE", type=SUITE)
@PLUGINS
@YES
def plan(suite_path: Path, allow_plugins: bool, yes: bool) -> None:
    """List the points SUITE would run, without running them."""
    from archbench.suite.load import load_suite
    from archbench.suite.plan import expand

    suite = load_suite(suite_path, max_points=None if yes else MAX_POINTS, allow_plugins=allow_plugins)
    points = expand(suite, source=str(suite_path))
    click.echo(f"{'id':12}  {'experiment':14} {'arch':12} {'seq_len':>7} {'batch':>5} {'pass':10} {'seed':>4}  params")
    for p in points:
        params = " ".join(f"{k}={v}" for k, v in p.arch_params)
        click.echo(f"{p.id:12}  {p.experiment:14} {p.arch:12} {p.seq_len:>7} {p.batch:>5} {p.pass_:10} {p.seed:>4}  {params}")
    click.echo(f"{len(points)} points, metrics per point: {', '.join(sorted({m for p in points for m in p.metrics}))}")


@cli.command("ls")
def list_registered() -> None:
    """Architectures, tasks and metrics, with their parameters and defaults."""
    from archbench import registry
    from archbench.instruments.passes import PASSES

    for reg in (registry.architectures, registry.tasks):
        click.echo(f"{reg.kind}s:")
        for entry in reg:
            doc = (entry.obj.__doc__ or "").strip().splitlines()[0] if entry.obj.__doc__ else ""
            where = entry.source if entry.plugin is None else f"{entry.source}; plugin: {entry.plugin}"
            click.echo(f"  {entry.name:14} {doc}  [{where}]")
            for p in reg.parameters(entry.name):
                default = "required" if p["required"] else f"default {p['default']!r}"
                constraint = f" ({p['constraints']})" if p["constraints"] else ""
                click.echo(f"      {p['name']:14} {p['type']:10} {default}{constraint}")
    click.echo("metrics:")
    for entry in registry.metrics:
        m = entry.obj
        direction = "higher is better" if m.higher_is_better else "lower is better"
        only = f" (tasks: {', '.join(m.tasks)})" if m.tasks is not None else ""
        click.echo(f"  {entry.name:14} [{m.unit}, {direction}] {m.description}{only}")
    click.echo(f"passes: {', '.join(PASSES)}")


@cli.command()
def env() -> None:
    """Describe this machine (versions, CPU, threads, flags, NVIDIA GPUs)."""
    from archbench.instruments import environment

    click.echo(environment.describe(environment.collect()))


@cli.command("compare")
@click.argument("baseline", metavar="BASELINE", type=click.Path(path_type=Path))
@click.argument("current", metavar="CURRENT", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="table", show_default=True, help="table, json or markdown.")
@click.option("--threshold", multiple=True, metavar="[METRIC=]X",
              help="Relative change that counts (0.1 = 10 %), for one metric or all; repeatable.")
@click.option("--alpha", multiple=True, metavar="[METRIC=]X",
              help="Level of the Mann-Whitney U test of timed metrics (default 0.01); repeatable.")
@click.option("--floor", multiple=True, metavar="[METRIC=]X",
              help="Absolute change that counts, in the metric's unit (latency: 1e-6 s); repeatable.")
@click.option("--show-unchanged/--hide-unchanged", default=False, show_default=True,
              help="List the unchanged rows too (json always has them).")
def compare_command(baseline: Path, current: Path, fmt: str, threshold: tuple[str, ...], alpha: tuple[str, ...],
                    floor: tuple[str, ...], show_unchanged: bool) -> None:
    """Gate CURRENT against BASELINE (results folders, or their results.csv / records.jsonl).

    \b
    Exit codes:
      0  PASS: every matched point judged, nothing regressed or failed
      1  FAIL: a metric regressed, or a point that was ok failed (only this)
      2  bad input: a missing or damaged file (one line names it), or a bad option
      3  CANNOT JUDGE: no point matched, or an ok value is not finite
    """
    from archbench.gate.judge import compare
    from archbench.gate.render import render

    if fmt not in ("table", "json", "markdown"):
        raise BadInput(f"--format {fmt!r} is not a format; allowed: table, json, markdown")
    result = compare(baseline, current, threshold=threshold, alpha=alpha, floor=floor)
    click.echo(render(result, fmt, show_unchanged))
    click.get_current_context().exit(result.exit_code)


@cli.command("export")
@click.argument("results_dir", metavar="RESULTS", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, help="pytest-benchmark or github-action-benchmark.")
@click.option("--direction", default="smaller", show_default=True,
              help="github-action-benchmark: the rows where smaller (or bigger) is better, one tool per file.")
@click.option("--metric", "metrics", multiple=True, help="Only these metrics; repeatable.")
@click.option("--output", "-o", "output", default=None, type=click.Path(path_type=Path),
              help="Write here instead of stdout.")
def export_command(results_dir: Path, fmt: str, direction: str, metrics: tuple[str, ...], output: Path | None) -> None:
    """Write RESULTS as JSON that pytest-benchmark compare or github-action-benchmark reads."""
    from archbench.report.export import export

    _emit(export(results_dir, fmt, direction, metrics), output, "--output")


# --- history: many runs of one suite over commits (self-contained block) ---
@cli.command("history")
@click.argument("results_dirs", metavar="RESULTS_DIR...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default="html", show_default=True,
              help="html: a page with a figure per metric and the steps; json: the same numbers.")
@click.option("--out", "-o", "out", default=None, type=click.Path(path_type=Path),
              help="html: the folder to write (default: reports/<suite>/history beside the results root where "
                   "that is in the working directory, else history/ in the first RESULTS_DIR); "
                   "json: the file (default: stdout).")
@click.option("--penalty", default=None, type=float, help="Noise-widths a new level must explain [default: 4].")
@click.option("--min-change", default=None, type=float, help="Smallest relative step reported [default: 0.05].")
def history_command(results_dirs: tuple[Path, ...], fmt: str, out: Path | None, penalty: float | None,
                    min_change: float | None) -> None:
    """Each metric of each point over many runs of one suite, in commit order, and its steps.

    RESULTS_DIR: run folders, or folders holding them (results/<suite>). A damaged run is skipped
    with a warning; the steps are level shifts beyond the run-to-run noise (likely regressions or
    improvements), each with the commit where it began.
    """
    from archbench.report.history_page import history_json, write_history
    from archbench.results.steps import MIN_CHANGE, PENALTY

    for name, value in (("--penalty", penalty), ("--min-change", min_change)):
        if value is not None and not (value >= 0 and value == value and value != float("inf")):
            raise BadInput(f"{name} {value!r} is not a finite number of at least 0")
    knobs = {"penalty": PENALTY if penalty is None else penalty,
             "min_change": MIN_CHANGE if min_change is None else min_change}
    if fmt == "json":
        _emit(history_json(results_dirs, **knobs), out, "--out")
        return
    if out is None:
        from archbench.report.render import default_history_folder
        from archbench.results.history import run_folders

        out = default_history_folder(run_folders(results_dirs)[0], results_dirs[0])
    click.echo(f"history: {write_history(results_dirs, out, **knobs)}")


@cli.command("merge")
@click.argument("folders", metavar="DIR...", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "out", default="results", show_default=True, type=click.Path(path_type=Path),
              help="Root folder; the merged run goes to OUT/<suite>/<timestamp>/.")
def merge_command(folders: tuple[Path, ...], out: Path) -> None:
    """Join the results folders of one suite's shards (archbench run --shard I/N) into one results
    folder, which reports and compares as one run."""
    from archbench.results.merge import merge

    folder = merge(folders, out)
    click.echo(f"merged {len(folders)} folder{'s' if len(folders) != 1 else ''}")
    click.echo(f"results: {folder}")


def main() -> None:
    cli(prog_name="archbench")


if __name__ == "__main__":
    main()
