"""A run, from a suite to a consolidated results folder: ``archbench run`` without the command line.

    outcome = archbench.run("suites/quick.yaml", out="results", executor="process", workers=2)
    outcome.folder          # results/quick/<stamp>/
    archbench.load_results(outcome.folder)

What a session does around the points themselves: writes ``meta.json`` (provenance, the point ids,
each architecture's Table 1 laws), measures the device's matmul peak once, resumes an earlier folder
(``resume=``: only the points it has not finished), consolidates the tables, and records the end.
Ctrl-C lets the points in flight finish, keeps and consolidates what finished, and raises
:class:`Interrupted` (a KeyboardInterrupt) naming the folder, so a caller can say how to resume.
SIGTERM does the same at once, without waiting for the points in flight (archbench.execute.signals):
``Interrupted.terminated`` is then True.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archbench import registry
from archbench.errors import BadInput
from archbench.execute import executors, footprint
from archbench.execute.group import DTYPES, Settings
from archbench.execute.resume import check_same_points, point_ids_of, remaining
from archbench.execute.run_plan import RunPlan, _stderr
from archbench.execute.schedule import Summary, run_points
from archbench.execute.signals import Terminated, terminated_raises
from archbench.instruments import environment, flags
from archbench.instruments.peak import matmul_peak
from archbench.results.clock import now_iso
from archbench.results.load import latest
from archbench.results.lock import FolderLock
from archbench.results.store import NoSpace, ResultStore
from archbench.suite import MAX_POINTS
from archbench.suite.load import load_suite
from archbench.suite.plan import expand, resolve_device
from archbench.suite.schema import Suite


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run left: its folder (``os.fspath`` works on the outcome too) and its counts."""

    folder: Path
    summary: Summary

    def __fspath__(self) -> str:
        return str(self.folder)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (``terminated``): the points that finished are in ``folder``, consolidated;
    the rest can be resumed."""

    def __init__(self, folder: Path, finished: int, total: int, terminated: bool = False):
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        super().__init__(f"{how}: {finished} of {total} points finished")
        self.folder, self.finished, self.total, self.terminated = folder, finished, total, terminated


def run(
    suite: str | Path | Suite,
    out: str | Path = "results",
    *,
    device: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
    address: str | None = None,
    resume: str | Path | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    max_points: int | None = MAX_POINTS,
    say: Callable[[str], None] = _stderr,
    allow_plugins: bool = False,
    shard: str | tuple[int, int] | None = None,
) -> RunOutcome:
    """Run ``suite`` (a path, or a Suite from ``archbench.load_suite``) into ``out/<suite>/<stamp>/``,
    or finish the earlier run in ``resume``; return its folder and counts.

    ``executor``: serial (this process), process or ray (default: the suite's ``executor:``, else
    serial); ``say`` receives the progress lines (default: stderr); ``allow_plugins``: import the
    suite's ``plugins:`` (Python code; see ``archbench.load_suite``); ``shard``: ``"I/N"`` or (I, N),
    run only the I-th of N slices of the points (archbench.execute.shard; a resumed shard keeps its
    own). BadInput on bad input, before
    anything is written; BadInput naming the holder when another process writes the folder.
    """
    with terminated_raises():
        return _run(suite, out, device, executor, workers, address, resume, retry_failed, progress, max_points,
                    say, allow_plugins, shard)


def _run(suite: str | Path | Suite, out: str | Path, device: str | None, executor: str | None, workers: int | None,
         address: str | None, resume: str | Path | None, retry_failed: bool, progress: bool, max_points: int | None,
         say: Callable[[str], None], allow_plugins: bool, shard: str | tuple[int, int] | None) -> RunOutcome:
    suite_path = str(suite.path or suite.name) if isinstance(suite, Suite) else str(suite)
    if not isinstance(suite, Suite):
        suite = load_suite(suite, max_points=max_points, allow_plugins=allow_plugins)
    elif not suite.text:
        raise BadInput("give a suite file's path, or a Suite from archbench.load_suite (its text is saved "
                       "with the results)")
    if retry_failed and resume is None:
        raise BadInput("--retry-failed runs the failed points of an earlier run again: give it with --resume RESULTS_DIR")
    old_store = ResultStore.open(resume) if resume is not None else None
    old = old_store.read_meta() if old_store else {}
    resolved = resolve_device(device or old.get("device") or suite.device)  # a resumed run keeps its device
    every = expand(suite, source=suite_path, device=resolved)
    points, shard_meta = _shard_of(every, shard, old, suite.timing.interleave, resume)
    plan = RunPlan(suite, suite_path, points, every, device=resolved, executor=executor or suite.executor or "serial",
                   out=out, workers=workers, address=address, resume=resume, retry_failed=retry_failed,
                   progress=progress, shard=shard_meta, old=old, say=say)
    if old_store:
        check_same_points(points, point_ids_of(old, resolved, allow_plugins), str(resume), suite_path)
    return _execute(plan, old_store)


def _execute(plan: RunPlan, old_store: ResultStore | None) -> RunOutcome:
    """``plan`` run into its folder (``old_store`` when resuming), locked while it is written."""
    with executors.make(plan.executor, plan.workers, plan.address) as ex, contextlib.ExitStack() as held:
        ex.check(plan.points)  # the process executor's workers start importing here
        if not plan.resuming:  # before the memory check's ~2 s: the Callgrind process is the run's longest path
            _count_early(plan, plan.points)
        footprint.check_fits(plan.every, plan.suite.timeout)  # an experiment none of whose points fits the memory
        store = old_store or ResultStore.create(plan.out, plan.suite.name)
        held.enter_context(FolderLock(store.folder))  # a second writer of the folder stops here
        try:
            summary = _run_in(store, plan, ex)
        except NoSpace as exc:
            raise BadInput(f"{exc}; the finished points are kept; resume with: "
                           f"archbench run {plan.suite_path} --resume {store.folder}") from None
    return RunOutcome(store.folder, summary)


def _count_early(plan: RunPlan, points: list) -> None:
    """With the serial executor, start the Callgrind process now and ask for the counts of ``points`` at once
    (``execute.callgrind.launch_for``): Valgrind imports torch and counts on the other core while this
    process runs the points before them. Asking again for a point already asked for does nothing."""
    if plan.executor == "serial":
        from archbench.execute.callgrind import launch_for

        launch_for(points, plan.suite.timing.rule())


def update_meta(store: ResultStore, **changes: Any) -> dict[str, Any]:
    """``store``'s meta.json with ``changes`` merged in at its top level, written whole (a temporary file
    renamed into place, ResultStore.write_meta); the new meta."""
    meta = {**(store.read_meta() if (store.folder / "meta.json").is_file() else {}), **changes}
    store.write_meta(meta)
    return meta


def _begin(store: ResultStore, plan: RunPlan) -> tuple[list, Any]:
    """The points still to run and the skips of a resumed run (None for a new one), meta.json begun."""
    suite, say = plan.suite, plan.say
    if not plan.resuming:
        meta = _meta(plan)
        store.start(suite.text, {**meta, "shard": plan.shard} if plan.shard else meta)
        part = f"shard {plan.shard['index']}/{plan.shard['count']}: " if plan.shard else ""
        say(f"{suite.name}: {part}{len(plan.points)} points on {plan.device} ({plan.executor}) -> {store.folder}")
        return plan.points, None
    with _warnings_to(say):
        todo, skips = remaining(plan.points, store.records(), plan.retry_failed)
    sha = hashlib.sha256(suite.text.encode()).hexdigest()
    if sha != plan.old.get("suite_sha256"):
        say(f"note: {plan.suite_path} differs from {plan.resume}/suite.yaml but gives the same points; "
            "the points still to run use its settings (timing:, timeout:, executor:)")
    resumed = {"at": now_iso(), "command": " ".join(sys.argv), "suite_sha256": sha, "executor": plan.executor,
               "points": len(todo), "retry_failed": plan.retry_failed}
    update_meta(store, ended=None, interrupted=None, resumed=[*plan.old.get("resumed", []), resumed])
    say(f"{suite.name}: resuming {store.folder}: {len(plan.points) - len(todo)} of {len(plan.points)} points "
        f"done, {len(todo)} to run on {plan.device} ({plan.executor})")
    return todo, skips


def _run_in(store: ResultStore, plan: RunPlan, ex: Any) -> Summary:
    """The points still to run, run into ``store`` (locked by the caller), and the folder consolidated."""
    suite = plan.suite
    todo, skips = _begin(store, plan)
    try:
        _count_early(plan, todo)  # a resumed run's points still to run (a new run's were asked for already)
        peak = store.read_meta().get("device_peak")
        if peak is None and any("latency" in p.metrics for p in todo):
            peak = matmul_peak(plan.device, DTYPES[suite.dtype], suite.threads)
            update_meta(store, device_peak=peak)
            plan.say(f"device peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['n']}^3 {peak['dtype']} matmul)")
        settings = Settings.of(suite, peak["flops_per_s"] if peak else None)
        summary = run_points(todo, settings, store, suite.name, progress=plan.progress, executor=ex, skips=skips)
    except KeyboardInterrupt as stop:
        frame = store.consolidate()  # what finished is on disk already: make it a table
        terminated = isinstance(stop, Terminated)
        update_meta(store, ended=now_iso(), interrupted=True)
        raise Interrupted(store.folder, frame.point_id.nunique(), len(plan.points), terminated) from None
    store.consolidate()
    statuses = collections.Counter(r["status"] for r in latest(store.records()))
    update_meta(store, ended=now_iso(), interrupted=False, statuses=dict(statuses))
    return summary


def _shard_of(points: list, shard: str | tuple[int, int] | None, old: dict, interleave: bool,
              resume: str | Path | None) -> tuple[list, dict | None]:
    """The shard's points and its ``meta.json`` entry (index, count, the suite's number of points);
    a resumed folder's own shard unless ``shard`` names the same one."""
    from archbench.execute.shard import parse_shard, shard_points

    spec = parse_shard(shard) if isinstance(shard, str) else shard
    if isinstance(shard, tuple):
        parse_shard(f"{shard[0]}/{shard[1]}")
    theirs = old.get("shard")
    if resume is not None and (theirs or spec):
        have = (theirs["index"], theirs["count"]) if theirs else None
        if spec is not None and spec != have:
            was = f"shard {have[0]}/{have[1]}" if have else "not sharded"
            raise BadInput(f"--shard {spec[0]}/{spec[1]}: {resume} was {was}; resume it without --shard")
        spec = have
    if spec is None:
        return points, None
    index, count = spec
    return shard_points(points, interleave, index, count), {"index": index, "count": count, "suite_points": len(points)}


def _meta(plan: RunPlan) -> dict:
    """The provenance of a new run (``meta.json``)."""
    suite, points = plan.suite, plan.points
    return {
        "suite": suite.name, "suite_path": plan.suite_path, "points": len(points), "device": plan.device,
        "dtype": suite.dtype, "threads": suite.threads, "timing": suite.timing.model_dump(),
        "started": now_iso(), "ended": None, "environment": environment.collect(),
        "flags": flags.pinned_snapshot(suite.threads, suite.tf32, suite.cudnn_benchmark),
        "command": " ".join(sys.argv), "device_peak": None,
        "executor": {"name": plan.executor, "workers": plan.workers or 1, "address": plan.address},
        "point_ids": [p.id for p in points],
        # each architecture's laws (Table 1), so that table1.csv can be written without torch
        "theory": {kind: registry.architectures.get(kind).laws()
                   for kind in sorted({p.arch_kind for p in points})
                   if hasattr(registry.architectures.get(kind), "laws")},
    }


@contextlib.contextmanager
def _warnings_to(say: Callable[[str], None]) -> Iterator[None]:
    """Warnings (a record line cut short by a crash) as one ``warning: ...`` line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        say(f"warning: {w.message}")
