"""The harness's own speed, the four figures of issue 32, in one command, so that a change can be held
against them. Run it alone on a quiet machine: each figure is a wall time.

    python benchmarks/harness_speed.py                      # all four figures, one run each
    python benchmarks/harness_speed.py --figure ci          # one figure: ci | sweep | quick | tests
    python benchmarks/harness_speed.py --figure sweep --repeat 3 --json speed.json

- **ci**: ``archbench run suites/ci.yaml`` with Valgrind (instruction counts) and without
  (``ARCHBENCH_NO_VALGRIND=1``: the ``instructions`` rows are ``skipped``); target <= 120 s with it.
- **sweep**: ``benchmarks/executor_speed.yaml`` (16 trained points of a few seconds) serial, process and
  ray, ``--workers 2``; the speed-up of each over serial (target >= 1.8x for process; for ray on 2 cores
  not below serial, at most about 1.5x by its CPU s: docs/execution.md).
- **quick**: ``archbench run suites/quick.yaml``, report included: wall and CPU time (target <= 60 s) and
  the median, over its latency points, of the relative half-width of the median's 95 % CI
  (``Measurement.rel_ci``: the farther end from the median; target <= the suite's ``target``), how many
  met it (within it and not stopped by ``max_time``), and a line per point that missed it with its
  reason from its own samples (benchmarks/timing_target.py: samples, noise, stopped at max_time, the
  samples and seconds it would need); ``--repeat 5`` adds the spread between runs and the points that
  missed in every run, ``--clock thread_cpu`` times with the thread's CPU clock (a quiet machine's
  figure on a busy one).
- **tests**: ``python -m pytest -q`` (target <= 300 s).

Every run goes to a temporary folder; nothing is left behind. Prints one table at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import timing_target

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("ci", "sweep", "quick", "tests")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _env(**extra: str) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep + path if path else ''}", **extra}


def _timed(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall s, exit code, last line of stderr) of a command run from the repository root."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return time.perf_counter() - t0, proc.returncode, lines[-1][:160] if lines else ""


def _run_suite(suite: str, out: str, env: dict[str, str], *extra: str) -> tuple[float, int, str]:
    return _timed([sys.executable, "-m", "archbench", "run", suite, "--out", out, "--no-report", "--no-progress",
                   *extra], env)


def ci(repeat: int) -> list[dict]:
    rows = []
    for label, env in (("ci suite, with Valgrind", _env()), ("ci suite, without Valgrind", _env(ARCHBENCH_NO_VALGRIND="1"))):
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                before = _load()
                wall, rc, last = _run_suite("suites/ci.yaml", tmp, env)
            rows.append({"figure": label, "wall_s": wall, "rc": rc, "target": "<= 120 s" if "with " in label else "~60 s",
                         "load": f"{before} -> {_load()}", "note": last})
    return rows


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sweep(repeat: int, workers: int) -> list[dict]:
    """Each executor's wall s, and CPU s of the run and the processes it reaped (its workers; Ray's
    processes only in part): on a loaded machine the CPU s are the figure to compare."""
    rows = []
    for _ in range(repeat):
        serial = None
        for name in ("serial", "process", "ray"):
            extra = [] if name == "serial" else ["--executor", name, "--workers", str(workers)]
            with tempfile.TemporaryDirectory() as tmp:
                before, cpu = _load(), _children_cpu()
                wall, rc, last = _run_suite("benchmarks/executor_speed.yaml", tmp, _env(), *extra)
                cpu = _children_cpu() - cpu
            serial = wall if name == "serial" else serial
            speedup = f"{serial / wall:.2f}x" if serial else "-"
            rows.append({"figure": f"16-point sweep, {name}" + (f" x{workers}" if extra else ""), "wall_s": wall, "rc": rc,
                         # ray on 2 cores: at most about 1.5x by its CPU s (docs/execution.md), 1.8x out of reach
                         "target": {"process": ">= 1.8x", "ray": ">= 1.0x (<= 1.5x on 2 cores)"}.get(name, ""),
                         "load": f"{before} -> {_load()}",
                         "note": (f"speed-up {speedup}" if extra else last) + f"; {cpu:.1f} CPU s"})
    return rows


def quick(repeat: int, clock: str = "suite") -> list[dict]:
    """``archbench run suites/quick.yaml``, its report included (the 60 s is the whole command's): wall and
    CPU seconds (user + sys of the command), and the latency points' CI figure of each run; with
    ``repeat`` > 1 a last row over the runs. ``clock`` other than "suite" runs a copy of the suite with
    ``timing.clock`` set to it (``thread_cpu``: the figure of a quiet machine, measured on a busy one)."""
    import pandas as pd

    rows, figures = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            suite = _quick_suite(tmp, clock)
            before, cpu0 = _load(), _children_cpu()
            wall, rc, last = _timed([sys.executable, "-m", "archbench", "run", suite, "--out", tmp, "--no-progress",
                                     "--reports", str(Path(tmp) / "reports")], _env())
            cpu = _children_cpu() - cpu0
            found = list(Path(tmp).glob("quick/*/results.csv"))
            note, details = last, []
            if found:
                figures.append({**ci_figure(pd.read_csv(found[0])), "missed": timing_target.missed(found[0].parent)[0]})
                note = ci_summary(figures[-1])
                details = [f"  {r['arch']} n={r['seq_len']} {r['pass']}: rel CI {r['need'].rel_ci:.1%}; {r['why']}"
                           for r in figures[-1]["missed"]]
        rows.append({"figure": f"quick suite ({clock} clock)", "wall_s": wall, "rc": rc,
                     "target": "<= 60 s, median rel CI <= 2 %", "load": f"{before} -> {_load()}",
                     "note": f"CPU {cpu:.1f} s; {note}", "details": details})
    if len(figures) > 1:
        rows.append({"figure": f"quick suite, {len(figures)} runs", "wall_s": sum(r["wall_s"] for r in rows) / len(rows),
                     "rc": max(r["rc"] for r in rows), "target": "", "load": "", "note": ci_over_runs(figures),
                     "details": missed_in_every_run(figures)})
    return rows


def _quick_suite(tmp: str, clock: str) -> str:
    """suites/quick.yaml, or a copy of it in ``tmp`` with ``timing.clock: clock``."""
    if clock == "suite":
        return "suites/quick.yaml"
    import yaml

    spec = yaml.safe_load((ROOT / "suites" / "quick.yaml").read_text())
    spec["timing"]["clock"] = clock
    path = Path(tmp) / "quick.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def ci_figure(df, target: float = 0.02) -> dict:
    """Per latency point: the relative half-width of the median's CI (the farther end, as the stop rule
    reads it), n, noisy, and whether it met ``target``: within it and not stopped by ``max_time`` (below
    6 samples the interval is the samples' range, 0 wide for one sample, and says nothing)."""
    lat = df[(df.metric == "latency") & (df.status == "ok")]
    rel = (lat["ci_high"] - lat["median"]).abs().combine((lat["median"] - lat["ci_low"]).abs(), max) / lat["median"]
    noisy = lat.noisy.astype(str).str.lower().eq("true")
    table = lat.assign(rel=rel, noisy=noisy, met=(rel <= target) & ~noisy)
    return {"table": table, "target": target}


def ci_summary(figure: dict) -> str:
    """The median rel CI, how many met the target, how many had fewer than 9 samples, why the others
    missed (benchmarks/timing_target.py: noise, a sample too long for max_time), the worst three."""
    t, target = figure["table"], figure["target"]
    missed = t[~t.met].sort_values("rel", ascending=False)
    worst = ", ".join(f"{r.arch} n={r.seq_len} {r['pass']} {r.rel:.1%} ({int(r.n)} samples"
                      f"{': the whole range' if r.n < 9 else ''})" for _, r in missed.head(3).iterrows())
    causes = Counter(r["need"].cause for r in figure.get("missed", []))
    why = ", ".join(f"{cause} {count}" for cause, count in causes.most_common())
    return (f"median rel CI {t.rel.median():.2%} over {len(t)} latency points; {int(t.met.sum())} met {target:.0%}; "
            f"{int(t.noisy.sum())} noisy; {int((t.n < 9).sum())} with n < 9; missed: {why or '-'}; worst: {worst or '-'}")



def _needs(needs: list[timing_target.Need]) -> str:
    """What a point that missed in every run would need: the median over the runs, or, where every run
    got one sample (no spread to scale from), the fewest samples whose interval is not their range."""
    import numpy as np

    seconds = [x.needed_s for x in needs if x.needed_s is not None]
    if seconds:
        return f"{np.median(seconds):.3g} s of sampling"
    if all(x.samples < 2 for x in needs):
        block = float(np.median([x.block_s for x in needs]))
        return f"at least {timing_target.RANGE_BELOW} samples, {timing_target.RANGE_BELOW * block:.3g} s"
    return "more than 10^7 samples"


def missed_in_every_run(figures: list[dict]) -> list[str]:
    """A line per point that missed the target in every run: over the runs, the median of its samples, its
    noise and what it would need (benchmarks/timing_target.py), how often max_time stopped it, its causes."""
    import numpy as np

    runs: dict[tuple, list] = {}
    for f in figures:
        for r in f["missed"]:
            runs.setdefault((r["arch"], r["seq_len"], r["pass"]), []).append(r["need"])
    lines = []
    for (arch, n, pass_), needs in sorted(runs.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        if len(needs) < len(figures):
            continue
        noise = [x.noise for x in needs if np.isfinite(x.noise)]  # NaN: one sample
        causes = Counter(x.cause for x in needs).most_common()
        lines.append(f"  {arch} n={n} {pass_}: missed in all {len(needs)} runs; median {np.median([x.samples for x in needs]):.0f} "
                     f"samples of {np.median([x.block_s for x in needs]) * 1e3:.3g} ms, rel CI "
                     f"{np.median([x.rel_ci for x in needs]):.1%}, noise {f'{np.median(noise):.1%}' if noise else '-'}, "
                     f"stopped at max_time in {sum(x.stopped_at_max_time for x in needs)}; needs "
                     f"{_needs(needs)} (median); "
                     + ", ".join(f"{c} {k}" for c, k in causes))
    return lines


def ci_over_runs(figures: list[dict]) -> str:
    """The spread of the figure between runs, and the points that missed the target in every run."""
    medians = sorted(float(f["table"].rel.median()) for f in figures)
    met = sorted(int(f["table"].met.sum()) for f in figures)
    keys = ["arch", "seq_len", "pass"]
    always = None
    for f in figures:
        missed = set(map(tuple, f["table"][~f["table"].met][keys].values.tolist()))
        always = missed if always is None else always & missed
    names = ", ".join(f"{a} n={n} {p}" for a, n, p in sorted(always or ()))
    return (f"median rel CI per run {', '.join(f'{m:.2%}' for m in medians)} (max/min {medians[-1] / medians[0]:.1f}x); "
            f"met per run {met}; missed in every run ({len(always or ())}): {names or '-'}")


def tests(repeat: int) -> list[dict]:
    rows = []
    for _ in range(repeat):
        before = _load()
        wall, rc, last = _timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], _env())
        rows.append({"figure": "python -m pytest", "wall_s": wall, "rc": rc, "target": "<= 300 s",
                     "load": f"{before} -> {_load()}", "note": last})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--figure", choices=(*FIGURES, "all"), default="all")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each figure")
    ap.add_argument("--workers", type=int, default=2, help="workers of the process and ray executors (sweep)")
    ap.add_argument("--clock", default="suite", choices=("suite", "wall", "thread_cpu"),
                    help="quick: the timing clock (suite: the suite's own)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    chosen = FIGURES if args.figure == "all" else (args.figure,)
    rows: list[dict] = []
    for figure in chosen:
        if figure == "quick":
            rows += quick(args.repeat, args.clock)
            continue
        rows += sweep(args.repeat, args.workers) if figure == "sweep" else globals()[figure](args.repeat)
    print(f"{'figure':34} {'wall s':>8} {'rc':>3}  {'target':30} {'load before -> after':22} note")
    for r in rows:
        print(f"{r['figure']:34} {r['wall_s']:8.1f} {r['rc']:3d}  {r['target']:30} {r['load']:22} {r['note']}")
    for r in rows:
        if r.get("details"):
            print(f"\n{r['figure']}: the latency points that missed the target, and why")
            print("\n".join(r["details"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
