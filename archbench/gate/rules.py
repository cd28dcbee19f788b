"""The gate's rules: when a change of one metric counts.

Rules come from :data:`DEFAULT_RULES`, then the current run's suite (``compare:``, metric name →
``{threshold, alpha, floor}``, validated by the suite's own schema), then the command line, which wins.

    RuleBook(suite=rules_of("results/ci/head"), cli_all={"threshold": 0.2}).rule("latency")
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from archbench.errors import BadInput
from archbench.registry import unknown_name_message
from archbench.results.check import read_text
from archbench.suite.schema import MetricRule
from archbench.suite.yaml import read_yaml

# Metrics that are a number over the point's latency: they are timed by the latency's samples
# (a rank test gives the same p for 1/x as for x).
DERIVED_FROM_LATENCY = ("throughput", "achieved_flops", "mfu")


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
    # Callgrind's count: unchanged code moves it 0.3 % at most between runs, so 1 % is a change of the
    # code. Its raw counts are tested too; alpha 0.05, because 5 against 5 tied counts give p >= 0.012.
    "instructions": Rule(threshold=0.01, alpha=0.05),
    "flops": EXACT, "graph_work": EXACT, "graph_depth": EXACT, "parallelism": EXACT,
    "max_path_length": EXACT, "rf_theoretical": EXACT, "rf_empirical": EXACT,
    "erf_50": EXACT, "erf_90": EXACT, "erf_99": EXACT,
    "layers_to_cover": EXACT, "layers_to_cover_theory": EXACT,
    "accuracy": Rule(threshold=0.0, floor=0.02), "baseline_accuracy": Rule(threshold=0.0, floor=0.02),
    "loss": Rule(threshold=0.05, floor=0.01), "baseline_loss": Rule(threshold=0.05, floor=0.01),
    "steps_to_threshold": Rule(threshold=0.10, floor=0.0),
    "train_time": Rule(threshold=1.0, floor=0.5),  # one wall time, no samples: only a doubling counts
    "time_to_threshold": Rule(threshold=1.0, floor=0.5),
    "converged": EXACT, "train_steps": Rule(threshold=0.10, floor=0.0),
    "train_flops": Rule(threshold=0.10, floor=0.0), "flops_to_threshold": Rule(threshold=0.10, floor=0.0),
}

_RULES = TypeAdapter(dict[str, MetricRule])


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
    data = read_yaml(text, source)
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


def rules_of(path: str | Path) -> dict[str, dict[str, float]]:
    """The ``compare:`` rules of the suite saved with a run (``suite.yaml`` beside its results)."""
    path = Path(path)
    suite_file = (path if path.is_dir() else path.parent) / "suite.yaml"
    if not suite_file.is_file() and not suite_file.is_symlink():
        return {}
    return suite_rules(read_text(suite_file), str(suite_file))


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
            raise BadInput(f"{option} {text!r}: {unknown_name_message('metric', metric, known)}")
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
