"""The regression gate: a baseline run against a current one, point by point, metric by metric.

    archbench compare results/ci/base results/ci/head        # a table; exit 1 on a regression
    archbench compare base head --format markdown --threshold latency=0.15

    cmp = archbench.compare.compare("results/ci/base", "results/ci/head")
    cmp.failed, cmp.counts(), [c for c in cmp.changes if c.category == "regressed"]

Points are matched by id; where ids differ (a changed architecture parameter, a new default), by
the fields that describe them: experiment, architecture label and kind, task and its parameters,
length, batch, pass, seed, causal, device, dtype and threads, first with and then without the
architecture's own parameters, a match only where it is one-to-one.

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

Rules come from :data:`DEFAULT_RULES`, then the current run's suite (``compare:``, metric name →
``{threshold, alpha, floor}``), then the command line, which wins. This module never imports torch.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from archbench.errors import BadInput
from archbench.results import load_results, read_records, records_to_frame

CATEGORIES = ("failed", "regressed", "improved", "missing", "new", "unchanged")
FAILING = ("failed", "regressed")
# Metrics that are a number over the point's latency: they are timed by the latency's samples
# (a rank test gives the same p for 1/x as for x).
DERIVED_FROM_LATENCY = ("throughput", "achieved_flops", "mfu")
# What describes a point apart from its parameters; with the task's parameters, the fallback key.
DESCRIBING = ("experiment", "arch", "arch_kind", "task", "seq_len", "batch", "pass", "seed", "causal",
              "device", "dtype", "threads")


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Rule:
    """When a change of one metric counts. Every condition must hold for a call."""

    threshold: float = 0.10  # relative change of the value (the median, for a timed metric)
    alpha: float = 0.01      # level of the two-sided Mann–Whitney U test (timed metrics only)
    floor: float = 0.0       # absolute change, in the metric's unit


EXACT = Rule(threshold=1e-9, floor=0.0)  # a count: any change (beyond float rounding) counts
DEFAULT_RULE = Rule()
DEFAULT_RULES: dict[str, Rule] = {
    "latency": Rule(threshold=0.10, alpha=0.01, floor=1e-6),
    "throughput": Rule(threshold=0.10, alpha=0.01),
    "achieved_flops": Rule(threshold=0.10, alpha=0.01),
    "mfu": Rule(threshold=0.10, alpha=0.01, floor=0.001),
    "peak_memory": Rule(threshold=0.05, floor=1024.0),
    "flops": EXACT, "graph_work": EXACT, "graph_depth": EXACT, "parallelism": EXACT,
    "max_path_length": EXACT, "rf_theoretical": EXACT, "rf_empirical": EXACT,
    "erf_50": EXACT, "erf_90": EXACT, "erf_99": EXACT,
    "layers_to_cover": EXACT, "layers_to_cover_theory": EXACT,
    "accuracy": Rule(threshold=0.0, floor=0.02), "baseline_accuracy": Rule(threshold=0.0, floor=0.02),
    "loss": Rule(threshold=0.05, floor=0.01), "baseline_loss": Rule(threshold=0.05, floor=0.01),
    "steps_to_threshold": Rule(threshold=0.10, floor=0.0),
    "train_time": Rule(threshold=1.0, floor=0.5),  # one wall time, no samples: only a doubling counts
}
RULE_FIELDS = ("threshold", "alpha", "floor")


class MetricRule(BaseModel):
    """One metric's entry under a suite's ``compare:``; unset fields keep the default."""

    model_config = ConfigDict(extra="forbid", strict=True)
    threshold: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    alpha: Annotated[float, Field(gt=0, lt=1)] | None = None
    floor: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in RULE_FIELDS:
                    raise ValueError(f"unknown key {key!r}; allowed: {', '.join(RULE_FIELDS)}")
        elif data is not None and not isinstance(data, MetricRule):
            raise ValueError(f"a metric's rule is a mapping of {', '.join(RULE_FIELDS)}, got {data!r}")
        return data

    def set_fields(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


_RULES = TypeAdapter(dict[str, MetricRule])


def known_metrics() -> set[str]:
    """Metric names a rule may name: the results schema's, and every row a registered metric makes."""
    from archbench import registry

    names = set(DEFAULT_RULES)
    for entry in registry.metrics:
        names.add(entry.name)
        try:
            names |= {row[0] for row in entry.obj().produces()}
        except Exception:  # noqa: BLE001 - a plugin that cannot be built bare still names itself
            pass
    return names


