"""How often the regression gate cries wolf, and the smallest slowdown it catches, on this machine.

    for i in 1 2 3 4 5; do archbench run suites/ci.yaml --out /tmp/calib --no-report; done
    python benchmarks/calibrate_gate.py /tmp/calib/ci/*            # N runs of one suite, unchanged code

1. **False alarms.** Every ordered pair (A, B) of the N runs is compared with the gate's rules
   (the defaults, the suite's ``compare:``, and ``--threshold``/``--alpha``/``--floor`` as on
   ``archbench compare``). Nothing changed between the runs, so every ``regressed`` row is a false
   regression; the table counts the pairs that would have failed CI and the rows that did, in all,
   and for the time rows (latency and the numbers over it) and the ``instructions`` rows apart.
2. **Spread.** Per timed point, the run-to-run spread of the ``instructions`` count: (max - min) /
   median of its values over the N runs, beside the latency's.
3. **Power.** For each slowdown s, every ordered pair is compared again with B's timed samples
   made (1 + s) times slower (``slow_down`` below: latency values, statistics and raw
   samples times 1 + s; throughput, achieved_flops and mfu divided by it; ``instructions`` times
   1 + s). A pair *catches* s when at least ``--catch-share`` of the timed rows are called
   regressed (default: all of them, the honest reading of "every point got slower"). The smallest
   s caught in every pair is the smallest slowdown caught reliably.
4. **Two rounds.** The example workflow fails only when a second pair of runs fails as well; the
   script counts, over every two ordered pairs of four distinct runs, how often both fail.
5. **Real slowdowns** (``--slowed F=RUN``, repeatable): runs of code that does a known share F
   more work (``benchmarks/calibrate_gate.yaml``: test-only architectures, ``tests/plugins/slowed.py``),
   each compared with every run given first (unchanged code of the same suite). Per point: the work
   really added (the median ratio of instruction counts) and the smallest F called regressed in
   every pair, by instructions and by time.

The synthetic slowdown of 3. scales B's own noise with its signal, as a uniformly slower kernel
would, and it is applied to a run of unchanged code, so the machine's run-to-run drift is in it;
5. is the same question asked of real code.
"""
from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archbench.errors import BadInput
from archbench.gate.judge import busy_warning, compare_runs
from archbench.gate.match import label
from archbench.gate.rules import DEFAULT_RULES, DERIVED_FROM_LATENCY, RuleBook, parse_option, rules_of
from archbench.results.load import Run, load_run

SLOWDOWNS = (0.005, 0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50)


def slow_down(run: Run, s: float, metric: str = "latency") -> Run:
    """The run as if every timed call had taken (1 + s) times as long: latency values, their
    statistics and raw samples times (1 + s); throughput, achieved_flops and mfu divided by it.
    ``metric="instructions"``: the instruction counts, their statistics and raw counts times (1 + s).

    It scales the noise with the
    signal, as a uniformly slower kernel would; it does not model a change that alters the spread.
    """
    factor = 1.0 + s
    frame = run.frame.copy()
    timed = {pid for (pid, m) in run.samples if m == metric}
    lat = (frame.metric == metric) & frame.point_id.isin(timed)
    cols = [c for c in ("value", "median", "iqr", "p20", "p80", "ci_low", "ci_high", "mean", "std", "cold")
            if c in frame.columns]
    frame.loc[lat, cols] = frame.loc[lat, cols].astype(float) * factor
    if metric == "latency":
        derived = frame.metric.isin(DERIVED_FROM_LATENCY) & frame.point_id.isin(timed)
        frame.loc[derived, "value"] = frame.loc[derived, "value"].astype(float) / factor
    samples = {key: [v * factor for v in vals] if key[1] == metric else list(vals)
               for key, vals in run.samples.items()}
    return Run(run.path, frame, samples, run.task_columns)


def pct(x: float) -> str:
    """0.005 -> '0.5%', 0.3 -> '30%'."""
    return f"{x * 100:.3g}%"


def _family(metric: str) -> str:
    return "time" if metric == "latency" or metric in DERIVED_FROM_LATENCY else metric


