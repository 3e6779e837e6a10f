#!/usr/bin/env bash
# The release check on the lent GPU in one call of under ten minutes: every gpu-marked test, 1,000 fuzzed kernels
# against the interpreter (and mixgen's programs, benchmarks/fuzz_mix_gpu.py) and compute-sanitizer over the examples and GEMM variants (these two side by side), then
# every benchmark of the README, each against its reference in the same run. Each step has a time cap so that a
# hang cannot take the call. $OUT gets the PNGs and one archive of logs and JSON.
# Usage: bash benchmarks/gpu_release.sh [STEPS], STEPS a comma list of tests,check,bench (default: all three; a
# call's ten minutes may hold tests and check, or bench, where the suite has grown past its cap).
# TESTS_S and SANITIZE_S cap the tests and the sanitizer (default 300 and 200 seconds; 123 sanitizer runs took 127 s
# with 8 jobs in the sixteenth session, and tests, check and their start fit ten minutes with TESTS_S=360).
set -uo pipefail
STEPS=${1:-tests,check,bench}
has() { [[ ",$STEPS," == *",$1,"* ]]; }
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SKC_CACHE_DIR=${SKC_CACHE_DIR:-/tmp/skc-cache}
OUT=${OUT:-/tmp/skc-out}; LOGS="$OUT/logs"; mkdir -p "$LOGS"
step() { echo "=== $1 ($(date -u +%H:%M:%S))"; }

step env
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
python3 -c "import torch, triton, llvmlite; print('torch', torch.__version__, 'triton', triton.__version__, 'llvmlite', llvmlite.__version__)"
# which code ran (the device's copy of the tree may carry stale git metadata): the digest of skc's own source, as
# `python -c "from skc.compiler import skc_source_digest as d; print(d())"` prints it for a commit
python3 -c "from skc.compiler import skc_source_digest as d; print('skc source', d())" | tee "$LOGS/skc-source.txt"

if has tests; then
step "gpu tests"
# the suite (about 1,150 tests) took over 330 s in one process on an H100 (forty-fifth session): where pytest-xdist is
# there, TEST_JOBS processes share the GPU (six concurrent groups ran 1,143 tests in six minutes, forty-third session)
JOBS=(); python3 -c "import xdist" 2>/dev/null && JOBS=(-n "${TEST_JOBS:-8}")
timeout "${TESTS_S:-300}" python3 -m pytest tests -m gpu -q -rs -p no:cacheprovider "${JOBS[@]}" > "$LOGS/gpu-tests.log" 2>&1
echo "pytest rc $?"; grep -E "^(FAILED|ERROR)|passed|failed" "$LOGS/gpu-tests.log" | tail -25
fi

if has check; then
step "fuzz and sanitizer"
(timeout 120 python3 benchmarks/fuzz_gpu.py --count 1000 --seed 2026 > "$LOGS/fuzz-gpu.log" 2>&1; echo "fuzz rc $?" >> "$LOGS/fuzz-gpu.log") &
(timeout 150 python3 benchmarks/fuzz_mix_gpu.py --jobs 4 --seconds 110 --out "$LOGS/mix-gpu" > "$LOGS/fuzz-mix-gpu.log" 2>&1; echo "mix fuzz rc $?" >> "$LOGS/fuzz-mix-gpu.log") &
SKC_KEEP_LOGS=1 OUT="$OUT" LOGS="$LOGS" SANITIZE_JOBS=8 SANITIZE_ONLY="${SANITIZE_ONLY:-.}" timeout "${SANITIZE_S:-200}" bash benchmarks/gpu_session.sh sanitize > "$LOGS/sanitize.log" 2>&1
wait
# a cap stops the step's shell, not what it started: nothing of it may run beside the benchmarks
pkill -f compute-sanitizer; pkill -f sanitize_targets.py; pkill -f fuzz_gpu.py; pkill -f fuzz_mix_gpu.py; sleep 1
tail -2 "$LOGS/fuzz-gpu.log"; tail -2 "$LOGS/fuzz-mix-gpu.log"; grep -v " 0 errors" "$OUT/sanitizer-summary.txt" | tail -12
# (a step cut by its cap has no total line: the count of runs and the last line tell a finished step from a cut one)
echo "sanitizer runs finished: $(grep -vc "^compute-sanitizer:" "$OUT/sanitizer-summary.txt")"
tail -1 "$OUT/sanitizer-summary.txt"
mv "$OUT/sanitizer-summary.txt" "$LOGS/" 2>/dev/null
fi

if has bench; then
step "gemm suite"
timeout 100 python3 benchmarks/gemm_suite.py --json "$LOGS/gemm_suite.json" --plot "$OUT/gemm_suite.png" > "$LOGS/gemm_suite.log" 2>&1
tail -30 "$LOGS/gemm_suite.log"
step "fp8"
OUT="$LOGS" timeout 50 python3 benchmarks/fp8_gemm.py --rep-ms 60 --no-variants > "$LOGS/fp8.log" 2>&1; tail -16 "$LOGS/fp8.log"
step "conv2d"
timeout 40 python3 benchmarks/conv2d.py --json "$LOGS/conv2d.json" --plot "$OUT/conv2d.png" > "$LOGS/conv2d.log" 2>&1
tail -14 "$LOGS/conv2d.log"
for run in $(seq 2 "${CONV_RUNS:-1}"); do   # more runs of the same benchmark: cuDNN's picks move between processes
  timeout 40 python3 benchmarks/conv2d.py --json "$LOGS/conv2d-$run.json" > "$LOGS/conv2d-$run.log" 2>&1
  tail -1 "$LOGS/conv2d-$run.log"
done
step "attention"
timeout 60 python3 benchmarks/attention.py --no-variants --json "$LOGS/attention.json" > "$LOGS/attention.log" 2>&1
tail -10 "$LOGS/attention.log"
step "launch, host time, vector add, softmax"
timeout 35 python3 benchmarks/run.py --only launch,matmul_host,vector_add,softmax --json "$LOGS/run.json" > "$LOGS/run.log" 2>&1
tail -14 "$LOGS/run.log"
fi
step done
tar czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
