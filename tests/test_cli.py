"""The command line end to end, through click's CliRunner, on a tiny suite."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import archbench
from archbench.cli import cli
from archbench.results.load import COLUMNS, latest, read_records, records_to_frame

TINY = """
name: tiny
threads: 1
timing: {min_samples: 3, min_time: 0.0, max_time: 0.02, warmup: 0.0}
experiments:
  - name: lat
    architectures:
      - lstm
      - {kind: tcn, levels: 2}
      - {kind: transformer, heads: 2, layers: 1}
    task: {kind: uniform, vocab_size: 8}
    metrics: [latency, peak_memory]
    passes: [forward, train_step]
    sweep: {seq_len: [8, 16], batch: 2, d_model: 16}
"""
POINTS = 3 * 2 * 2  # architectures x lengths x passes


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def folder_of(result) -> Path:
    line = next(line for line in result.output.splitlines() if line.startswith("results: "))
    return Path(line.removeprefix("results: "))


def test_run_writes_every_file_of_the_results_folder(suite_file, tmp_path):
    result = run("run", suite_file, "--out", tmp_path / "out", "--no-progress")
    assert result.exit_code == 0, result.output
    folder = folder_of(result)
    assert folder.parent == tmp_path / "out" / "tiny"
    rows_per_point = 5  # latency, throughput, achieved_flops, mfu; peak_memory
    assert f"{POINTS} points, {rows_per_point * POINTS} rows ({POINTS} ok)" in result.output

    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    assert len(records) == POINTS
    assert {r["point"]["id"] for r in records} == {p.id for p in archbench.expand(archbench.load_suite(suite_file))}

    df = pd.read_csv(folder / "results.csv")
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert {"param.d_model", "param.levels", "param.heads", "param.vocab_size"} <= set(df.columns)
    assert len(df) == rows_per_point * POINTS and (df.status == "ok").all()
    lat = df[df.metric == "latency"].set_index("point_id")
    assert (lat.value > 0).all() and (lat.unit == "s").all() and (lat.n >= 1).all()
    # min_samples (3) unless the time cap (max_time 0.02 s, reached first on a busy machine) stopped it: noisy
    assert ((lat.n >= 3) | lat.noisy.astype(bool)).all(), lat[["n", "noisy"]]
    assert (lat.ci_low <= lat["median"]).all() and (lat["median"] <= lat.ci_high).all()
    mem = df[df.metric == "peak_memory"]
    assert (mem.value > 0).all() and (mem.unit == "B").all()
    # the consolidated table is the records' table: rebuilt here from records.jsonl, newest record per point
    rebuilt = records_to_frame(latest(read_records(folder / "records.jsonl")))
    assert len(rebuilt) == len(df) and list(rebuilt.columns) == list(df.columns)
    # a CSV keeps no types: a missing error (None) reads back as NaN, true as True, an int column as int64
    pd.testing.assert_frame_equal(rebuilt.astype(object).where(rebuilt.notna(), None),
                                  df.astype(object).where(df.notna(), None), check_dtype=False)

    # what follows from the latency: tokens/s, FLOP/s from the analytic count, and MFU against the peak
    meta = json.loads((folder / "meta.json").read_text())
    peak = meta["device_peak"]["flops_per_s"]
    assert peak > 0
    for pid, row in lat.iterrows():
        point = archbench.Point.from_dict(next(r["point"] for r in records if r["point"]["id"] == pid))
        model = archbench.build_architecture(point.arch_kind, vocab_size=8, causal=True, **point.params)
        flops = model.flops(point.batch, point.seq_len) * {"forward": 1, "train_step": 3}[point.pass_]
        value = df[(df.point_id == pid)].set_index("metric").value
        assert value["throughput"] == pytest.approx(point.batch * point.seq_len / row.value)
        assert value["achieved_flops"] == pytest.approx(flops / row.value)
        assert value["mfu"] == pytest.approx(flops / row.value / peak)

    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == POINTS and all(len(s["samples"]) == lat.n[s["point_id"]] for s in samples)

    assert meta["suite"] == "tiny" and meta["ended"] and meta["suite_text"] == TINY
    assert meta["flags"]["threads"] == 1 and meta["flags"]["tf32_matmul"] is False
    assert {"torch", "git", "cpu", "host", "python"} <= set(meta["environment"])
    assert (folder / "suite.yaml").read_text() == TINY


def test_failures_become_statuses_and_the_run_goes_on(suite_file, tmp_path, monkeypatch):
    import archbench.metrics.latency as latency

    real = latency.measure_interleaved
    calls = []

    def flaky(fns, device, rule, **kw):
        out = real(fns, device, rule, **kw)
        calls.append(len(fns))
        if len(calls) == 1:  # the first shape: lstm ok, tcn out of memory, transformer raises
            out[1] = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
            out[2] = RuntimeError("boom\nsecond line")
        return out

    monkeypatch.setattr(latency, "measure_interleaved", flaky)
    result = run("run", suite_file, "--out", tmp_path, "--no-progress")
    assert result.exit_code == 0
    # the three architectures of each shape, timed together; but the tcn ran out of memory in the
    # first shape (n=8, forward), so at n=16 forward it is skipped, not run
    assert calls == [3, 3, 2, 3]
    df = archbench.load_results(folder_of(result))
    lat = df[df.metric == "latency"].reset_index()
    assert list(lat.status[:4]) == ["ok", "oom", "error", "ok"]
    assert lat.error[1].startswith("OutOfMemoryError: CUDA out of memory")
    assert lat.error[2] == "RuntimeError: boom"
    assert pd.isna(lat.value[1])
    mem = df[df.metric == "peak_memory"].set_index("point_id").status
    assert mem[lat.point_id[1]] == "ok"  # the other metric of the point still ran
    assert list(mem.value_counts().sort_index().items()) == [("ok", 11), ("skipped", 1)]  # the tcn at n=16 forward
    assert "1 error" in result.output and "1 oom" in result.output and "1 skipped" in result.output


def test_bad_suite_exits_2_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("seq_len: [8, 16]", "seq_len: [8, -16]"))
    result = CliRunner().invoke(cli, ["run", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "experiments[0].sweep.seq_len[1]" in result.output and "-16" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_suite_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["plan", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_cuda_on_a_cpu_machine_is_refused_before_running(suite_file, tmp_path):
    result = CliRunner().invoke(cli, ["run", str(suite_file), "--device", "cuda", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no CUDA device" in result.output
    assert not (tmp_path / "o").exists()


def test_plan_lists_the_points_without_running(suite_file):
    result = run("plan", suite_file)
    assert result.exit_code == 0
    ids = [p.id for p in archbench.expand(archbench.load_suite(suite_file))]
    assert all(i in result.output for i in ids)
    assert f"{POINTS} points" in result.output


def test_ls_shows_every_registered_name_with_its_parameters():
    result = run("ls")
    assert result.exit_code == 0
    for name in ("lstm", "tcn", "transformer", "uniform", "latency", "peak_memory", "dilation_base", "train_step"):
        assert name in result.output
    assert "sinusoidal|learned|none" in result.output


def test_env_describes_the_machine():
    result = run("env")
    assert result.exit_code == 0
    assert "torch" in result.output and "threads" in result.output
    if not torch.cuda.is_available():
        assert "no NVIDIA GPU" in result.output


def test_python_dash_m_works():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "archbench", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and archbench.__version__ in out.stdout


def test_quick_suite_is_valid_and_covers_the_three_architectures():
    suite = archbench.load_suite(Path(__file__).parents[1] / "suites" / "quick.yaml")
    points = archbench.expand(suite)
    assert {p.arch_kind for p in points} == {"lstm", "tcn", "transformer", "gru", "rnn", "local_attention",
                                             "linear_attention", "ssm"}
    assert len({p.seq_len for p in points}) >= 3
