"""archbench export: pytest-benchmark's saved JSON (read back by pytest-benchmark itself) and the
github-action-benchmark custom formats, one direction per file."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from archbench.cli import cli
from archbench.report.export import benchmark_stats, export

POINT = dict(experiment="latency", task="uniform", batch=4, seed=0, causal=True, device="cpu", dtype="float32",
             threads=1, status="ok", error=None)


@pytest.fixture
def results(tmp_path):
    """A results folder: two architectures timed (latency + throughput), one peak_memory, one failed point."""
    folder = tmp_path / "run"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows, samples = [], []
    for i, (arch, scale) in enumerate((("lstm", 1e-3), ("tcn", 2e-3))):
        pid = f"{i:012d}"
        s = list(rng.lognormal(np.log(scale), 0.05, 25 + i))
        med = float(np.median(s))
        common = dict(POINT, point_id=pid, arch=arch, arch_kind=arch, seq_len=64, **{"pass": "forward"},
                      **{"param.d_model": 32})
        rows += [
            dict(common, metric="latency", value=med, unit="s", higher_is_better=False, n=len(s), calls=2,
                 ci_low=med * 0.98, ci_high=med * 1.03),
            dict(common, metric="throughput", value=256 / med, unit="tokens/s", higher_is_better=True),
            dict(common, metric="peak_memory", value=1e6 * (i + 1), unit="B", higher_is_better=False),
        ]
        samples.append({"point_id": pid, "metric": "latency", "calls": 2, "samples": s})
    rows.append(dict(POINT, point_id="f" * 12, arch="transformer", arch_kind="transformer", seq_len=64,
                     metric="latency", value=np.nan, unit="s", higher_is_better=False, status="oom",
                     **{"pass": "forward"}))
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    (folder / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (folder / "meta.json").write_text(json.dumps({
        "suite": "unit", "started": "2026-11-27T07:00:00+00:00", "timing": {"min_samples": 5, "warmup": 0.02},
        "environment": {"host": "vm", "cpu": "AMD EPYC", "cpu_count": 2, "python": "3.11.7",
                        "platform": "Linux-6.1-x86_64-with-glibc2.36", "git": {"commit": "abc123", "dirty": False}},
    }))
    return folder, samples


def test_stats_match_pytest_benchmark():
    stats_mod = pytest.importorskip("pytest_benchmark.stats")
    rng = np.random.default_rng(1)
    for n in list(range(1, 12)) + [50, 101]:
        data = list(rng.lognormal(0, 0.3, n))
        theirs = stats_mod.Stats()
        for v in data:
            theirs.update(v)
        ours = benchmark_stats(data)
        for key, value in theirs.as_dict().items():
            assert ours[key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-12)), (n, key)


def test_pytest_benchmark_export(results, tmp_path):
    folder, samples = results
    doc = json.loads(export(folder, "pytest-benchmark"))
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(doc)
    assert doc["commit_info"]["id"] == "abc123"
    names = [b["name"] for b in doc["benchmarks"]]
    assert names == ["latency/lstm[forward,n=64,b=4]", "latency/tcn[forward,n=64,b=4]"]  # the oom point is left out
    b = doc["benchmarks"][1]
    assert b["stats"]["data"] == samples[1]["samples"] and b["stats"]["rounds"] == 26
    assert b["stats"]["median"] == pytest.approx(float(np.median(samples[1]["samples"])))
    assert b["stats"]["iterations"] == 2 and b["params"]["d_model"] == 32 and b["group"] == "latency forward n=64"


def test_pytest_benchmark_reads_the_export(results, tmp_path):
    pytest.importorskip("pytest_benchmark")
    folder, _ = results
    out = tmp_path / "0001_archbench.json"
    r = CliRunner().invoke(cli, ["export", str(folder), "--format", "pytest-benchmark", "-o", str(out)])
    assert r.exit_code == 0, r.output
    # pytest-benchmark's own loader, and its compare command
    from pytest_benchmark.storage.file import FileStorage

    storage = FileStorage(str(tmp_path), default_machine_id=None, logger=None)
    loaded = list(storage.load_benchmarks(str(out)))
    assert [b["name"] for b in loaded] == ["latency/lstm[forward,n=64,b=4]", "latency/tcn[forward,n=64,b=4]"]
    assert loaded[0]["median"] == pytest.approx(json.loads(out.read_text())["benchmarks"][0]["stats"]["median"])
    csv, other = tmp_path / "table", tmp_path / "0002_archbench.json"
    other.write_text(out.read_text())  # a second run to compare with (pytest-benchmark reads each file once)
    run = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(out), str(other),
                          "--columns=min,median,iqr", f"--csv={csv}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "latency/tcn[forward,n=64,b=4]" in run.stdout
    table = pd.read_csv(f"{csv}.csv")
    assert len(table) == 4 and table["median"].iloc[0] > 0


def test_github_action_benchmark_one_direction_per_file(results):
    folder, _ = results
    smaller = json.loads(export(folder, "github-action-benchmark", "smaller"))
    bigger = json.loads(export(folder, "github-action-benchmark", "bigger"))
    assert {e["unit"] for e in smaller} == {"s", "B"} and {e["unit"] for e in bigger} == {"tokens/s"}
    assert all(set(e) <= {"name", "unit", "value", "range", "extra"} and isinstance(e["value"], (int, float))
               for e in smaller + bigger)
    lat = [e for e in smaller if e["name"].startswith("latency ")]
    assert len(lat) == 2 and lat[0]["range"].startswith("± ")
    only = json.loads(export(folder, "github-action-benchmark", "smaller", ["peak_memory"]))
    assert [e["value"] for e in only] == [1e6, 2e6]


@pytest.mark.parametrize("args, says", [
    (["--format", "csv"], "--format 'csv' is not an export format; allowed: pytest-benchmark, github-action-benchmark"),
    (["--format", "github-action-benchmark", "--direction", "up"], "allowed: smaller, bigger"),
    (["--format", "github-action-benchmark", "--metric", "acuracy"], "--metric 'acuracy' is not in"),
    (["--format", "pytest-benchmark", "--metric", "peak_memory"], "holds latency only"),
])
def test_bad_input_exits_2_with_one_line(results, args, says):
    folder, _ = results
    r = CliRunner().invoke(cli, ["export", str(folder), *args])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]


def test_missing_results_is_bad_input(tmp_path):
    r = CliRunner().invoke(cli, ["export", str(tmp_path / "nope"), "--format", "pytest-benchmark"])
    assert r.exit_code == 2 and "does not exist" in r.output
