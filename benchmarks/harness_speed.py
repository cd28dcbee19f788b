"""The harness's own speed, the four figures of issue 32, in one command, so that a change can be held
against them. Run it alone on a quiet machine: each figure is a wall time.

    python benchmarks/harness_speed.py                      # all four figures, one run each
    python benchmarks/harness_speed.py --figure ci          # one figure: ci | sweep | quick | tests
    python benchmarks/harness_speed.py --figure sweep --repeat 3 --json speed.json

- **ci**: ``archbench run suites/ci.yaml`` with Valgrind (instruction counts) and without
  (``ARCHBENCH_NO_VALGRIND=1``: the ``instructions`` rows are ``skipped``); target <= 120 s with it.
- **sweep**: ``benchmarks/executor_speed.yaml`` (16 trained points of a few seconds) serial, process and
  ray, ``--workers 2``; the speed-up of each over serial (target >= 1.8x).
- **quick**: ``archbench run suites/quick.yaml``: wall time (target <= 60 s) and the median, over its
  latency points, of the relative half-width of the median's 95 % CI (``Measurement.rel_ci``: the farther
  end from the median; target <= the suite's ``target``), with the points that missed it.
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
from pathlib import Path

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
                         "target": ">= 1.8x" if extra else "", "load": f"{before} -> {_load()}",
                         "note": (f"speed-up {speedup}" if extra else last) + f"; {cpu:.1f} CPU s"})
    return rows


def quick(repeat: int) -> list[dict]:
    import pandas as pd

    rows = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            before = _load()
            wall, rc, last = _run_suite("suites/quick.yaml", tmp, _env())
            found = list(Path(tmp).glob("quick/*/results.csv"))
            note = last
            if found:
                note = ci_summary(pd.read_csv(found[0]))
        rows.append({"figure": "quick suite", "wall_s": wall, "rc": rc, "target": "<= 60 s, median rel CI <= 2 %",
                     "load": f"{before} -> {_load()}", "note": note})
    return rows


def ci_summary(df, target: float = 0.02) -> str:
    """The median over the latency points of the relative half-width of the median's CI (the farther
    end, as the stop rule reads it), how many missed ``target``, and the worst three."""
    lat = df[(df.metric == "latency") & (df.status == "ok")]
    rel = (lat["ci_high"] - lat["median"]).abs().combine((lat["median"] - lat["ci_low"]).abs(), max) / lat["median"]
    missed = lat.assign(rel=rel)[rel > target].sort_values("rel", ascending=False)
    worst = ", ".join(f"{r.arch} n={r.seq_len} {r['pass']} {r.rel:.1%} (n={int(r.n)})" for _, r in missed.head(3).iterrows())
    noisy = int(lat.noisy.astype(str).str.lower().eq("true").sum())
    return (f"median rel CI {rel.median():.2%} over {len(lat)} latency points; {len(missed)} above {target:.0%}; "
            f"{noisy} noisy; worst: {worst or '-'}")


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
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    chosen = FIGURES if args.figure == "all" else (args.figure,)
    rows: list[dict] = []
    for figure in chosen:
        rows += sweep(args.repeat, args.workers) if figure == "sweep" else globals()[figure](args.repeat)
    print(f"{'figure':34} {'wall s':>8} {'rc':>3}  {'target':30} {'load before -> after':22} note")
    for r in rows:
        print(f"{r['figure']:34} {r['wall_s']:8.1f} {r['rc']:3d}  {r['target']:30} {r['load']:22} {r['note']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
