#!/usr/bin/env bash
# One call that checks archbench on one GPU, in at most 8 minutes:
#
#     benchmarks/gpu_check.sh OUTDIR
#
# 1. every test that needs CUDA (tests/, selected by benchmarks/gpu_only.py): timing against torch's
#    Timer, CUDA events, NVML, cuDNN LSTM, SDPA backends, CUDA graphs, the device peak;
# 2. archbench's own timer against triton.testing.do_bench (or torch's Timer where triton is absent);
# 3. the reduced GPU suite suites/gpu-check.yaml (cuDNN LSTM, SDPA backends, out of memory as data,
#    NVML readings, MFU against the measured peak, AMP, torch.compile, CUDA graphs forward and decode);
# 4. OUTDIR/summary.md, one page from all of it (benchmarks/gpu_check.py summary).
#
# Writes under OUTDIR: pytest.txt, timer.json, results/gpu-check/<stamp>/ (and its report under
# reports/), run.log, summary.md.
#
# Exit codes: 0 all ran and every GPU test passed; 1 a test failed or a step did not finish
# (summary.md says which); 2 usage; 3 no CUDA device here (one line on stderr, nothing run).
set -u
if [ $# -ne 1 ]; then
  echo "usage: benchmarks/gpu_check.sh OUTDIR" >&2
  exit 2
fi
OUT=$1
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python}
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing run (exit 3)" >&2
  exit 3
fi
mkdir -p "$OUT" || exit 2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
status=0
start=$(date +%s)

# 1. the GPU tests: at most 150 s
PYTHONPATH=benchmarks${PYTHONPATH:+:$PYTHONPATH} timeout 150 "$PY" -m pytest -n 0 -q -rs -p gpu_only -p no:cacheprovider tests \
  > "$OUT/pytest.txt" 2>&1 || status=1
# 2. the timer against do_bench or torch's Timer: at most 40 s
timeout 40 "$PY" benchmarks/gpu_check.py timer "$OUT" > "$OUT/timer.log" 2>&1 || status=1
# 3. the reduced suite: at most 240 s (what finished is kept; records are written group by group)
timeout 240 "$PY" -m archbench run suites/gpu-check.yaml --out "$OUT/results" --reports "$OUT/reports" \
  --no-progress > "$OUT/run.log" 2>&1 || status=1
# 4. the one-page summary
"$PY" benchmarks/gpu_check.py summary "$OUT" --seconds $(( $(date +%s) - start )) --status "$status" || status=1
cat "$OUT/summary.md"
exit $status