def spread(runs: list[Run]) -> list[tuple[str, float, float, int]]:
    """(point, instructions spread, latency spread, runs) per point counted in every run: (max - min) / median."""
    out = []
    for pid in dict.fromkeys(runs[0].frame.point_id):
        vals: dict[str, list[float]] = {"instructions": [], "latency": []}
        name = ""
        for run in runs:
            f = run.frame
            for metric in vals:
                row = f[(f.point_id == pid) & (f.metric == metric) & (f.status == "ok")]
                if len(row):
                    vals[metric].append(float(row.value.iloc[0]))
                    name = name or label(row.iloc[0].to_dict())
        if len(vals["instructions"]) == len(runs):
            rel = {m: (max(v) - min(v)) / statistics.median(v) if len(v) == len(runs) else math.nan
                   for m, v in vals.items()}
            out.append((name, rel["instructions"], rel["latency"], len(runs)))
    return out


def real_slowdowns(bases: list[Run], slowed: dict[float, Run], book) -> None:
    """Per point, the work added (instructions ratio) and the smallest share caught in every pair."""
    levels = sorted(slowed)
    caught: dict[tuple[str, str], float | None] = {}
    added: dict[tuple[str, float], float] = {}
    print(f"real slowdowns: {len(bases)} unchanged run(s) against a run at each of "
          f"{', '.join(pct(f) for f in levels)} more work")
    print(f"{'more work':>9}  {'pairs failing':>13}  {'instructions rows called':>24}  {'latency rows called':>19}")
    for f in levels:
        called = {"instructions": [0, 0], "latency": [0, 0]}
        failing = 0
        hits: dict[tuple[str, str], list[bool]] = {}
        for base in bases:
            cmp = compare_runs(base, slowed[f], book(slowed[f]))
            failing += cmp.failed
            for c in cmp.changes:
                if c.metric in called and c.n is not None:
                    called[c.metric][0] += c.category == "regressed"
                    called[c.metric][1] += 1
                    hits.setdefault((c.point, c.metric), []).append(c.category == "regressed")
                    if c.metric == "instructions" and c.ratio is not None:
                        added.setdefault((c.point, f), c.ratio - 1)
        for key, verdicts in hits.items():
            if all(verdicts) and caught.get(key) is None:
                caught[key] = f
            caught.setdefault(key, None)
        ins, lat = called["instructions"], called["latency"]
        print(f"{pct(f):>9}  {failing:>5} of {len(bases):<5}  {ins[0]:>12} of {ins[1]:<9}  {lat[0]:>8} of {lat[1]:<8}")
    print()
    print("smallest real slowdown caught in every pair, per point (work added: the instructions' ratio - 1)")
    points = list(dict.fromkeys(p for p, _ in caught))
    width = max(map(len, points), default=10)
    print(f"{'point':<{width}}  {'work added at each level':<{9 * len(levels)}}  {'instructions':>12}  {'time':>6}")
    for p in points:
        work = " ".join(f"{added[(p, f)]:>+8.1%}" if (p, f) in added else f"{'-':>8}" for f in levels)
        ins, lat = caught.get((p, "instructions")), caught.get((p, "latency"))
        print(f"{p:<{width}}  {work:<{9 * len(levels)}}  {pct(ins) if ins is not None else 'none':>12}  "
              f"{pct(lat) if lat is not None else 'none':>6}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="results folders of one suite, run on unchanged code")
    ap.add_argument("--slowdowns", default=",".join(f"{s:g}" for s in SLOWDOWNS),
                    help="comma-separated fractions, e.g. 0.05,0.1,0.2")
    ap.add_argument("--catch-share", type=float, default=1.0,
                    help="share of timed rows of a metric that must be called regressed for a pair to catch s")
    ap.add_argument("--slowed", action="append", default=[], metavar="F=RUN",
                    help="a run of code doing a share F more work (benchmarks/calibrate_gate.yaml); repeatable")
    ap.add_argument("--threshold", action="append", default=[])
    ap.add_argument("--alpha", action="append", default=[])
    ap.add_argument("--floor", action="append", default=[])
    args = ap.parse_args(argv)
    try:
        runs = [load_run(p, "RUN") for p in args.runs]
        slowdowns = [float(s) for s in args.slowdowns.split(",") if s.strip()]
        slowed = {float(f): load_run(p, "SLOWED") for f, _, p in (x.partition("=") for x in args.slowed)}
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
    if len(runs) < 2 and not slowed:
        print("error: give at least two results folders", file=sys.stderr)
        return 2

    def book(cur) -> RuleBook:
        return RuleBook(suite=rules_of(cur.path), cli_all=cli_all, cli=cli)

    if len(runs) >= 2:
        unchanged(runs, slowdowns, args.catch_share, book)
    if slowed:
        print()
        real_slowdowns(runs, slowed, book)
    return 0


def unchanged(runs: list[Run], slowdowns: list[float], catch_share: float, book) -> None:
    """False alarms, spread, the two rounds and the synthetic slowdowns, over runs of unchanged code."""
    pairs = list(itertools.permutations(range(len(runs)), 2))
    print(f"{len(runs)} runs, {len(pairs)} ordered pairs")
    failing_pairs, false_rows, rows_total = 0, 0, 0
    by_family: dict[str, list[int]] = {}  # family -> [pairs failing, rows called, rows compared]
    quiet_pairs, quiet_failing = 0, 0  # pairs where neither run was busy (archbench.gate.judge.busy_warning)
    fails: dict[tuple[int, int], bool] = {}
    worst: list[tuple[float, str]] = []
    rules_used: dict[str, object] = {}
    for a, b in pairs:
        cmp = compare_runs(runs[a], runs[b], book(runs[b]))
        rules_used.update(cmp.rules)
        regressed = [c for c in cmp.changes if c.category in ("regressed", "failed")]
        failing_pairs += bool(regressed)
        fails[(a, b)] = bool(regressed)
        if not cmp.warnings:
            quiet_pairs += 1
            quiet_failing += bool(regressed)
        false_rows += len(regressed)
        rows_total += sum(c.category != "new" and c.category != "missing" for c in cmp.changes)
        for family in ("time", "instructions"):
            mine = [c for c in cmp.changes if _family(c.metric) == family and c.category not in ("new", "missing")]
            bad = [c for c in mine if c.category in ("regressed", "failed")]
            counts = by_family.setdefault(family, [0, 0, 0])
            counts[0] += bool(bad)
            counts[1] += len(bad)
            counts[2] += len(mine)
        worst += [((c.ratio or 1) - 1, f"{c.point} {c.metric}") for c in regressed]
        latency = [c for c in cmp.changes if c.metric == "latency" and c.ratio is not None]
        if latency:
            ratios = sorted(abs(c.ratio - 1) for c in latency)
            worst.append((ratios[-1], f"(largest |median change| of latency in pair {a}->{b})"))
    print(f"false regressions: {failing_pairs} of {len(pairs)} pairs would fail the gate; "
          f"{false_rows} of {rows_total} compared rows called regressed")
    for family, (p, called, total) in by_family.items():
        if total:
            metric = "latency" if family == "time" else family
            rule = rules_used.get(metric)
            print(f"  on {family} rows alone ({metric}: threshold {getattr(rule, 'threshold', float('nan')):.0%}): "
                  f"{p} of {len(pairs)} pairs fail; {called} of {total} rows called regressed")
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
    rows = spread(runs)
    if rows:
        print()
        width = max(len(r[0]) for r in rows)
        print(f"run-to-run spread over {len(runs)} runs, (max - min) / median")
        print(f"{'point':<{width}}  {'instructions':>12}  {'latency':>8}")
        for name, ins, lat, _ in rows:
            print(f"{name:<{width}}  {ins:>12.3%}  {lat:>8.1%}")
        print(f"{'largest':<{width}}  {max(r[1] for r in rows):>12.3%}  {max(r[2] for r in rows):>8.1%}")
    metrics = [m for m in ("latency", "instructions") if any(k[1] == m for r in runs for k in r.samples)]
    for metric in metrics:
        print()
        print(f"synthetic slowdowns of {metric}")
        print(f"{'slowdown':>8}  {'pairs caught':>12}  {f'{metric} rows called':>24}")
        reliable = None
        for s in slowdowns:
            caught, called, timed = 0, 0, 0
            for a, b in pairs:
                cmp = compare_runs(runs[a], slow_down(runs[b], s, metric), book(runs[b]))
                lat = [c for c in cmp.changes if c.metric == metric and c.n is not None]
                hit = sum(c.category == "regressed" for c in lat)
                called, timed = called + hit, timed + len(lat)
                caught += bool(lat) and hit >= catch_share * len(lat) - 1e-9
            print(f"{pct(s):>8}  {caught:>5} of {len(pairs):<4}  {called:>12} of {timed:<8}")
            if reliable is None and caught == len(pairs):
                reliable = s
        print(f"smallest slowdown of {metric} caught in every pair: "
              + (pct(reliable) if reliable is not None else "none tried"))


if __name__ == "__main__":
    sys.exit(main())
