"""How often the regression gate cries wolf, and the smallest slowdown it catches, on this machine.

    for i in 1 2 3 4 5; do archbench run suites/ci.yaml --out /tmp/calib --no-report; done
    python benchmarks/calibrate_gate.py /tmp/calib/ci/*            # N runs of one suite, unchanged code

1. **False alarms.** Every ordered pair (A, B) of the N runs is compared with the gate's rules
   (the defaults, the suite's ``compare:``, and ``--threshold``/``--alpha``/``--floor`` as on
   ``archbench compare``). Nothing changed between the runs, so every ``regressed`` row is a false
   regression; the table counts the pairs that would have failed CI and the rows that did.
2. **Power.** For each slowdown s, every ordered pair is compared again with B's timed samples
   made (1 + s) times slower (``slow_down`` below: latency values, statistics and raw
   samples times 1 + s; throughput, achieved_flops and mfu divided by it). A pair *catches* s when
   at least ``--catch-share`` of the timed latency rows are called regressed (default: all of
   them, the honest reading of "every point got slower"). The smallest s caught in every pair is
   the smallest slowdown caught reliably.
3. **Two rounds.** The example workflow fails only when a second pair of runs fails as well; the
   script counts, over every two ordered pairs of four distinct runs, how often both fail.

The slowdown is synthetic: it scales B's own noise with its signal, as a uniformly slower kernel
would, and it is applied to a run of unchanged code, so the machine's run-to-run drift is in it.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archbench.errors import BadInput
from archbench.gate.judge import busy_warning, compare_runs
from archbench.gate.rules import DEFAULT_RULES, DERIVED_FROM_LATENCY, RuleBook, parse_option, rules_of
from archbench.results.load import Run, load_run

SLOWDOWNS = (0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50)


def slow_down(run: Run, s: float) -> Run:
    """The run as if every timed call had taken (1 + s) times as long: latency values, their
    statistics and raw samples times (1 + s); throughput, achieved_flops and mfu divided by it.

    It scales the noise with the
    signal, as a uniformly slower kernel would; it does not model a change that alters the spread.
    """
    factor = 1.0 + s
    frame = run.frame.copy()
    timed = {pid for (pid, metric) in run.samples if metric == "latency"}
    lat = (frame.metric == "latency") & frame.point_id.isin(timed)
    cols = [c for c in ("value", "median", "iqr", "p20", "p80", "ci_low", "ci_high", "mean", "std", "cold")
            if c in frame.columns]
    frame.loc[lat, cols] = frame.loc[lat, cols].astype(float) * factor
    derived = frame.metric.isin(DERIVED_FROM_LATENCY) & frame.point_id.isin(timed)
    frame.loc[derived, "value"] = frame.loc[derived, "value"].astype(float) / factor
    samples = {key: [v * factor for v in vals] if key[1] == "latency" else list(vals)
               for key, vals in run.samples.items()}
    return Run(run.path, frame, samples, run.task_columns)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="results folders of one suite, run on unchanged code")
    ap.add_argument("--slowdowns", default=",".join(f"{s:g}" for s in SLOWDOWNS),
                    help="comma-separated fractions, e.g. 0.05,0.1,0.2")
    ap.add_argument("--catch-share", type=float, default=1.0,
                    help="share of timed latency rows that must be called regressed for a pair to catch s")
    ap.add_argument("--threshold", action="append", default=[])
    ap.add_argument("--alpha", action="append", default=[])
    ap.add_argument("--floor", action="append", default=[])
    args = ap.parse_args(argv)
    try:
        runs = [load_run(p, "RUN") for p in args.runs]
        slowdowns = [float(s) for s in args.slowdowns.split(",") if s.strip()]
        known = set(DEFAULT_RULES) | {m for r in runs for m in r.frame.metric.dropna()}
        cli_all: dict[str, float] = {}
        cli: dict[str, dict[str, float]] = {}
        for option, values in (("--threshold", args.threshold), ("--alpha", args.alpha), ("--floor", args.floor)):
            everything, per = parse_option(option, values, known)
            cli_all.update(everything)
            for metric, fields in per.items():
                cli.setdefault(metric, {}).update(fields)
    except (BadInput, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(runs) < 2:
        print("error: give at least two results folders", file=sys.stderr)
        return 2
    pairs = list(itertools.permutations(range(len(runs)), 2))

    def book(cur) -> RuleBook:
        return RuleBook(suite=rules_of(cur.path), cli_all=cli_all, cli=cli)

    print(f"{len(runs)} runs, {len(pairs)} ordered pairs")
    failing_pairs, false_rows, rows_total = 0, 0, 0
    quiet_pairs, quiet_failing = 0, 0  # pairs where neither run was busy (archbench.gate.judge.busy_warning)
    fails: dict[tuple[int, int], bool] = {}
    worst: list[tuple[float, str]] = []
    for a, b in pairs:
        cmp = compare_runs(runs[a], runs[b], book(runs[b]))
        regressed = [c for c in cmp.changes if c.category in ("regressed", "failed")]
        failing_pairs += bool(regressed)
        fails[(a, b)] = bool(regressed)
        if not cmp.warnings:
            quiet_pairs += 1
            quiet_failing += bool(regressed)
        false_rows += len(regressed)
        rows_total += sum(c.category != "new" and c.category != "missing" for c in cmp.changes)
        worst += [((c.ratio or 1) - 1, f"{c.point} {c.metric}") for c in regressed]
        latency = [c for c in cmp.changes if c.metric == "latency" and c.ratio is not None]
        if latency:
            ratios = sorted(abs(c.ratio - 1) for c in latency)
            worst.append((ratios[-1], f"(largest |median change| of latency in pair {a}->{b})"))
    print(f"false regressions: {failing_pairs} of {len(pairs)} pairs would fail the gate; "
          f"{false_rows} of {rows_total} compared rows called regressed")
    print(f"  of them between runs on a quiet machine (neither run mostly noisy): {quiet_failing} of {quiet_pairs} pairs")
    # The workflow's two rounds: a failure counts only when a second pair of other runs fails too.
    rounds = [(p, q) for p in pairs for q in pairs if len({*p, *q}) == 4]
    if rounds:
        both = sum(fails[p] and fails[q] for p, q in rounds)
        print(f"  with a second round to confirm (two pairs of four distinct runs): {both} of {len(rounds)} fail both")
    busy = [str(Path(r.path).name) for r in runs if busy_warning(r, "")]
    print(f"  busy runs (most timed points noisy): {len(busy)} of {len(runs)}" + (f": {', '.join(busy)}" if busy else ""))
    drift = [w for w in worst if w[1].startswith("(largest")]
    if drift:
        print(f"run-to-run drift of latency medians: largest |change| per pair, median "
              f"{sorted(d[0] for d in drift)[len(drift) // 2]:.1%}, max {max(d[0] for d in drift):.1%}")
    print()
    print(f"{'slowdown':>8}  {'pairs caught':>12}  {'latency rows called':>20}")
    reliable = None
    for s in slowdowns:
        caught, called, timed = 0, 0, 0
        for a, b in pairs:
            cmp = compare_runs(runs[a], slow_down(runs[b], s), book(runs[b]))
            lat = [c for c in cmp.changes if c.metric == "latency" and c.n is not None]
            hit = sum(c.category == "regressed" for c in lat)
            called, timed = called + hit, timed + len(lat)
            caught += bool(lat) and hit >= args.catch_share * len(lat) - 1e-9
        print(f"{s:>8.0%}  {caught:>5} of {len(pairs):<4}  {called:>8} of {timed:<8}")
        if reliable is None and caught == len(pairs):
            reliable = s
    print()
    print("smallest slowdown caught in every pair: " + (f"{reliable:.0%}" if reliable is not None else "none tried"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
