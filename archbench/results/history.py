"""Many runs of one suite as a history: each metric of each point over the runs, in commit order,
with its steps (archbench.results.steps).

    history = read_history(["results/ci"])          # a parent of many runs, or the run folders themselves
    for s in history.steps(): print(s.series.label, s.step.ratio, history.runs[s.step.index].commit)

Runs are ordered by their commit's date (``meta.json``: environment.git.date), then by when they
started; a run without a commit date goes by its start. A damaged folder is skipped with a one-line
warning naming it and what is wrong; fewer than two readable runs is BadInput. torch-free.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.errors import BadInput
from archbench.results.check import finite_ok_values, read_meta, timestamp
from archbench.results.load import load_results
from archbench.results.output import is_incomplete
from archbench.results.steps import MIN_CHANGE, PENALTY, Step, detect_steps
from archbench.results.values import plain

MAX_DEPTH = 3  # results/<suite>/<stamp>: how deep below a given folder runs are looked for


@dataclass(frozen=True)
class Run:
    folder: Path
    suite: str
    commit: str | None
    commit_date: datetime | None
    started: datetime | None
    dirty: bool | None
    frame: pd.DataFrame = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        """"1a2b3c4 (dirty)" or the start time where no commit was recorded."""
        if self.commit:
            return self.commit[:7] + ("+" if self.dirty else "")
        return self.started.strftime("%m-%d %H:%M") if self.started else self.folder.name


@dataclass(frozen=True)
class Series:
    point_id: str
    metric: str
    label: str                    # "latency/transformer forward n=256 b=4"
    group: str                    # the figure it is drawn in: "latency · latency · forward"
    unit: str
    higher_is_better: bool
    values: tuple[float | None, ...]  # one per run; None where the run has no ok value
    half_widths: tuple[float | None, ...]

    def steps(self, penalty: float = PENALTY, min_change: float = MIN_CHANGE) -> list[Step]:
        """Steps over the runs that measured this point, indexed by run (gaps skipped)."""
        present = [i for i, v in enumerate(self.values) if v is not None]
        found = detect_steps([self.values[i] for i in present],  # type: ignore[misc]
                             [self.half_widths[i] for i in present], penalty, min_change)  # type: ignore[misc]
        return [Step(present[s.index], s.before, s.after, s.noise) for s in found]


@dataclass(frozen=True)
class Found:
    series: Series
    step: Step

    @property
    def regression(self) -> bool:
        return self.step.is_regression(self.series.higher_is_better)


@dataclass
class History:
    runs: list[Run]
    series: list[Series]
    skipped: list[str]

    @property
    def suite(self) -> str:
        return self.runs[0].suite

    def steps(self, penalty: float = PENALTY, min_change: float = MIN_CHANGE) -> list[Found]:
        """Every step of every series, the largest relative change first."""
        found = [Found(s, step) for s in self.series for step in s.steps(penalty, min_change)]
        return sorted(found, key=lambda f: -abs(math.log(f.step.ratio)) if 0 < f.step.ratio < math.inf else -math.inf)


def run_folders(paths: Sequence[str | Path]) -> list[Path]:
    """The results folders (those holding meta.json, results.csv or records.jsonl) given, or below the
    folders given (up to MAX_DEPTH levels); BadInput for a path that does not exist or holds none."""
    out: list[Path] = []
    for given in map(Path, paths):
        if not given.is_dir():
            raise BadInput(f"RESULTS_DIR {str(given)!r} is not a folder; give results folders or a folder holding them")
        found = [given] if _is_run(given) else sorted(
            {p.parent for depth in range(1, MAX_DEPTH + 1) for name in ("meta.json", "results.csv", "records.jsonl")
             for p in given.glob("/".join(["*"] * depth + [name])) if not is_incomplete(p.parent)})
        if not found:
            raise BadInput(f"RESULTS_DIR {str(given)!r} holds no results folder (one with meta.json, results.csv or "
                           f"records.jsonl) within {MAX_DEPTH} levels")
        out += [f for f in found if f not in out]
    return out


def _is_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("meta.json", "results.csv", "records.jsonl"))


def read_run(folder: Path) -> Run:
    """One run for a history; BadInput (one line) when its files are damaged or it has no provenance."""
    meta: dict[str, Any] = read_meta(folder, required=True)
    frame = load_results(folder)
    if frame.empty:
        raise BadInput(f"{str(folder)!r}: holds no results")
    finite_ok_values(frame, folder / "results.csv")
    missing = [c for c in ("experiment", "arch", "metric", "value", "status", "higher_is_better") if c not in frame]
    if missing:
        raise BadInput(f"{str(folder)!r}: its results have no column {missing[0]!r}")
    git = (meta.get("environment") or {}).get("git") or {}
    suite = meta.get("suite") or (str(frame.suite.dropna().iloc[0]) if "suite" in frame and frame.suite.notna().any()
                                  else folder.parent.name)
    return Run(folder, str(suite), git.get("commit"), timestamp(git["date"]) if git.get("date") else None,
               timestamp(meta["started"]) if meta.get("started") else None, git.get("dirty"), frame)


def read_history(paths: Sequence[str | Path]) -> History:
    """The runs under ``paths`` in commit order and their series; damaged folders skipped with a warning."""
    runs: list[Run] = []
    skipped: list[str] = []
    for folder in run_folders(paths):
        try:
            runs.append(read_run(folder))
        except BadInput as exc:
            skipped.append(str(exc))
            warnings.warn(f"skipped {str(folder)!r}: {exc}", stacklevel=2)
    suites = sorted({r.suite for r in runs})
    if len(suites) > 1:
        counts = ", ".join(f"{s} ({sum(r.suite == s for r in runs)} runs)" for s in suites)
        raise BadInput(f"the folders hold runs of {len(suites)} suites: {counts}; a history is of one suite: "
                       "give the folder of one (results/<suite>)")
    if len(runs) < 2:
        raise BadInput(f"a history needs at least 2 readable runs; found {len(runs)}"
                       + (f" ({len(skipped)} skipped as damaged)" if skipped else ""))
    far = datetime.max.replace(tzinfo=timezone.utc)  # a run with no date at all goes last
    runs.sort(key=lambda r: (r.commit_date or r.started or far, r.started or far, str(r.folder)))
    return History(runs, list(_series(runs)), skipped)


def _series(runs: list[Run]) -> Iterable[Series]:
    """One series per (point, metric) that any run measured, in a stable order."""
    keyed: dict[tuple[str, str], dict[int, tuple[float | None, float | None]]] = {}
    about: dict[tuple[str, str], dict[str, Any]] = {}
    for i, run in enumerate(runs):
        f = run.frame
        for row in f.to_dict("records"):
            key = (str(row["point_id"]), str(row["metric"]))
            about.setdefault(key, row)
            value = plain(row.get("value")) if row.get("status") == "ok" else None
            lo, hi = plain(row.get("ci_low")), plain(row.get("ci_high"))
            half = (hi - lo) / 2 if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else None
            keyed.setdefault(key, {})[i] = (value if isinstance(value, (int, float)) else None, half)
    for key in sorted(keyed, key=lambda k: _order(about[k])):
        row = about[key]
        by_run = keyed[key]
        values = tuple(by_run.get(i, (None, None))[0] for i in range(len(runs)))
        if sum(v is not None for v in values) < 2:
            continue
        pass_ = plain(row.get("pass"))
        where = " ".join(f"{k}={plain(row.get(c))}" for k, c in (("n", "seq_len"), ("b", "batch"))
                         if plain(row.get(c)) is not None)
        seed = plain(row.get("seed"))
        label = f"{row['arch']}" + (f" {pass_}" if pass_ else "") + f" {where}" + (f" seed={seed}" if seed else "")
        yield Series(key[0], key[1], label.strip(), f"{row['metric']} · {row['experiment']}" + (f" · {pass_}" if pass_ else ""),
                     str(plain(row.get("unit")) or ""), row["higher_is_better"], values,
                     tuple(by_run.get(i, (None, None))[1] for i in range(len(runs))))


def _order(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(plain(row.get(c))) for c in ("metric", "experiment", "pass", "arch")) + (
        f"{plain(row.get('seq_len')) or 0:>12}", f"{plain(row.get('batch')) or 0:>12}", str(plain(row.get("seed"))))
