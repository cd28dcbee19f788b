"""The regression gate: a baseline run against a current one, point by point, metric by metric.

    archbench compare results/ci/base results/ci/head        # a table; exit 1 on a regression
    archbench compare base head --format markdown --threshold latency=0.15

    cmp = archbench.gate.judge.compare("results/ci/base", "results/ci/head")
    cmp.failed, cmp.counts(), [c for c in cmp.changes if c.category == "regressed"]

Points are matched by id, else by what describes them (``archbench.gate.match``).

A **timed** metric (raw samples in ``samples.jsonl``: ``latency``, and ``throughput``,
``achieved_flops``, ``mfu``, which are a number divided by the latency and take its samples) is
called regressed (or improved) only when all three hold:

- the relative change of the medians is above ``threshold`` (default 10 %), in the worse
  (better) direction, by the metric's ``higher_is_better``;
- the two-sided Mann–Whitney U test of the raw samples gives p < ``alpha`` (default 0.01);
- the absolute change is above ``floor`` (in the metric's unit; 1 µs for latency).

Without raw samples (a ``results.csv`` given alone) the test is replaced by the medians' 95 %
confidence intervals (``ci_low``, ``ci_high``) not overlapping. Every other metric is deterministic
or nearly so and has its own tolerance: changed beyond ``threshold`` (relative) **and** ``floor``
(absolute), e.g. accuracy is regressed when it drops by more than 0.02, counts (FLOPs, graph depth,
receptive field) when they change at all. A point ``ok`` in the baseline and not ``ok`` now is
``failed``. ``regressed`` or ``failed`` fails the gate; ``missing`` and ``new`` do not.

The gate refuses to pass what it cannot judge: a matched point ``ok`` in both runs whose value is
missing or not finite in either (NaN, infinite) is ``unjudged``, and so is a comparison in which no
point of CURRENT matched one of BASELINE (two different suites).

Exit codes of ``archbench compare`` (``Comparison.exit_code``):

- **0** PASS: every matched point judged, nothing regressed or failed;
- **1** FAIL: a metric regressed, or a point that was ok failed (this and nothing else);
- **2** the inputs could not be read: a missing or damaged results folder or file (one line naming
  the file, and line, and what is wrong), or a bad option;
- **3** CANNOT JUDGE: no point matched, or an ``ok`` value is not finite (and nothing regressed;
  a regression found beside it is still exit 1).

The rules: ``archbench.gate.rules``. The gate never imports torch.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from archbench.gate.mann_whitney import mann_whitney_u
from archbench.gate.match import label, match
from archbench.gate.rules import DEFAULT_RULES, DERIVED_FROM_LATENCY, Rule, RuleBook, parse_option, rules_of
from archbench.results.load import Run, load_run
from archbench.results.values import plain

CATEGORIES = ("failed", "regressed", "unjudged", "improved", "missing", "new", "unchanged")
FAILING = ("failed", "regressed")
EXIT_PASS, EXIT_FAIL, EXIT_CANNOT_JUDGE = 0, 1, 3  # 2: bad input (archbench.errors.BadInput, at the CLI)


@dataclass(frozen=True)
class Change:
    """The verdict on one (point, metric)."""

    category: str                 # one of CATEGORIES
    point: str                    # experiment/arch n=… b=… pass …
    metric: str
    unit: str | None
    higher_is_better: bool | None
    baseline: float | None
    current: float | None
    ratio: float | None           # current / baseline
    p: float | None               # Mann–Whitney p (timed metrics)
    n: tuple[int, int] | None     # samples in baseline and current
    matched_by: str | None        # id | parameters | description
    baseline_id: str | None
    current_id: str | None
    detail: str = ""


@dataclass
class Comparison:
    baseline: str
    current: str
    changes: list[Change]
    rules: dict[str, Rule]
    warnings: list[str] = field(default_factory=list)
    matched: int = -1             # points matched (-1: not counted, a Comparison built by hand)

    @property
    def failed(self) -> bool:
        return any(c.category in FAILING for c in self.changes)

    @property
    def cannot_judge(self) -> list[str]:
        """Why the gate cannot pass these runs (empty when it can)."""
        why = []
        if self.matched == 0:
            why.append("no point of the current run matched one of the baseline (different suites?)")
        unjudged = self.of("unjudged")
        if unjudged:
            why.append(f"{len(unjudged)} ok row{'s' if len(unjudged) > 1 else ''} without a finite value "
                       f"(first: {unjudged[0].point} {unjudged[0].metric}: {unjudged[0].detail})")
        return why

    @property
    def verdict(self) -> str:
        return "FAIL" if self.failed else "CANNOT JUDGE" if self.cannot_judge else "PASS"

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.failed else EXIT_CANNOT_JUDGE if self.cannot_judge else EXIT_PASS

    def counts(self) -> dict[str, int]:
        return {cat: sum(c.category == cat for c in self.changes) for cat in CATEGORIES}

    def of(self, category: str) -> list[Change]:
        return [c for c in self.changes if c.category == category]


def _latency_ci(run: Run) -> dict[str, tuple[float, float]]:
    """The 95 % CI of each point's latency median, by point id."""
    f = run.frame
    out = {}
    if "ci_low" in f.columns and "ci_high" in f.columns:
        for pid, lo, hi in f.loc[f.metric == "latency", ["point_id", "ci_low", "ci_high"]].itertuples(index=False):
            if plain(lo) is not None and plain(hi) is not None:
                out[pid] = (lo, hi)  # parsed by the reader: floats
    return out


