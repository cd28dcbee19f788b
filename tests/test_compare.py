"""The regression gate: Mann–Whitney U against scipy, verdicts on synthetic samples, rules, the CLI,
and end to end: two runs of unchanged code compare clean, a slower architecture is caught."""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from archbench import registry
from archbench.architectures.tcn import TCN
from archbench.cli import cli
from archbench.errors import BadInput
from archbench.gate.judge import compare, compare_runs, judge
from archbench.gate.mann_whitney import mann_whitney_u
from archbench.gate.render import render
from archbench.gate.rules import DEFAULT_RULES, DERIVED_FROM_LATENCY, Rule, RuleBook, parse_option
from archbench.instruments.timing import Measurement
from archbench.parameters import PositiveInt
from archbench.results.load import load_run

# ------------------------------------------------------------------------------------------ MWU


def test_mann_whitney_exact_small_table():
    # x entirely below y, 3 against 3: U = 0, and P(U <= 0) = 1 / C(6, 3) = 1/20, two-sided 0.1
    r = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert (r.u, r.method) == (0.0, "exact")
    assert r.p == pytest.approx(0.1, abs=1e-15)
    # identical samples: U = n1 n2 / 2 and p = 1
    assert mann_whitney_u([1.0] * 20, [1.0] * 20).p == 1.0


def test_mann_whitney_matches_scipy():
    st = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    for trial in range(200):
        n1, n2 = (int(v) for v in rng.integers(1, 40, 2))
        x, y = rng.lognormal(0, 0.3, n1), rng.lognormal(rng.uniform(0, 0.5), 0.3, n2)
        if trial % 3 == 0:  # ties
            x, y = np.round(x, 1), np.round(y, 1)
        methods = ["auto", "asymptotic"]
        if len(np.unique(np.concatenate([x, y]))) == n1 + n2:
            methods.append("exact")
        for method in methods:
            ours, theirs = mann_whitney_u(x, y, method), st.mannwhitneyu(x, y, method=method)
            assert ours.u == pytest.approx(theirs.statistic, abs=1e-9)
            assert ours.p == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300), (n1, n2, method)


def test_mann_whitney_refuses_empty_and_nan():
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError):
        mann_whitney_u([math.nan], [1.0])
    with pytest.raises(ValueError):
        mann_whitney_u([1.0, 1.0], [2.0], method="exact")


# ------------------------------------------------------------------------------- judge, synthetic

LAT = DEFAULT_RULES["latency"]


def _samples(seed: int, n: int, median: float, sigma: float) -> list[float]:
    return list(np.random.default_rng(seed).lognormal(math.log(median), sigma, n))


def _judge_timed(base: list[float], cur: list[float], hib: bool = False, rule: Rule = LAT):
    return judge(float(np.median(base)), float(np.median(cur)), hib, rule, base, cur, timed=True)


def test_identical_distributions_are_never_called():
    for seed in range(20):
        base, cur = _samples(seed, 40, 1e-3, 0.05), _samples(seed + 100, 40, 1e-3, 0.05)
        assert _judge_timed(base, cur)[0] == "unchanged"


def test_a_30_percent_slowdown_with_enough_samples_is_a_regression():
    base, cur = _samples(1, 40, 1e-3, 0.05), _samples(2, 40, 1.3e-3, 0.05)
    category, p, _ = _judge_timed(base, cur)
    assert category == "regressed" and p < 1e-6
    # and the same the other way round is an improvement
    assert _judge_timed(cur, base)[0] == "improved"


def test_a_30_percent_shift_inside_the_noise_of_few_samples_is_not_called():
    # 3 against 3: the smallest two-sided p the test can give is 0.1, whatever the shift
    base, cur = [1.0e-3, 1.1e-3, 0.9e-3], [1.3e-3, 1.4e-3, 1.2e-3]
    category, p, detail = _judge_timed(base, cur)
    assert category == "unchanged" and p == pytest.approx(0.1) and "not significant" in detail
    # 10 against 10 with a spread larger than the shift: the medians differ by 30 %, the test says noise
    base, cur = _samples(3, 10, 1e-3, 0.6), _samples(4, 10, 1e-3, 0.6)
    cur = [v * 1.3 for v in cur]
    ratio = np.median(cur) / np.median(base)
    category, p, _ = _judge_timed(base, cur)
    assert ratio > 1.1 and p > 0.01 and category == "unchanged"


