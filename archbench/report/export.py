"""A results folder in the formats of other benchmark tools.

    archbench export results/ci/<stamp> --format pytest-benchmark -o base.json
    pytest-benchmark compare base.json head.json             # pytest-benchmark's own table

    archbench export results/ci/<stamp> --format github-action-benchmark --direction smaller -o smaller.json
    archbench export results/ci/<stamp> --format github-action-benchmark --direction bigger -o bigger.json

**pytest-benchmark**: the JSON that ``pytest --benchmark-json`` saves (``machine_info``,
``commit_info``, ``benchmarks``, ``datetime``, ``version``), one benchmark per timed row (a
``latency`` with raw samples): ``stats`` are computed from the samples with pytest-benchmark's own
definitions (its quartiles, Tukey fences and ``ops`` = rounds / total), ``iterations`` is the calls
per sample, ``data`` the samples in seconds per call. The group is ``experiment pass n=…``, so
pytest-benchmark sets the architectures of one shape side by side.

**github-action-benchmark**: the ``customSmallerIsBetter`` / ``customBiggerIsBetter`` list of
``{name, unit, value, range, extra}``. The action takes one tool per file, so one file holds one
direction: ``--direction smaller`` (latency, peak memory, FLOPs, …) or ``bigger`` (throughput,
accuracy, …), by each row's ``higher_is_better``; ``--metric`` keeps only the metrics named.

This module reads files only; it never imports torch.
"""
from __future__ import annotations

import json
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from archbench.errors import BadInput
from archbench.results.check import finite_ok_values, read_meta
from archbench.results.load import Run, load_run, table_file
from archbench.results.values import plain

FORMATS = ("pytest-benchmark", "github-action-benchmark")
DIRECTIONS = ("smaller", "bigger")
PYTEST_BENCHMARK_VERSION = "5.1.0"  # the saved-JSON layout written here (unchanged since 3.x)