def _timing(run: Run, row: Mapping[str, Any], cis: Mapping[str, tuple[float, float]]
            ) -> tuple[list[float] | None, tuple[float, float] | None]:
    """Raw samples of a timed row (derived metrics: the latency's), and the median's 95 % CI."""
    metric = "latency" if row["metric"] in DERIVED_FROM_LATENCY else row["metric"]
    if metric == "latency":
        return run.samples.get((row["point_id"], metric)), cis.get(row["point_id"])
    lo, hi = plain(row.get("ci_low")), plain(row.get("ci_high"))
    return run.samples.get((row["point_id"], metric)), (lo, hi) if lo is not None and hi is not None else None


def _is_timed(run: Run, row: Mapping[str, Any]) -> bool:
    metric = "latency" if row["metric"] in DERIVED_FROM_LATENCY else row["metric"]
    if (row["point_id"], metric) in run.samples:
        return True
    if metric == "latency":
        return (plain(row.get("n")) or 0) > 1  # a table without samples.jsonl: its stats say so
    return False


def judge(baseline: float, current: float, higher_is_better: bool, rule: Rule,
          base_samples: Sequence[float] | None = None, cur_samples: Sequence[float] | None = None,
          base_ci: tuple[float, float] | None = None, cur_ci: tuple[float, float] | None = None,
          timed: bool = False, inverse: bool = False) -> tuple[str, float | None, str]:
    """(category, p, detail) for one metric of one matched, ``ok`` point.

    ``inverse``: the samples (and CIs) are of a quantity that moves against the value (the latency's,
    for throughput); a change counts only where the samples moved the same way as the value.
    """
    if math.isnan(baseline) or math.isnan(current):
        if math.isnan(baseline) and math.isnan(current):
            return "unchanged", None, "no value in either"
        return "unchanged", None, f"no value in the {'baseline' if math.isnan(baseline) else 'current run'}"
    diff = current - baseline
    rel = abs(diff) / abs(baseline) if baseline != 0 else (0.0 if diff == 0 else math.inf)
    worse = diff < 0 if higher_is_better else diff > 0
    beyond = rel > rule.threshold and abs(diff) > rule.floor
    p = None
    if timed and base_samples and cur_samples:
        test = mann_whitney_u(base_samples, cur_samples)
        p = test.p
        samples_up = test.u < len(base_samples) * len(cur_samples) / 2  # the current samples rank higher
        significant, why = p < rule.alpha, f"p={p:.2g}"
        if significant and (samples_up != inverse) != (diff > 0):
            # mfu also moves with the run's own measured peak: the value and the samples can disagree
            significant, why = False, f"p={p:.2g} but the samples moved the other way"
    elif timed and base_ci and cur_ci:
        significant = base_ci[1] < cur_ci[0] or cur_ci[1] < base_ci[0]
        why = "95 % CIs " + ("disjoint" if significant else "overlap")
    else:
        significant, why = True, ""
    if beyond and significant and diff != 0:
        category = "regressed" if worse else "improved"
    else:
        category = "unchanged"
    reasons = []
    if not rel > rule.threshold:
        reasons.append(f"within {rule.threshold:.0%}" if rule.threshold >= 0.01 else "within tolerance")
    elif not abs(diff) > rule.floor:
        reasons.append(f"below floor {rule.floor:g}")
    if timed and why:
        reasons.append(why if significant or "other way" in why else f"{why}, not significant at {rule.alpha:g}")
    return category, p, "; ".join(reasons)