def test_threshold_and_floor_each_block_a_call():
    base, cur = _samples(5, 60, 1e-3, 0.01), _samples(6, 60, 1.05e-3, 0.01)  # 5 %, very significant
    category, p, detail = _judge_timed(base, cur)
    assert p < 1e-10 and category == "unchanged" and "within 10%" in detail
    base, cur = _samples(5, 60, 0.5e-6, 0.01), _samples(6, 60, 0.8e-6, 0.01)  # +60 % but 0.3 µs
    category, _, detail = _judge_timed(base, cur)
    assert category == "unchanged" and "below floor" in detail


def test_throughput_direction_higher_is_better():
    rule = DEFAULT_RULES["throughput"]
    lat_base, lat_cur = _samples(7, 40, 1e-3, 0.05), _samples(8, 40, 1.3e-3, 0.05)
    # slower calls: throughput falls, which is worse when higher is better
    assert judge(1000.0, 1000 / 1.3, True, rule, lat_base, lat_cur, timed=True,
                 inverse=True)[0] == "regressed"
    assert judge(1000 / 1.3, 1000.0, True, rule, lat_cur, lat_base, timed=True,
                 inverse=True)[0] == "improved"
    # a value that moved against its samples (mfu over a peak measured again) is not called
    category, _, detail = judge(0.5, 0.6, True, DEFAULT_RULES["mfu"], lat_base, lat_cur, timed=True,
                                inverse=True)
    assert category == "unchanged" and "other way" in detail


def test_untimed_tolerances():
    acc = DEFAULT_RULES["accuracy"]
    assert judge(0.95, 0.92, True, acc)[0] == "regressed"      # dropped 0.03 > 0.02
    assert judge(0.95, 0.94, True, acc)[0] == "unchanged"      # dropped 0.01
    assert judge(0.90, 0.95, True, acc)[0] == "improved"
    flops = DEFAULT_RULES["flops"]
    assert judge(1e9, 1e9, False, flops)[0] == "unchanged"
    assert judge(1e9, 1e9 + 2, False, flops)[0] == "regressed"   # a count: any change
    mem = DEFAULT_RULES["peak_memory"]
    assert judge(1e6, 1.04e6, False, mem)[0] == "unchanged"
    assert judge(1e6, 1.2e6, False, mem)[0] == "regressed"


# ---------------------------------------------------------------------- synthetic results folders

POINT = dict(experiment="latency", arch="tcn", arch_kind="tcn", task="uniform", seq_len=64, batch=4,
             seed=0, causal=True, device="cpu", dtype="float32", threads=1)


def _write_run(folder, rows, samples=(), suite_extra=""):
    """A results folder: results.csv from rows, samples.jsonl, suite.yaml (with suite_extra appended)."""
    folder.mkdir(parents=True)
    frame = pd.DataFrame([{**POINT, "pass": "forward", "status": "ok", "error": None, **r} for r in rows])
    frame.to_csv(folder / "results.csv", index=False)
    with open(folder / "samples.jsonl", "w") as f:
        for pid, metric, vals in samples:
            f.write(json.dumps({"point_id": pid, "metric": metric, "calls": 1, "samples": list(vals)}) + "\n")
    (folder / "suite.yaml").write_text("name: synthetic\nexperiments: []\n" + suite_extra)
    return folder


def _timed_rows(pid, samples, tokens=256, **extra):
    med = float(np.median(samples))
    return [
        {"point_id": pid, "metric": "latency", "value": med, "unit": "s", "higher_is_better": False,
         "n": len(samples), **extra},
        {"point_id": pid, "metric": "throughput", "value": tokens / med, "unit": "tokens/s",
         "higher_is_better": True, **extra},
    ]


