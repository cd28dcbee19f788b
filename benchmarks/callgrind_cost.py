"""Where the time of counting instructions goes: Valgrind's start, and each point's build, warm-up and
counted calls, in CPU seconds of the Callgrind process (a shared machine's load moves wall time, not these).

    python benchmarks/callgrind_cost.py                      # the instructions points of suites/ci.yaml
    python benchmarks/callgrind_cost.py --mode throughout    # instrumentation on from the import on (before issue V)
    python benchmarks/callgrind_cost.py --schedule point     # each point built and counted in turn (before the batch)
    python benchmarks/callgrind_cost.py --native-kernels     # MKL/oneDNN/ATen's AVX2+FMA kernels (before issue V item 1)
    python benchmarks/callgrind_cost.py --samples 3 --warmup 8 --no-cold --suite suites/ci.yaml

Starts itself under ``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no`` and prints one
line per point (the median count, its spread, the cold count; with ``--schedule point`` also CPU s to build
it and to count it) and the totals: CPU s of the import, the builds, the count and each of its phases: the
first calls (counted, ``cold``), the warm-ups and the samples, each with its switches of instrumentation. ``--mode calls``
(default) switches instrumentation on only around the counted calls (archbench.instruments.callgrind.count);
``--mode throughout`` switches it on once, after the imports, as the counter did before.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="suites/ci.yaml")
    ap.add_argument("--mode", choices=("calls", "throughout"), default="calls")
    ap.add_argument("--schedule", choices=("batch", "point"), default="batch",
                    help="batch: all points built, then counted phase by phase together (the Callgrind process "
                         "since issue V's second round); point: each point built and counted in turn (before it)")
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--no-cold", action="store_true", help="do not count the first call on its own")
    ap.add_argument("--native-kernels", action="store_true",
                    help="the CPU's own kernels (AVX2, FMA) under Valgrind, not the portable ones the counter uses")
    ap.add_argument("--only", default="", help="substring a point's description must contain")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def outside(argv: list[str]) -> int:
    folder = tempfile.mkdtemp(prefix="callgrind-cost-")
    args = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
            f"--callgrind-out-file={folder}/callgrind.out", f"--log-file={folder}/valgrind.log",
            sys.executable, __file__, "--inside", *argv]
    from archbench.execute.callgrind import HASH_SEED, PORTABLE_KERNELS

    kernels = {} if "--native-kernels" in argv else PORTABLE_KERNELS
    env = {**os.environ, **kernels, **HASH_SEED, "ARCHBENCH_CALLGRIND_OUT": f"{folder}/callgrind.out", "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    try:
        rc = subprocess.call(args, env=env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # Valgrind's log and the dumps: nothing left behind
    print(f"wall {time.monotonic() - t0:.1f} s (not quotable on a shared machine)")
    return rc


def inside(opts: argparse.Namespace) -> int:
    t0 = time.process_time()
    from archbench import registry
    from archbench.execute.group import Settings, _context
    from archbench.instruments import callgrind
    from archbench.instruments.passes import PASSES
    from archbench.suite.load import load_suite
    from archbench.suite.plan import expand

    registry.metrics.names()
    imported = time.process_time() - t0
    print(json.dumps({"phase": "import", "cpu_s": round(imported, 2)}), flush=True)
    if opts.mode == "throughout":
        callgrind.request(callgrind.START_INSTRUMENTATION)
    points = [p for p in expand(load_suite(opts.suite)) if "instructions" in p.metrics and opts.only in p.describe()]
    kwargs = {k: v for k, v in (("samples", opts.samples), ("warmup", opts.warmup)) if v is not None}
    kwargs.update(switch=opts.mode == "calls", cold=not opts.no_cold)
    if opts.schedule == "batch":
        total = _batch(points, kwargs)
    else:
        total = {"build": 0.0, "count": 0.0}
        for point in points:
            t0 = time.process_time()
            ctx = _context(point, Settings())
            fn = PASSES[point.pass_](ctx.model, ctx.batch)
            t1 = time.process_time()
            [m] = callgrind.count_all([fn], times=total, **kwargs)  # callgrind.count, with its phases' times
            if isinstance(m, BaseException):
                raise m
            t2 = time.process_time()
            total["build"] += t1 - t0
            total["count"] += t2 - t1
            _line(point, m, build_cpu_s=round(t1 - t0, 2), count_cpu_s=round(t2 - t1, 2))
    print(json.dumps({"phase": "total", "import_cpu_s": round(imported, 2),
                      **{f"{k}_cpu_s": round(v, 2) for k, v in total.items()},
                      "cpu_s": round(time.process_time(), 2)}), flush=True)
    return 0


def _batch(points: list, kwargs: dict) -> dict[str, float]:
    """All points built, then counted together (``callgrind.count_all``), as the Callgrind process does."""
    from archbench.execute.group import Settings, _context
    from archbench.instruments import callgrind
    from archbench.instruments.passes import PASSES

    t0 = time.process_time()
    fns = []
    for point in points:
        ctx = _context(point, Settings())
        fns.append(PASSES[point.pass_](ctx.model, ctx.batch))
    times = {"build": time.process_time() - t0}
    for point, m in zip(points, callgrind.count_all(fns, times=times, **kwargs)):
        if isinstance(m, BaseException):
            raise m
        _line(point, m)
    times["count"] = sum(v for k, v in times.items() if k != "build")
    return times


def _line(point, m, **extra) -> None:
    print(json.dumps({"point": point.describe(), **extra, "median": m.median,
                      "spread": round((max(m.samples) - min(m.samples)) / m.median, 6), "cold": m.cold}), flush=True)


if __name__ == "__main__":
    options = _parse(sys.argv[1:])
    sys.exit(inside(options) if options.inside else outside(sys.argv[1:]))
