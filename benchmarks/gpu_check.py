"""The Python half of benchmarks/gpu_check.sh: the timer comparison and the one-page summary.

    python benchmarks/gpu_check.py timer OUTDIR       # OUTDIR/timer.json (needs CUDA)
    python benchmarks/gpu_check.py summary OUTDIR     # OUTDIR/summary.md from what the steps left there
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path


def timer(out: Path) -> int:
    """archbench's CUDA-event median against triton.testing.do_bench (else torch's Timer) on one
    Transformer forward and one cuDNN LSTM forward."""
    import torch
    import torch.utils.benchmark as tb

    import archbench
    from archbench.instruments.timing import StopRule
    from archbench.testing import build

    try:
        from triton.testing import do_bench
    except ImportError:
        do_bench = None
    rows = []
    for kind, params in (("transformer", {"heads": 4, "layers": 2}), ("lstm", {"layers": 2})):
        model = build(kind, True, d_model=256, **params).cuda().eval()
        x = torch.randint(0, 16, (4, 2048), device="cuda")

        def fn(model=model, x=x):
            with torch.inference_mode():
                return model(x)

        ours = archbench.measure(fn, "cuda", StopRule(min_samples=20, min_time=0.3, max_time=2.0, target=0.01)).median
        if do_bench is not None:
            theirs, by = do_bench(fn, warmup=50, rep=300, return_mode="median") / 1e3, "triton.testing.do_bench"
        else:
            theirs, by = tb.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=1.0).median, "torch Timer"
        rows.append({"arch": kind, "archbench_s": ours, "reference_s": theirs, "reference": by, "ratio": ours / theirs})
        print(f"{kind}: archbench {ours * 1e3:.4g} ms, {by} {theirs * 1e3:.4g} ms, ratio {ours / theirs:.3f}")
    (out / "timer.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0 if all(0.9 <= r["ratio"] <= 1.1 for r in rows) else 1


def _tests(out: Path) -> list[str]:
    path = out / "pytest.txt"
    if not path.exists():
        return ["- GPU tests: not run"]
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    last = next((line for line in reversed(text) if re.search(r"passed|failed|error|no tests ran", line)), "?")
    failed = [line for line in text if line.startswith(("FAILED", "ERROR"))][:8]
    return [f"- GPU tests (`pytest -p gpu_only tests`): {last.strip('= ')}", *[f"  - {f[:160]}" for f in failed]]


def _timer(out: Path) -> list[str]:
    path = out / "timer.json"
    if not path.exists():
        return ["- Timer comparison: not run (see timer.log)"]
    rows = json.loads(path.read_text(encoding="utf-8"))
    return ["- Timer: " + "; ".join(f"{r['arch']} archbench {r['archbench_s'] * 1e3:.4g} ms vs {r['reference']} "
                                     f"{r['reference_s'] * 1e3:.4g} ms (ratio {r['ratio']:.3f})" for r in rows)]


def _fmt(v: float, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v * 1e3:.4g} ms" if unit == "s" else f"{v:.4g}"


def _suite(out: Path) -> list[str]:
    from archbench.report.implementations import speedups
    from archbench.results.load import load_results, records_to_frame

    folders = sorted((out / "results" / "gpu-check").glob("*/"))
    if not folders:
        return ["- Suite gpu-check: no results folder (see run.log)"]
    folder = folders[-1]
    try:
        df = load_results(folder)
    except Exception:  # a run cut short by its time limit: no results.csv, the records are there
        records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines() if line.strip()]
        df = records_to_frame(records)
    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").exists() else {}
    env = meta.get("environment") or {}
    gpus = env.get("gpus")
    status = df.groupby("point_id").status.agg(  # as a record's: the first failure, skipped if nothing ran
        lambda s: next((x for x in s if x not in ("ok", "skipped")), "skipped" if (s == "skipped").all() else "ok"))
    lines = [f"- Suite gpu-check: `{folder}`, {df.point_id.nunique()} points; statuses "
             + ", ".join(f"{k} {v}" for k, v in status.value_counts().items()),
             f"- Device: {gpus if isinstance(gpus, str) else json.dumps(gpus)[:200]}; torch {env.get('torch', '?')}",
             f"- Measured matmul peak: {(meta.get('device_peak') or {}).get('flops_per_s', math.nan) / 1e12:.1f} TFLOP/s"]
    lat = df[(df.metric == "latency") & (df.status == "ok")]
    nvml = lat.dropna(subset=["sm_clock_mhz"]) if "sm_clock_mhz" in lat else lat.iloc[:0]
    lines.append(f"- NVML: {len(nvml)} of {len(lat)} timings with clocks; SM clock {_fmt(nvml.sm_clock_mhz.min())}-"
                 f"{_fmt(nvml.sm_clock_mhz.max())} MHz, utilisation median {_fmt(nvml.gpu_util.median())} %, "
                 f"throttled {int(nvml.throttled.fillna(False).astype(bool).sum())}" if len(nvml) else
                 "- NVML: no readings (pynvml missing?)")
    mfu = df[(df.metric == "mfu") & (df.status == "ok")]
    if len(mfu):
        best = mfu.loc[mfu.value.idxmax()]
        lines.append(f"- MFU: median {mfu.value.median():.3f}, best {best.value:.3f} ({best.arch} {best['pass']} n={best.seq_len})")
    oom = df[df.status == "oom"].drop_duplicates("point_id")
    lines.append("- Out of memory as data: " + ("; ".join(f"{r.experiment}/{r.arch} n={r.seq_len}" for r in oom.itertuples())
                                                or "none (the oom experiment should have one)"))
    bad = df[df.status.isin(["error", "timeout", "diverged"])].drop_duplicates(["point_id"])
    lines += [f"- {r.status}: {r.experiment}/{r.arch} n={r.seq_len}: {str(r.error)[:140]}" for r in bad.itertuples()][:8]
    skipped = df[(df.status == "skipped") & ~df.error.fillna("").str.startswith(("eager:", "not compiled"))]
    skipped = skipped.drop_duplicates("error")
    lines += [f"- skipped: {str(r.error)[:150]}" for r in skipped.itertuples()][:6]
    table = speedups(df)
    if not table.empty:
        lines += ["", "| experiment | arch | pass | n | implementation | latency | speed-up | compile | logit diff |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.experiment} | {r.arch} | {r._3} | {r.seq_len} | {r.implementation} | {_fmt(r.latency, 's')} "
                  f"| {r.speedup:.2f}x | {_fmt(r.compile_time)} s | {_fmt(r.logit_diff)} |"
                  for r in table.itertuples()][:30]
    graphs = df[df.metric.isin(["decode_latency", "decode_latency_cuda_graph"]) & (df.status == "ok")]
    if len(graphs):
        pivot = graphs.pivot_table(index=["arch", "seq_len"], columns="metric", values="value", aggfunc="median")
        lines += ["", "| arch | context | decode eager | decode CUDA graph |", "|---|---|---|---|"]
        lines += [f"| {a} | {n} | {_fmt(r.get('decode_latency', math.nan), 's')} | "
                  f"{_fmt(r.get('decode_latency_cuda_graph', math.nan), 's')} |" for (a, n), r in pivot.iterrows()]
    return lines


def summary(out: Path, seconds: int, status: int) -> int:
    md = ["# archbench GPU check", "",
          f"{seconds} s in all; exit status {status} (0: every step finished and the GPU tests passed).", ""]
    md += _tests(out) + _timer(out)
    try:
        md += _suite(out)
    except Exception as exc:  # the summary reports what it could not read, and still gets written
        md.append(f"- Suite gpu-check: could not be summarised: {type(exc).__name__}: {exc}")
    (out / "summary.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["timer", "summary"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=int, default=0)
    parser.add_argument("--status", type=int, default=0)
    args = parser.parse_args()
    return timer(args.out) if args.step == "timer" else summary(args.out, args.seconds, args.status)


if __name__ == "__main__":
    sys.exit(main())