def benchmark_stats(data: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's ``Stats.as_dict()`` for these per-call times, by its own definitions."""
    if not data:
        raise ValueError("no samples")
    s = sorted(data)
    n = len(s)
    mean = statistics.mean(s)
    stddev = statistics.stdev(s) if n > 1 else 0.0
    if n == 1:
        q1 = q3 = s[0]
    elif n % 2:  # method 3 of https://en.wikipedia.org/wiki/Quartile#Computing_methods
        k, r = n // 4, n % 4
        q1 = 0.25 * s[k - 1] + 0.75 * s[k] if r == 1 else 0.75 * s[k] + 0.25 * s[k + 1]
        q3 = 0.75 * s[3 * k] + 0.25 * s[3 * k + 1] if r == 1 else 0.25 * s[3 * k + 1] + 0.75 * s[3 * k + 2]
    else:  # method 2
        q1, q3 = statistics.median(s[: n // 2]), statistics.median(s[n // 2:])
    iqr = q3 - q1
    ld15 = s[0] if n == 1 else s[bisect_left(s, q1 - 1.5 * iqr)]
    hd15 = s[0] if n == 1 else s[bisect_right(s, q3 + 1.5 * iqr) - 1]
    iqr_out = sum(v < q1 - 1.5 * iqr or v > q3 + 1.5 * iqr for v in s)
    sd_out = sum(v < mean - stddev or v > mean + stddev for v in s)
    total = sum(data)
    return {
        "min": s[0], "max": s[-1], "mean": mean, "stddev": stddev, "rounds": n,
        "median": statistics.median(s), "iqr": iqr, "q1": q1, "q3": q3,
        "iqr_outliers": iqr_out, "stddev_outliers": sd_out, "outliers": f"{sd_out};{iqr_out}",
        "ld15iqr": ld15, "hd15iqr": hd15, "ops": n / total if total else 0, "total": total,
    }


def _params(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: plain(row.get(k)) for k in ("seq_len", "batch", "pass", "seed", "causal", "device", "dtype", "threads")}
    out.update({k.removeprefix("param."): plain(v) for k, v in row.items()
                if str(k).startswith("param.") and plain(v) is not None})
    return out


def _name(row: dict[str, Any]) -> str:
    causal = "" if plain(row.get("causal")) in (True, None) else ",bidirectional"
    seed = plain(row.get("seed"))
    seed = f",seed={seed}" if seed not in (0, None) else ""
    return (f"{row['experiment']}/{row['arch']}[{row['pass']},n={plain(row['seq_len'])},"
            f"b={plain(row['batch'])}{causal}{seed}]")


def _meta(folder: Path) -> dict[str, Any]:
    return read_meta(folder)


def to_pytest_benchmark(run: Run, folder: Path) -> dict[str, Any]:
    meta = _meta(folder)
    env = meta.get("environment") or {}
    git = env.get("git") or {}
    platform = str(env.get("platform") or "")
    suite = meta.get("suite") or ""
    benchmarks = []
    for row in run.frame.to_dict("records"):
        samples = run.samples.get((row["point_id"], row["metric"]))
        if row["metric"] != "latency" or row.get("status") != "ok" or not samples:
            continue
        name = _name(row)
        stats = benchmark_stats(samples)
        stats["data"] = list(samples)
        stats["iterations"] = plain(row.get("calls")) or 1
        benchmarks.append({
            "group": f"{row['experiment']} {row['pass']} n={plain(row['seq_len'])}",
            "name": name, "fullname": f"archbench/{suite}/{name}", "params": _params(row),
            "param": f"{row['arch']}-{row['pass']}-{plain(row['seq_len'])}",
            "extra_info": {"point_id": row["point_id"], "unit": "s", "archbench_median": plain(row.get("value")),
                           "noisy": plain(row.get("noisy")), "cold": plain(row.get("cold"))},
            "options": {"disable_gc": False, "timer": "perf_counter" if row.get("device") == "cpu" else "cuda_event",
                        "min_rounds": (meta.get("timing") or {}).get("min_samples"),
                        "max_time": (meta.get("timing") or {}).get("max_time"),
                        "min_time": (meta.get("timing") or {}).get("min_time"),
                        "warmup": (meta.get("timing") or {}).get("warmup", 0) > 0},  # checked: a number
            "stats": stats,
        })
    if not benchmarks:
        raise BadInput(f"{str(folder)!r} has no timed rows (latency with raw samples) to export to pytest-benchmark")
    return {
        "machine_info": {
            "node": env.get("host"), "processor": env.get("cpu"), "machine": platform.split("-")[2] if
            platform.count("-") >= 2 else "", "python_implementation": "CPython",
            "python_version": env.get("python"), "release": platform.split("-")[1] if platform.count("-") >= 1 else "",
            "system": platform.split("-")[0] if platform else "",
            "cpu": {"brand_raw": env.get("cpu"), "count": env.get("cpu_count")},
            "archbench": {k: env.get(k) for k in ("archbench", "torch", "cuda", "cuda_device", "gpus")},
            "device_peak": meta.get("device_peak"),
        },
        "commit_info": {"id": git.get("commit"), "dirty": git.get("dirty"), "project": "archbench",
                        "branch": git.get("branch"), "time": meta.get("started")},
        "benchmarks": benchmarks,
        "datetime": meta.get("started") or "",
        "version": PYTEST_BENCHMARK_VERSION,
    }


def to_github_action_benchmark(run: Run, direction: str, metrics: Iterable[str] = ()) -> list[dict[str, Any]]:
    metrics = set(metrics)
    bigger = direction == "bigger"
    out = []
    for row in run.frame.to_dict("records"):
        value = plain(row.get("value"))
        if row.get("status") != "ok" or value is None or (metrics and row["metric"] not in metrics):
            continue
        if row["higher_is_better"] != bigger:  # parsed by the reader: True or False
            continue
        entry: dict[str, Any] = {"name": f"{row['metric']} {_name(row)}", "unit": str(row.get("unit")),
                                 "value": value}
        lo, hi = plain(row.get("ci_low")), plain(row.get("ci_high"))
        if lo is not None and hi is not None:
            entry["range"] = f"± {max(value - lo, hi - value):.4g}"
            entry["extra"] = f"point {row['point_id']}; median of {plain(row.get('n'))} samples, 95% CI [{lo:.4g}, {hi:.4g}]"
        else:
            entry["extra"] = f"point {row['point_id']}"
        out.append(entry)
    if not out:
        which = f" of metric {', '.join(sorted(metrics))}" if metrics else ""
        raise BadInput(f"{run.path!r} has no ok rows{which} where {direction} is better; "
                       f"try --direction {'smaller' if bigger else 'bigger'}")
    return out


def export(results: str | Path, fmt: str, direction: str = "smaller", metrics: Sequence[str] = ()) -> str:
    """The export as JSON text; BadInput for an unknown format, direction or metric."""
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt!r} is not an export format; allowed: {', '.join(FORMATS)}")
    if direction not in DIRECTIONS:
        raise BadInput(f"--direction {direction!r} is not a direction; allowed: {', '.join(DIRECTIONS)}")
    path = Path(results)
    run = load_run(path, "RESULTS")
    folder = path if path.is_dir() else path.parent
    finite_ok_values(run.frame, table_file(path), "RESULTS ")
    missing = [c for c in ("experiment", "arch", "pass", "seq_len", "batch") if c not in run.frame.columns]
    if missing:
        raise BadInput(f"RESULTS {str(table_file(path))!r}: has no column {missing[0]!r} (an export names each row by it)")
    if metrics:
        present = set(run.frame.metric.dropna())
        for m in metrics:
            if m not in present:
                raise BadInput(f"--metric {m!r} is not in {str(path)!r}; its metrics: {', '.join(sorted(present))}")
    if fmt == "pytest-benchmark":
        if metrics and set(metrics) != {"latency"}:
            raise BadInput("--metric: the pytest-benchmark export holds latency only (the metric with raw samples)")
        doc: Any = to_pytest_benchmark(run, folder)
    else:
        doc = to_github_action_benchmark(run, direction, metrics)
    return json.dumps(doc, indent=2, default=str) + "\n"