def _run_pair(tmp_path, factor, n=40, suite_extra="", base_extra=(), cur_extra=()):
    base_s, cur_s = _samples(11, n, 1e-3, 0.03), [v * factor for v in _samples(12, n, 1e-3, 0.03)]
    base = _write_run(tmp_path / "base", _timed_rows("aaaaaaaaaaaa", base_s) + list(base_extra),
                      [("aaaaaaaaaaaa", "latency", base_s)])
    cur = _write_run(tmp_path / "cur", _timed_rows("aaaaaaaaaaaa", cur_s) + list(cur_extra),
                     [("aaaaaaaaaaaa", "latency", cur_s)], suite_extra)
    return base, cur


def test_folders_slowdown_regresses_latency_and_throughput(tmp_path):
    base, cur = _run_pair(tmp_path, 1.3)
    cmp = compare(base, cur)
    verdict = {c.metric: c.category for c in cmp.changes}
    assert verdict == {"latency": "regressed", "throughput": "regressed"}
    assert cmp.failed and cmp.exit_code == 1
    thr = next(c for c in cmp.changes if c.metric == "throughput")
    assert thr.n == (40, 40) and thr.p < 1e-6  # throughput is tested on the latency's samples


def test_suite_rules_apply_and_the_command_line_wins(tmp_path):
    base, cur = _run_pair(tmp_path, 1.3, suite_extra="compare:\n  latency: {threshold: 0.5}\n")
    cmp = compare(base, cur)  # throughput is a number over the latency: it follows latency's threshold
    assert {c.metric: c.category for c in cmp.changes} == {"latency": "unchanged", "throughput": "unchanged"}
    assert cmp.rules["latency"] == Rule(threshold=0.5, alpha=0.01, floor=1e-6)
    base, cur = _run_pair(tmp_path / "own", 1.3,
                          suite_extra="compare:\n  latency: {threshold: 0.5}\n  throughput: {threshold: 0.1}\n")
    cmp = compare(base, cur)  # unless it has its own
    assert {c.metric: c.category for c in cmp.changes} == {"latency": "unchanged", "throughput": "regressed"}
    cmp = compare(base, cur, threshold=["0.6", "latency=0.2"])  # for one metric beats for all
    assert {c.metric: c.category for c in cmp.changes} == {"latency": "regressed", "throughput": "unchanged"}
    cmp = compare(base, cur, alpha=["1e-300"])
    assert not cmp.failed


def test_failed_missing_new_and_matching_by_description(tmp_path):
    extra_b = [
        {"point_id": "bbbbbbbbbbbb", "metric": "peak_memory", "value": 1e6, "unit": "B", "higher_is_better": False,
         "seq_len": 128},
        {"point_id": "cccccccccccc", "metric": "flops", "value": 5.0, "unit": "FLOP", "higher_is_better": False,
         "seq_len": 256},
        # same point as "dddd..." of the current run but another id and another arch parameter
        {"point_id": "dddddddddddd", "metric": "flops", "value": 7.0, "unit": "FLOP", "higher_is_better": False,
         "seq_len": 512, "param.levels": 2},
    ]
    extra_c = [
        {"point_id": "bbbbbbbbbbbb", "metric": "peak_memory", "value": math.nan, "unit": "B",
         "higher_is_better": False, "seq_len": 128, "status": "oom", "error": "out of memory"},
        {"point_id": "eeeeeeeeeeee", "metric": "flops", "value": 9.0, "unit": "FLOP", "higher_is_better": False,
         "seq_len": 1024},
        {"point_id": "ffffffffffff", "metric": "flops", "value": 7.0, "unit": "FLOP", "higher_is_better": False,
         "seq_len": 512, "param.levels": 3},
    ]
    base, cur = _run_pair(tmp_path, 1.0, base_extra=extra_b, cur_extra=extra_c)
    cmp = compare(base, cur)
    by = {(c.metric, c.category) for c in cmp.changes}
    assert ("peak_memory", "failed") in by and ("flops", "missing") in by and ("flops", "new") in by
    matched = next(c for c in cmp.changes if c.baseline_id == "dddddddddddd")
    assert (matched.current_id, matched.matched_by, matched.category) == ("ffffffffffff", "description", "unchanged")
    assert cmp.counts()["failed"] == 1 and cmp.exit_code == 1
    failed = cmp.of("failed")[0]
    assert "ok -> oom" in failed.detail