def compare_runs(base: Run, cur: Run, rules: RuleBook | None = None) -> Comparison:
    """Every (point, metric) of either run, judged (see the module docstring)."""
    rules = rules or RuleBook(suite=rules_of(cur.path))
    pairs, only_base, only_cur = match(base, cur)
    base_ci, cur_ci = _latency_ci(base), _latency_ci(cur)
    changes: list[Change] = []
    used: dict[str, Rule] = {}
    for b, c, how in pairs:
        metric = c["metric"]
        rule = used.setdefault(metric, rules.rule(metric))
        hib: bool = c["higher_is_better"]  # parsed by the reader (results.check): True or False, never text
        bv, cv = b["value"], c["value"]  # parsed: float, NaN where empty
        common = dict(point=label(c), metric=metric, unit=c.get("unit"), higher_is_better=hib,
                      baseline=None if math.isnan(bv) else bv, current=None if math.isnan(cv) else cv,
                      matched_by=how, baseline_id=b["point_id"], current_id=c["point_id"])
        bs, cs = b.get("status"), c.get("status")
        if bs != "ok" or cs != "ok":
            err = c.get("error")
            err = f": {err}" if isinstance(err, str) and err else ""
            if bs == "ok":
                changes.append(Change("failed", ratio=None, p=None, n=None, detail=f"ok -> {cs}{err}", **common))
            elif cs == "ok":
                changes.append(Change("improved", ratio=None, p=None, n=None, detail=f"{bs} -> ok", **common))
            else:
                changes.append(Change("unchanged", ratio=None, p=None, n=None,
                                      detail=f"{bs} in both" if bs == cs else f"{bs} -> {cs}", **common))
            continue
        if not (math.isfinite(bv) and math.isfinite(cv)):
            which = " and ".join(r for r, v in (("baseline", bv), ("current", cv)) if not math.isfinite(v))
            changes.append(Change("unjudged", ratio=None, p=None, n=None,
                                  detail=f"status ok but no finite value in the {which}", **common))
            continue
        timed = _is_timed(base, b) and _is_timed(cur, c)
        b_samples, b_ci = _timing(base, b, base_ci) if timed else (None, None)
        c_samples, c_ci = _timing(cur, c, cur_ci) if timed else (None, None)
        category, p, detail = judge(bv, cv, hib, rule, b_samples, c_samples, b_ci, c_ci, timed,
                                    inverse=metric in DERIVED_FROM_LATENCY)
        ratio = cv / bv if bv not in (0.0,) and not (math.isnan(bv) or math.isnan(cv)) else None
        n = (len(b_samples), len(c_samples)) if b_samples and c_samples else None
        changes.append(Change(category, ratio=ratio, p=p, n=n, detail=detail, **common))
    for rows, category in ((only_base, "missing"), (only_cur, "new")):
        for r in rows:
            v = plain(r.get("value"))
            changes.append(Change(
                category, label(r), r["metric"], r.get("unit"), plain(r.get("higher_is_better")),
                baseline=v if category == "missing" else None, current=v if category == "new" else None,
                ratio=None, p=None, n=None, matched_by=None,
                baseline_id=r["point_id"] if category == "missing" else None,
                current_id=r["point_id"] if category == "new" else None,
                detail=f"status {r.get('status')}" if r.get("status") != "ok" else ""))
    order = {cat: i for i, cat in enumerate(CATEGORIES)}
    changes.sort(key=lambda ch: order[ch.category])  # stable: plan order within a category
    unconverged = _unconverged(base) | _unconverged(cur)
    changes = [replace(c, detail="; ".join(filter(None, [c.detail, "still improving when its budget ran out: "
                                                        "the budget decides this number"])))
               if c.metric == "accuracy" and {c.baseline_id, c.current_id} & unconverged else c for c in changes]
    warnings = [w for w in (busy_warning(base, "baseline"), busy_warning(cur, "current"),
                            unconverged_warning(base, "baseline"), unconverged_warning(cur, "current")) if w]
    matched = len({(b["point_id"], c["point_id"]) for b, c, _ in pairs})
    return Comparison(base.path, cur.path, changes, used, warnings, matched)


def _unconverged(run: Run) -> set[str]:
    """Ids of the trained points whose training was still improving when the budget ran out."""
    f = run.frame
    flags = f[(f.metric == "converged") & (f.status == "ok")]
    return set(flags.loc[flags.value.map(plain) == 0, "point_id"])


def unconverged_warning(run: Run, role: str) -> str | None:
    """A line when trained points of a run did not converge: their accuracy is the budget's verdict."""
    n = len(_unconverged(run))
    if n:
        return (f"{n} trained point{'s' if n > 1 else ''} of the {role} run did not converge (still improving when "
                "the budget ran out): an accuracy change there may be the budget's, not the code's")
    return None


def busy_warning(run: Run, role: str) -> str | None:
    """A line when most timed points of a run stopped at the time cap before their target (``noisy``):
    the machine did not hold still, and its timings say as much about the machine as about the code."""
    f = run.frame
    if "noisy" not in f.columns:
        return None
    noisy = f.loc[f.metric == "latency", "noisy"].map(plain).dropna()
    n, k = len(noisy), int(noisy.astype(bool).sum())
    if n and k > n / 2:
        return (f"{k} of {n} timed points of the {role} run are noisy (stopped at max_time before the target): "
                "the machine was busy, and a timing verdict may be the machine's, not the code's")
    return None


def compare(baseline: str | Path, current: str | Path, threshold: Sequence[str] = (), alpha: Sequence[str] = (),
            floor: Sequence[str] = ()) -> Comparison:
    """Load both runs and compare them; the command-line options as ``archbench compare`` takes them."""
    base = load_run(baseline, "BASELINE")
    cur = load_run(current, "CURRENT")
    suite = rules_of(current)
    known = set(DEFAULT_RULES) | set(base.frame.metric.dropna()) | set(cur.frame.metric.dropna())
    cli_all: dict[str, float] = {}
    cli: dict[str, dict[str, float]] = {}
    for option, values in (("--threshold", threshold), ("--alpha", alpha), ("--floor", floor)):
        everything, per = parse_option(option, values, known)
        cli_all.update(everything)
        for metric, fields in per.items():
            cli.setdefault(metric, {}).update(fields)
    return compare_runs(base, cur, RuleBook(suite=suite, cli_all=cli_all, cli=cli))
