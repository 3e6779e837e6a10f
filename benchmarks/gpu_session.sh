#!/usr/bin/env bash
# Everything worth doing on the lent GPU in one call: the environment, the GPU tests, the examples,
# and the benchmarks (a table last; logs and JSON under $OUT). Usage: bash benchmarks/gpu_session.sh [STEPS]
# STEPS is a comma list of env,tests,fuzz,calls,sanitize,examples,bench (default: all).
# sanitize: every example and GEMM variant (benchmarks/sanitize_targets.py, small sizes) under compute-sanitizer's
# memcheck, racecheck and synccheck; error counts in $OUT/sanitizer-summary.txt (target: 0 errors). SANITIZE_ONLY: a
# regular expression of the targets to run (default: all).
# fuzz: FUZZ_COUNT (default 1000) random kernels on the GPU against the interpreter (benchmarks/fuzz_gpu.py).
# calls: random matmul, attention and conv2d calls against float32 references (benchmarks/blocks_fuzz.py; CALLS, default
# gemm:2000,attention:300,conv2d:300).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SKC_CACHE_DIR=${SKC_CACHE_DIR:-/tmp/skc-cache}
OUT=${OUT:-/tmp/skc-out}; mkdir -p "$OUT"; LOGS="$OUT/logs"; mkdir -p "$LOGS"
STEPS=${1:-env,tests,fuzz,calls,sanitize,examples,bench}
BENCH=${BENCH:-vector_add,softmax,launch,compile,gemm}
has() { [[ ",$STEPS," == *",$1,"* ]]; }

if has env; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
  python3 -m pip list 2>/dev/null | grep -i -E "^(llvmlite|cuda-bindings|cuda-python|nvidia-nvjitlink|numpy|torch|triton) "
  python3 -m skc info
fi
if has tests; then
  timeout 900 python3 -m pytest tests -m gpu -q -rs 2>&1 | tee "$LOGS/gpu-tests.log" | tail -40
fi
if has fuzz; then
  python3 benchmarks/fuzz_gpu.py --count "${FUZZ_COUNT:-1000}" --seed "${FUZZ_SEED:-2026}" 2>&1 | tee "$LOGS/fuzz-gpu.log" | tail -15
fi
if has calls; then
  python3 benchmarks/blocks_fuzz.py --kinds "${CALLS:-gemm:2000,attention:300,conv2d:300}" --seed "${FUZZ_SEED:-2026}" \
    --json "$OUT/blocks-fuzz.json" 2>&1 | tee "$LOGS/blocks-fuzz.log" | tail -12
fi
if has sanitize; then
  # every (target, tool) pair in its own process, SANITIZE_JOBS at a time (each has its own context on the GPU)
  summary="$OUT/sanitizer-summary.txt"; : > "$summary"; mkdir -p "$LOGS"
  export SANITIZER=${SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)} LOGS
  sanitize_one() {
    target=$1; tool=$2; log="$LOGS/sanitize-${target//:/-}-$tool.log"
    # --report-api-errors no: a failed driver call is the host's business (torch probes entry points with
    # cuGetProcAddress and gets CUDA_ERROR_INVALID_VALUE back); the kernels' memory errors are what counts here
    timeout 600 "$SANITIZER" --tool "$tool" --report-api-errors no --error-exitcode 0 --print-limit 20 \
      python3 benchmarks/sanitize_targets.py "$target" > "$log" 2>&1; rc=$?
    errors=$(grep -oE "ERROR SUMMARY: [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+$")
    # racecheck ends with "RACECHECK SUMMARY: N hazards displayed (E errors, W warnings)" instead
    # ("(1 error, ...": the singular too)
    [[ -z "$errors" ]] && errors=$(grep -oE "RACECHECK SUMMARY: .*\(([0-9]+) errors?" "$log" | tail -1 | grep -oE "[0-9]+ errors?$" | grep -oE "^[0-9]+")
    # no summary line: the run itself failed (a wrong result, a crash, the tool refused the device): count it
    if [[ -z "$errors" ]]; then errors=1; note="no ERROR SUMMARY (rc $rc): $(tail -1 "$log")"; else note="rc $rc"; fi
    if [[ $rc -ne 0 && "$errors" == 0 ]]; then errors=1; note="rc $rc: $(tail -1 "$log")"; fi
    printf "%-28s %-10s %5s errors  %s\n" "$target" "$tool" "$errors" "$note"
  }
  export -f sanitize_one
  for target in $(python3 benchmarks/sanitize_targets.py --list | grep -E "${SANITIZE_ONLY:-.}"); do
    for tool in memcheck racecheck synccheck; do echo "$target $tool"; done
  # (each run's line reaches the summary as it finishes, so a step cut by a cap keeps the runs that finished; sorted
  # at the end)
  done | xargs -P "${SANITIZE_JOBS:-6}" -L 1 bash -c 'sanitize_one "$0" "$1"' | tee -a "$summary"
  sort -o "$summary" "$summary"
  total=$(awk '{s += $3} END {print s + 0}' "$summary")
  echo "compute-sanitizer: $total errors in all (target 0); logs in logs.tar.gz" | tee -a "$summary"
fi
if has examples; then
  for example in examples/*.py; do python3 -m skc run "$example" 2>&1 | tail -3; done | tee "$LOGS/examples.log"
fi
if has bench; then
  python3 benchmarks/run.py --only "$BENCH" --json "$OUT/benchmarks.json" 2>&1 | tee "$LOGS/bench.log"
fi
# $OUT comes back with a few files at most: the logs travel as one archive (unless a caller packs them)
[[ -n "${SKC_KEEP_LOGS:-}" ]] || { tar czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"; }