def test_without_samples_the_confidence_intervals_decide(tmp_path):
    base, cur = _run_pair(tmp_path, 1.3)
    (base / "samples.jsonl").unlink()
    frame = pd.read_csv(base / "results.csv")
    frame.loc[frame.metric == "latency", ["ci_low", "ci_high"]] = [0.98e-3, 1.02e-3]
    frame.to_csv(base / "results.csv", index=False)
    frame = pd.read_csv(cur / "results.csv")
    frame.loc[frame.metric == "latency", ["ci_low", "ci_high"]] = [1.27e-3, 1.33e-3]
    frame.to_csv(cur / "results.csv", index=False)
    cmp = compare(base / "results.csv", cur / "results.csv")
    lat = next(c for c in cmp.changes if c.metric == "latency")
    assert lat.category == "regressed" and "disjoint" in lat.detail and lat.p is None


def test_a_busy_machine_is_named(tmp_path):
    base, cur = _run_pair(tmp_path, 1.0)
    assert compare(base, cur).warnings == []  # before any point is marked noisy
    frame = pd.read_csv(cur / "results.csv")
    frame["noisy"] = frame.metric == "latency"
    frame.to_csv(cur / "results.csv", index=False)
    cmp = compare(base, cur)
    assert len(cmp.warnings) == 1 and "1 of 1 timed points of the current run are noisy" in cmp.warnings[0]
    assert "warning: 1 of 1" in render(cmp, "table") and json.loads(render(cmp, "json"))["warnings"]