class _SuiteLoader(yaml.SafeLoader):
    """The safe loader reading 1e-6 as a number, as the suite loader (archbench.config) does."""


_SuiteLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def unknown_metric_message(name: str, known: Iterable[str]) -> str:
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"unknown metric {name!r}{hint} known: {', '.join(known)}"


@dataclass(frozen=True)
class RuleBook:
    """The rule of each metric: defaults < the suite's ``compare:`` < the command line (all metrics)
    < the command line for that metric."""

    suite: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    cli_all: Mapping[str, float] = field(default_factory=dict)
    cli: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def rule(self, metric: str) -> Rule:
        r = DEFAULT_RULES.get(metric, DEFAULT_RULE)
        if metric in DERIVED_FROM_LATENCY:  # a number over the latency: its threshold and level follow latency's
            latency = {**self.suite.get("latency", {}), **self.cli.get("latency", {})}
            r = replace(r, **{k: v for k, v in latency.items() if k != "floor"})  # a floor is in the metric's unit
        return replace(r, **{**self.suite.get(metric, {}), **self.cli_all, **self.cli.get(metric, {})})


def suite_rules(text: str, source: str) -> dict[str, dict[str, float]]:
    """The ``compare:`` mapping of a suite's text, checked; {} when it has none."""
    try:
        data = yaml.load(text, Loader=_SuiteLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise BadInput(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    raw = data.get("compare") if isinstance(data, dict) else None
    if raw is None:
        return {}
    try:
        rules = _RULES.validate_python(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if p != "function-before[_known_keys(), MetricRule]")
        msg = err["msg"].removeprefix("Value error, ")
        raise BadInput(f"{source}: compare.{where}: {msg}".replace("compare.:", "compare:")) from None
    return {name: r.set_fields() for name, r in rules.items()}


def parse_option(option: str, values: Sequence[str], known: Iterable[str]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """``--threshold 0.15`` (every metric) or ``--threshold latency=0.15`` (one), repeatable.

    Returns (for all metrics, per metric); BadInput naming the bad value and what is allowed.
    """
    name = option.lstrip("-")
    allowed = "a number in (0, 1)" if name == "alpha" else "a number >= 0"
    everything: dict[str, float] = {}
    per: dict[str, dict[str, float]] = {}
    known = set(known)
    for text in values:
        metric, sep, number = text.rpartition("=")
        if sep and not metric:
            raise BadInput(f"{option} {text!r}: give METRIC=VALUE or VALUE, e.g. {option} latency=0.15")
        if metric and metric not in known:
            raise BadInput(f"{option} {text!r}: {unknown_metric_message(metric, known)}")
        try:
            value = float(number)
        except ValueError:
            raise BadInput(f"{option} {text!r}: {number!r} is not a number; allowed: {allowed}") from None
        ok = 0 < value < 1 if name == "alpha" else (value >= 0 and math.isfinite(value))
        if not ok:
            raise BadInput(f"{option} {text!r}: {value:g} is out of range; allowed: {allowed}")
        if metric:
            per.setdefault(metric, {})[name] = value
        else:
            everything[name] = value
    return everything, per


# ---------------------------------------------------------------------------------------------
# Mann–Whitney U


@dataclass(frozen=True)
class MannWhitney:
    u: float        # U of the first sample: the pairs (x, y) with x > y, ties counting one half
    p: float        # two-sided p
    method: str     # "exact" or "asymptotic"


def _exact_sf(u: int, m: int, n: int) -> float:
    """P(U >= u) for samples of m and n without ties: the coefficients of the Gaussian binomial
    coefficient [m+n choose m]_q count the arrangements with each U (exact integers)."""
    m, n = min(m, n), max(m, n)
    counts = [0] * (m * n + 1)
    counts[0] = 1
    for i in range(1, m + 1):
        step = n + i
        for k in range(m * n, step - 1, -1):  # times (1 - q^(n+i))
            counts[k] -= counts[k - step]
        for k in range(i, m * n + 1):          # divided by (1 - q^i)
            counts[k] += counts[k - i]
    total = math.comb(m + n, m)
    return sum(counts[max(u, 0):]) / total


def mann_whitney_u(x: Sequence[float], y: Sequence[float], method: str = "auto") -> MannWhitney:
    """The two-sided Mann–Whitney U test of x against y, as ``scipy.stats.mannwhitneyu`` computes it.

    ``auto``: exact when there are no ties and one sample has 8 values or fewer; otherwise the
    normal approximation with the tie correction and a continuity correction of 1/2.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann–Whitney U needs at least one value in each sample")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("Mann–Whitney U: a sample holds NaN")
    _, inverse, ties = np.unique(np.concatenate([x, y]), return_inverse=True, return_counts=True)
    ends = np.cumsum(ties)
    ranks = (ends - (ties - 1) / 2.0)[inverse]  # mid-ranks, 1-based
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u = max(u1, n1 * n2 - u1)
    tied = bool((ties > 1).any())
    if method == "auto":
        method = "asymptotic" if (n1 > 8 and n2 > 8) or tied else "exact"
    if method == "exact":
        if tied:
            raise ValueError("the exact Mann–Whitney U test needs samples without ties")
        p = 2 * _exact_sf(int(round(u)), n1, n2)
    elif method == "asymptotic":
        n = n1 + n2
        tie_term = float((ties.astype(float) ** 3 - ties).sum())
        s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))) if n > 1 else 0.0
        if s == 0:
            p = 1.0  # every value equal: nothing to tell apart
        else:
            z = (u - n1 * n2 / 2 - 0.5) / s
            p = math.erfc(z / math.sqrt(2))  # 2 * P(Z > z)
    else:
        raise ValueError(f"unknown method {method!r}; allowed: auto, exact, asymptotic")
    return MannWhitney(u1, min(max(p, 0.0), 1.0), method)


# ---------------------------------------------------------------------------------------------
# Runs


@dataclass
class Run:
    """What the gate reads of one run: the table, the raw samples, and the suite's rules."""

    path: str
    frame: pd.DataFrame
    samples: dict[tuple[str, str], list[float]]
    task_columns: frozenset[str] = frozenset()
    rules: dict[str, dict[str, float]] = field(default_factory=dict)


def load_run(path: str | Path, role: str = "results") -> Run:
    """A results folder, or its ``results.csv`` or ``records.jsonl`` (the folder's other files beside)."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{role} {str(path)!r} does not exist; give a results folder, results.csv or records.jsonl")
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        frame = load_results(path)
    elif path.suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise BadInput(f"{role} {str(path)!r}: not a results table ({str(exc).splitlines()[0]})") from None
    elif path.suffix == ".jsonl":
        frame = records_to_frame(read_records(path))
    else:
        raise BadInput(f"{role} {str(path)!r}: not a results folder, results.csv or records.jsonl")
    missing = [c for c in ("point_id", "metric", "value", "status") if c not in frame.columns]
    if missing:
        raise BadInput(f"{role} {str(path)!r}: not a results table; it has no column {missing[0]!r}")
    if frame.empty:
        raise BadInput(f"{role} {str(path)!r}: holds no results")
    samples = {(s["point_id"], s["metric"]): list(s["samples"]) for s in read_records(folder / "samples.jsonl")
               if isinstance(s, dict) and s.get("samples")}
    task_columns: set[str] = set()
    for rec in read_records(folder / "records.jsonl"):
        p = rec.get("point", {})
        arch = p.get("arch_params", {})
        task_columns |= {f"param.task.{k}" if k in arch else f"param.{k}" for k in p.get("task_params", {})}
    rules: dict[str, dict[str, float]] = {}
    suite_file = folder / "suite.yaml"
    if suite_file.is_file():
        rules = suite_rules(suite_file.read_text(encoding="utf-8"), str(suite_file))
    return Run(str(path), frame, samples, frozenset(task_columns), rules)


def slow_down(run: Run, s: float) -> Run:
    """The run as if every timed call had taken (1 + s) times as long: latency values, their
    statistics and raw samples times (1 + s); throughput, achieved_flops and mfu divided by it.

    For calibrating the gate (``benchmarks/calibrate_gate.py``). It scales the noise with the
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
    return Run(run.path, frame, samples, run.task_columns, run.rules)


# ---------------------------------------------------------------------------------------------
# Matching and judging


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

    @property
    def failed(self) -> bool:
        return any(c.category in FAILING for c in self.changes)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {cat: sum(c.category == cat for c in self.changes) for cat in CATEGORIES}

    def of(self, category: str) -> list[Change]:
        return [c for c in self.changes if c.category == category]


def _plain(value: Any) -> Any:
    """A value as a matching key: NaN → None, 2.0 → 2, numpy scalars → Python, "True" → True."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str) and value in ("True", "False"):
        return value == "True"
    return value


def _key(row: Mapping[str, Any], columns: Sequence[str]) -> tuple:
    return tuple(_plain(row.get(c)) for c in columns)


def _label(row: Mapping[str, Any]) -> str:
    parts = [f"{row.get('experiment')}/{row.get('arch')}", f"n={_plain(row.get('seq_len'))}",
             f"b={_plain(row.get('batch'))}", str(row.get("pass"))]
    if _plain(row.get("causal")) is False:
        parts.append("bidirectional")
    seed = _plain(row.get("seed"))
    if seed not in (0, None):
        parts.append(f"seed={seed}")
    return " ".join(parts)


def _unique_match(base: list[dict], cur: list[dict], columns: Sequence[str]) -> list[tuple[dict, dict]]:
    """Pairs whose key is held by exactly one row on each side."""
    by_base: dict[tuple, list[dict]] = {}
    by_cur: dict[tuple, list[dict]] = {}
    for r in base:
        by_base.setdefault(_key(r, columns), []).append(r)
    for r in cur:
        by_cur.setdefault(_key(r, columns), []).append(r)
    return [(b[0], by_cur[k][0]) for k, b in by_base.items() if len(b) == 1 and len(by_cur.get(k, ())) == 1]


def match(base: Run, cur: Run) -> tuple[list[tuple[dict, dict, str]], list[dict], list[dict]]:
    """(pairs with how they were matched, baseline rows left over, current rows left over)."""
    brows = base.frame.to_dict("records")
    crows = cur.frame.to_dict("records")
    cur_by_id = {(r["point_id"], r["metric"]): r for r in crows}
    pairs: list[tuple[dict, dict, str]] = []
    used_b: set[int] = set()
    used_c: set[int] = set()
    for r in brows:
        other = cur_by_id.get((r["point_id"], r["metric"]))
        if other is not None:
            pairs.append((r, other, "id"))
            used_b.add(id(r))
            used_c.add(id(other))
    params = sorted({c for c in (*base.frame.columns, *cur.frame.columns) if str(c).startswith("param.")})
    describing = [c for c in DESCRIBING if c in base.frame.columns or c in cur.frame.columns]
    task_cols = sorted(base.task_columns & cur.task_columns)
    for how, columns in (("parameters", [*describing, *params, "metric"]),
                         ("description", [*describing, *task_cols, "metric"])):
        left_b = [r for r in brows if id(r) not in used_b]
        left_c = [r for r in crows if id(r) not in used_c]
        if not left_b or not left_c:
            break
        for b, c in _unique_match(left_b, left_c, columns):
            pairs.append((b, c, how))
            used_b.add(id(b))
            used_c.add(id(c))
    return pairs, [r for r in brows if id(r) not in used_b], [r for r in crows if id(r) not in used_c]


def _latency_ci(run: Run) -> dict[str, tuple[float, float]]:
    """The 95 % CI of each point's latency median, by point id."""
    f = run.frame
    out = {}
    if "ci_low" in f.columns and "ci_high" in f.columns:
        for pid, lo, hi in f.loc[f.metric == "latency", ["point_id", "ci_low", "ci_high"]].itertuples(index=False):
            if _plain(lo) is not None and _plain(hi) is not None:
                out[pid] = (float(lo), float(hi))
    return out


def _timing(run: Run, row: Mapping[str, Any], cis: Mapping[str, tuple[float, float]]
            ) -> tuple[list[float] | None, tuple[float, float] | None]:
    """Raw samples of a timed row (derived metrics: the latency's), and the median's 95 % CI."""
    metric = "latency" if row["metric"] in DERIVED_FROM_LATENCY else row["metric"]
    if metric == "latency":
        return run.samples.get((row["point_id"], metric)), cis.get(row["point_id"])
    lo, hi = _plain(row.get("ci_low")), _plain(row.get("ci_high"))
    return run.samples.get((row["point_id"], metric)), (float(lo), float(hi)) if lo is not None and hi is not None else None


def _is_timed(run: Run, row: Mapping[str, Any]) -> bool:
    metric = "latency" if row["metric"] in DERIVED_FROM_LATENCY else row["metric"]
    if (row["point_id"], metric) in run.samples:
        return True
    if metric == "latency":
        return (_plain(row.get("n")) or 0) > 1  # a table without samples.jsonl: its stats say so
    return False


def judge(metric: str, baseline: float, current: float, higher_is_better: bool, rule: Rule,
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
    rules = rules or RuleBook(suite=cur.rules)
    pairs, only_base, only_cur = match(base, cur)
    base_ci, cur_ci = _latency_ci(base), _latency_ci(cur)
    changes: list[Change] = []
    used: dict[str, Rule] = {}
    for b, c, how in pairs:
        metric = c["metric"]
        rule = used.setdefault(metric, rules.rule(metric))
        hib = _plain(c.get("higher_is_better"))
        hib = bool(hib) if hib is not None else bool(_plain(b.get("higher_is_better")))
        bv, cv = _plain(b.get("value")), _plain(c.get("value"))
        bv = math.nan if bv is None else float(bv)
        cv = math.nan if cv is None else float(cv)
        common = dict(point=_label(c), metric=metric, unit=c.get("unit"), higher_is_better=hib,
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
        timed = _is_timed(base, b) and _is_timed(cur, c)
        b_samples, b_ci = _timing(base, b, base_ci) if timed else (None, None)
        c_samples, c_ci = _timing(cur, c, cur_ci) if timed else (None, None)
        category, p, detail = judge(metric, bv, cv, hib, rule, b_samples, c_samples, b_ci, c_ci, timed,
                                    inverse=metric in DERIVED_FROM_LATENCY)
        ratio = cv / bv if bv not in (0.0,) and not (math.isnan(bv) or math.isnan(cv)) else None
        n = (len(b_samples), len(c_samples)) if b_samples and c_samples else None
        changes.append(Change(category, ratio=ratio, p=p, n=n, detail=detail, **common))
    for rows, category in ((only_base, "missing"), (only_cur, "new")):
        for r in rows:
            v = _plain(r.get("value"))
            changes.append(Change(
                category, _label(r), r["metric"], r.get("unit"), _plain(r.get("higher_is_better")),
                baseline=v if category == "missing" else None, current=v if category == "new" else None,
                ratio=None, p=None, n=None, matched_by=None,
                baseline_id=r["point_id"] if category == "missing" else None,
                current_id=r["point_id"] if category == "new" else None,
                detail=f"status {r.get('status')}" if r.get("status") != "ok" else ""))
    order = {cat: i for i, cat in enumerate(CATEGORIES)}
    changes.sort(key=lambda ch: order[ch.category])  # stable: plan order within a category
    warnings = [w for w in (busy_warning(base, "baseline"), busy_warning(cur, "current")) if w]
    return Comparison(base.path, cur.path, changes, used, warnings)


def busy_warning(run: Run, role: str) -> str | None:
    """A line when most timed points of a run stopped at the time cap before their target (``noisy``):
    the machine did not hold still, and its timings say as much about the machine as about the code."""
    f = run.frame
    if "noisy" not in f.columns:
        return None
    noisy = f.loc[f.metric == "latency", "noisy"].map(_plain).dropna()
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
    known = set(DEFAULT_RULES) | set(base.frame.metric.dropna()) | set(cur.frame.metric.dropna())
    cli_all: dict[str, float] = {}
    cli: dict[str, dict[str, float]] = {}
    for option, values in (("--threshold", threshold), ("--alpha", alpha), ("--floor", floor)):
        everything, per = parse_option(option, values, known)
        cli_all.update(everything)
        for metric, fields in per.items():
            cli.setdefault(metric, {}).update(fields)
    return compare_runs(base, cur, RuleBook(suite=cur.rules, cli_all=cli_all, cli=cli))


# ---------------------------------------------------------------------------------------------
# Presenting


def format_value(value: float | None, unit: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:.4g} {name}"
        return f"{value / 1e-9:.4g} ns"
    if unit == "B":
        for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.4g} {name}"
        return f"{value:.0f} B"
    for scale, name in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{name}"
    return f"{value:.4g}"


def _change_text(c: Change) -> str:
    if c.ratio is None:
        return "-"
    return f"{(c.ratio - 1) * 100:+.1f} %"


def _cells(c: Change) -> list[str]:
    p = "-" if c.p is None else f"{c.p:.2g}"
    n = "-" if c.n is None else f"{c.n[0]}/{c.n[1]}"
    return [c.category, c.point, c.metric, format_value(c.baseline, c.unit), format_value(c.current, c.unit),
            _change_text(c), p, n, c.detail]


HEADER = ["", "point", "metric", "baseline", "current", "change", "p", "n", "why"]


def summary_line(cmp: Comparison) -> str:
    counts = ", ".join(f"{n} {cat}" for cat, n in cmp.counts().items())
    return f"{'FAIL' if cmp.failed else 'PASS'}: {counts}"


def format_table(cmp: Comparison, show_unchanged: bool = False) -> str:
    rows = [_cells(c) for c in cmp.changes if show_unchanged or c.category != "unchanged"]
    lines = [f"baseline: {cmp.baseline}", f"current:  {cmp.current}"]
    if rows:
        widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
        for r in [HEADER, *rows]:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    lines += [f"warning: {w}" for w in cmp.warnings]
    lines.append(summary_line(cmp))
    return "\n".join(lines)


def format_markdown(cmp: Comparison, show_unchanged: bool = False) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    counts = cmp.counts()
    verdict = "**FAIL**" if cmp.failed else "**PASS**"
    lines = [f"### archbench compare: {verdict}", "",
             " · ".join(f"{n} {cat}" for cat, n in counts.items()), "",
             f"baseline `{cmp.baseline}`, current `{cmp.current}`", ""]
    lines += [f"> **warning:** {w}\n" for w in cmp.warnings]
    rows = [_cells(c) for c in cmp.changes if show_unchanged or c.category != "unchanged"]
    if rows:
        lines.append("| " + " | ".join(h or "verdict" for h in HEADER) + " |")
        lines.append("|" + "---|" * len(HEADER))
        lines += ["| " + " | ".join(esc(cell) for cell in r) + " |" for r in rows]
        lines.append("")
    if cmp.rules:
        lines += ["<details><summary>rules</summary>", "", "| metric | threshold | alpha | floor |", "|---|---|---|---|"]
        lines += [f"| {m} | {r.threshold:g} | {r.alpha:g} | {r.floor:g} |" for m, r in sorted(cmp.rules.items())]
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def to_json(cmp: Comparison) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    changes = [{k: clean(v) if not isinstance(v, tuple) else list(v) for k, v in asdict(c).items()}
               for c in cmp.changes]
    doc = {"baseline": cmp.baseline, "current": cmp.current, "failed": cmp.failed, "counts": cmp.counts(),
           "warnings": cmp.warnings,
           "rules": {m: asdict(r) for m, r in sorted(cmp.rules.items())}, "changes": changes}
    return json.dumps(doc, indent=2)


FORMATS = {"table": format_table, "markdown": format_markdown}


def render(cmp: Comparison, fmt: str, show_unchanged: bool = False) -> str:
    if fmt == "json":
        return to_json(cmp)
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt!r} is not a format; allowed: table, json, markdown")
    return FORMATS[fmt](cmp, show_unchanged)