def test_slow_down_scales_timed_values_and_samples(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from calibrate_gate import slow_down

    base, _ = _run_pair(tmp_path, 1.0)
    run = load_run(base)
    slow = slow_down(run, 0.25)
    f0, f1 = run.frame.set_index("metric"), slow.frame.set_index("metric")
    assert f1.loc["latency", "value"] == pytest.approx(1.25 * f0.loc["latency", "value"])
    assert f1.loc["throughput", "value"] == pytest.approx(f0.loc["throughput", "value"] / 1.25)
    key = ("aaaaaaaaaaaa", "latency")
    assert slow.samples[key] == pytest.approx([1.25 * v for v in run.samples[key]])
    assert compare_runs(run, slow).of("regressed") and not compare_runs(run, run).of("regressed")


def test_parse_option():
    assert parse_option("--threshold", ["0.2", "latency=0.15"], {"latency"}) == ({"threshold": 0.2},
                                                                                  {"latency": {"threshold": 0.15}})
    for bad in (["latncy=0.1"], ["latency=x"], ["-1"], ["=1"]):
        with pytest.raises(BadInput):
            parse_option("--threshold", bad, {"latency"})
    with pytest.raises(BadInput, match=r"allowed: a number in \(0, 1\)"):
        parse_option("--alpha", ["1.5"], {"latency"})


def test_rulebook_precedence():
    book = RuleBook(suite={"latency": {"threshold": 0.3, "floor": 0.0}}, cli_all={"threshold": 0.2},
                    cli={"latency": {"alpha": 0.05}})
    assert book.rule("latency") == Rule(threshold=0.2, alpha=0.05, floor=0.0)
    assert book.rule("accuracy") == Rule(threshold=0.2, alpha=0.01, floor=0.02)


def test_numbers_over_the_latency_follow_its_threshold_and_level():
    book = RuleBook(suite={"latency": {"threshold": 0.25, "floor": 5e-6}}, cli={"latency": {"alpha": 0.001}})
    for metric in ("throughput", "achieved_flops", "mfu"):
        rule = book.rule(metric)
        assert (rule.threshold, rule.alpha) == (0.25, 0.001)
        assert rule.floor == DEFAULT_RULES[metric].floor  # a floor is in the metric's own unit
    own = RuleBook(suite={"latency": {"threshold": 0.25}, "mfu": {"threshold": 0.05}})
    assert own.rule("mfu").threshold == 0.05 and own.rule("throughput").threshold == 0.25


# ------------------------------------------------------------------------------------------ CLI


def test_cli_exit_codes_and_formats(tmp_path):
    same, again = _run_pair(tmp_path / "same", 1.0)  # two draws of one distribution
    runner = CliRunner()
    r = runner.invoke(cli, ["compare", str(same), str(again)])
    assert r.exit_code == 0 and "PASS" in r.output
    base, cur = _run_pair(tmp_path, 1.3)
    r = runner.invoke(cli, ["compare", str(base), str(cur)])
    assert r.exit_code == 1 and "regressed" in r.output and "FAIL" in r.output
    r = runner.invoke(cli, ["compare", str(base), str(cur), "--format", "json"])
    doc = json.loads(r.output)
    assert r.exit_code == 1 and doc["failed"] and doc["counts"]["regressed"] == 2
    r = runner.invoke(cli, ["compare", str(base), str(cur), "--format", "markdown"])
    assert r.exit_code == 1 and r.output.startswith("### archbench compare: **FAIL**") and "| regressed |" in r.output
    r = runner.invoke(cli, ["compare", str(base), str(cur), "--threshold", "latency=0.5", "--threshold",
                            "throughput=0.5"])
    assert r.exit_code == 0


@pytest.mark.parametrize("args, says", [
    (["nowhere", "{cur}"], "BASELINE 'nowhere' does not exist"),
    (["{base}", "{base}/suite.yaml"], "not a results folder, results.csv or records.jsonl"),
    (["{base}", "{cur}", "--format", "yaml"], "--format 'yaml' is not a format; allowed: table, json, markdown"),
    (["{base}", "{cur}", "--threshold", "latncy=0.1"], "did you mean 'latency'?"),
    (["{base}", "{cur}", "--alpha", "0"], "allowed: a number in (0, 1)"),
    (["{base}", "{cur}", "--floor", "latency=abc"], "'abc' is not a number"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    base, cur = _run_pair(tmp_path, 1.0)
    args = [a.format(base=base, cur=cur) for a in args]
    r = CliRunner().invoke(cli, ["compare", *args])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]


def test_bad_rules_in_the_current_runs_suite_are_bad_input(tmp_path):
    base, cur = _run_pair(tmp_path, 1.0, suite_extra="compare:\n  latency: {treshold: 0.2}\n")
    r = CliRunner().invoke(cli, ["compare", str(base), str(cur)])
    assert r.exit_code == 2
    assert "compare.latency: unknown key 'treshold'; allowed: threshold, alpha, floor" in r.output


def test_render_refuses_an_unknown_format(tmp_path):
    base, _ = _run_pair(tmp_path, 1.0)
    cmp = compare(base, base)
    with pytest.raises(BadInput):
        render(cmp, "html")


# ----------------------------------------------------------------------------------- end to end


class RepeatTCN(TCN):
    """Test only: a TCN whose forward runs ``repeat`` times, a slower architecture with the same output."""

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 16, levels: PositiveInt = 2,
                 repeat: PositiveInt = 1):
        super().__init__(vocab_size, causal, d_model=d_model, levels=levels)
        self.repeat = repeat

    def forward(self, x):
        for _ in range(self.repeat - 1):
            super().forward(x)
        return super().forward(x)


SUITE = """name: gate
device: cpu
threads: 1
timing: {{min_samples: 20, min_time: 0.1, max_time: 0.4, target: {target}, warmup: 0.02, clock: thread_cpu}}
compare:  # the rules of suites/ci.yaml: above the run-to-run drift of unchanged code on a small VM
  latency: {{threshold: 0.2}}
experiments:
  - name: speed
    architectures:
{architectures}
    metrics: [latency, flops]
    sweep: {{seq_len: 32, batch: 2}}
"""
ARCH = "      - {{kind: repeat_tcn, label: {label}, repeat: {repeat}, d_model: 16, levels: 2}}"


LOAD: dict[str, dict[str, float]] = {}  # run name -> how much of the machine it had (see _run)


def _busy_cpu_seconds() -> float | None:
    """CPU seconds every process of the machine has run (Linux /proc/stat), None elsewhere."""
    try:
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _run(root, name, *archs, target=0.02):
    suite = root / f"{name}.yaml"
    archs_text = "\n".join(ARCH.format(label=a, repeat=k) for a, k in archs)
    suite.write_text(SUITE.format(architectures=archs_text, target=target))
    wall, cpu, busy = time.perf_counter(), time.process_time(), _busy_cpu_seconds()
    r = CliRunner().invoke(cli, ["run", str(suite), "--out", str(root / name), "--no-report", "--no-progress"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    others = (_busy_cpu_seconds() - busy - cpu) / wall if busy is not None else 0.0
    # own: the share of a core the run got; others: cores' worth of other processes meanwhile (they share
    # caches, memory bandwidth and, on a small VM, the physical core with us)
    LOAD[name] = {"own": round(cpu / wall, 3), "others": round(max(others, 0.0), 3)}
    assert r.exit_code == 0, r.output
    return next((root / name / "gate").iterdir())


def _split(folder, label, to):
    """The rows of one architecture label of a run, as a results folder of their own, named ``tcn``."""
    to.mkdir()
    frame = pd.read_csv(folder / "results.csv")
    frame = frame[frame.arch == label].assign(arch="tcn")
    frame.to_csv(to / "results.csv", index=False)
    (to / "samples.jsonl").write_text((folder / "samples.jsonl").read_text())
    return to


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run of the code (repeat 1), of the same suite made 4 times slower (repeat 4), and one run timing
    the same model twice side by side. (Two runs of unchanged code seconds apart differ by the machine's
    drift, not by anything archbench does: that check is benchmarks/test_gate_two_runs.py.)"""
    registry.architectures.add("repeat_tcn", RepeatTCN, source="tests.test_compare")
    root = tmp_path_factory.mktemp("gate")
    try:
        _run(root, "warmup", ("tcn", 1))  # in CI each run is a fresh process; here the first pays for all
        out = {name: _run(root, name, ("tcn", k)) for name, k in (("a", 1), ("slow", 4))}
        # the same model twice in one run: timed in alternation (A B A B), under the same machine load; a
        # target out of reach keeps both sampling to max_time, so neither stops before the other's window ends
        both = _run(root, "twins", ("tcn", 1), ("twin", 1), target=1e-6)
        out["twin_a"], out["twin_b"] = _split(both, "tcn", root / "twin_a"), _split(both, "twin", root / "twin_b")
    finally:
        registry.architectures.remove("repeat_tcn")
    return out


def test_unchanged_code_timed_side_by_side_compares_clean(runs):
    cmp = compare(runs["twin_a"], runs["twin_b"])
    assert [c.category for c in cmp.changes if c.category != "unchanged"] == [], render(cmp, "table", True)
    assert {c.matched_by for c in cmp.changes} == {"parameters"}  # the label is in the id


def _redrawn(folder, to, seed):
    """``folder`` as another run of the same code on the same machine gives it: each timed point's samples
    drawn anew, with replacement, from its own (the same distribution), and what follows from them
    computed again: the latency and its statistics, throughput, achieved_flops and mfu."""
    shutil.copytree(folder, to)
    rng = np.random.default_rng(seed)
    frame = pd.read_csv(to / "results.csv")
    redrawn = []
    for line in (to / "samples.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["metric"] == "latency":
            before = Measurement(tuple(entry["samples"]))
            entry["samples"] = [float(v) for v in rng.choice(entry["samples"], len(entry["samples"]))]
            after = Measurement(tuple(entry["samples"]))
            lat = (frame.point_id == entry["point_id"]) & (frame.metric == "latency")
            for key in ("median", "iqr", "p20", "p80", "mean", "std", "ci_low", "ci_high"):
                frame.loc[lat, key] = getattr(after, key)
            frame.loc[lat, "value"] = after.median
            derived = (frame.point_id == entry["point_id"]) & frame.metric.isin(DERIVED_FROM_LATENCY)
            frame.loc[derived, "value"] *= before.median / after.median
        redrawn.append(json.dumps(entry))
    frame.to_csv(to / "results.csv", index=False)
    (to / "samples.jsonl").write_text("\n".join(redrawn) + "\n")
    return to


@pytest.mark.parametrize("seed", range(5))
def test_two_runs_of_unchanged_code_compare_clean(runs, tmp_path, seed):
    # the second run's timed samples come from the same distribution as the first's: nothing changed,
    # whatever the machine did while the first ran; compared through the folders, as CI compares them
    again = _redrawn(runs["a"], tmp_path / "again", seed)
    cmp = compare(runs["a"], again)
    assert {c.metric for c in cmp.changes} == {"latency", "throughput", "achieved_flops", "mfu", "flops"}
    assert [c.category for c in cmp.changes if c.category != "unchanged"] == [], render(cmp, "table", True)
    assert {c.matched_by for c in cmp.changes} == {"id"}
    lat = next(c for c in cmp.changes if c.metric == "latency")
    assert lat.p is not None and lat.n == (len(_latency_samples(runs["a"])),) * 2  # judged on the samples
    r = CliRunner().invoke(cli, ["compare", str(runs["a"]), str(again)])
    assert r.exit_code == 0 and "0 regressed" in r.output and "0 improved" in r.output


def _latency_samples(folder):
    """The latency samples of the one timed point of a run of SUITE."""
    [entry] = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()
               if json.loads(line)["metric"] == "latency"]
    return entry["samples"]


def test_a_four_times_slower_architecture_is_caught(runs):
    r = CliRunner().invoke(cli, ["compare", str(runs["a"]), str(runs["slow"]), "--format", "json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    lat = next(c for c in doc["changes"] if c["metric"] == "latency")
    assert lat["category"] == "regressed" and lat["matched_by"] == "description" and lat["ratio"] > 2
    assert lat["baseline_id"] != lat["current_id"]  # `repeat` is in the id
    flops = next(c for c in doc["changes"] if c["metric"] == "flops")
    assert flops["category"] == "unchanged"  # the same analytic count: only the time changed


@pytest.mark.parametrize("rules, says", [
    ("{latency: {threshold: 0.2, floor: 1e-6}}", None),
    ("{latncy: {threshold: 0.2}}", "compare: unknown metric 'latncy'; did you mean 'latency'?"),
    ("{latency: {treshold: 0.2}}", "compare.latency: unknown key 'treshold'; allowed: threshold, alpha, floor"),
    ("{latency: {alpha: 1.5}}", "compare.latency.alpha: Input should be less than 1"),
    ("{accuracy: {floor: -0.1}}", "compare.accuracy.floor: Input should be greater than or equal to 0"),
])
def test_the_suite_checks_its_compare_rules(rules, says):
    from archbench.suite.load import parse_suite

    text = ("name: s\ncompare: " + rules + "\nexperiments:\n  - name: e\n    architectures: [tcn]\n"
            "    metrics: [flops]\n    sweep: {seq_len: 8}\n")
    if says is None:
        assert parse_suite(text).compare["latency"].floor == 1e-6
    else:
        with pytest.raises(BadInput) as info:
            parse_suite(text)
        assert says in str(info.value)
