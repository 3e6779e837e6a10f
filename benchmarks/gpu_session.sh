#!/usr/bin/env bash
# Everything worth doing on the lent GPU in one call: the environment, the GPU tests, the examples,
# and the benchmarks (a table last; logs and JSON under $OUT). Usage: bash benchmarks/gpu_session.sh [STEPS]
# STEPS is a comma list of env,tests,examples,bench (default: all).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SKC_CACHE_DIR=${SKC_CACHE_DIR:-/tmp/skc-cache}
OUT=${OUT:-/tmp/skc-out}; mkdir -p "$OUT"
STEPS=${1:-env,tests,examples,bench}
BENCH=${BENCH:-vector_add,softmax,launch,compile,gemm}
has() { [[ ",$STEPS," == *",$1,"* ]]; }

if has env; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
  python3 -m pip list 2>/dev/null | grep -i -E "^(llvmlite|cuda-bindings|cuda-python|nvidia-nvjitlink|numpy|torch|triton) "
  python3 -m skc info
fi
if has tests; then
  python3 -m pytest tests/gpu -q -rs -x 2>&1 | tee "$OUT/gpu-tests.log" | tail -40
fi
if has examples; then
  for example in examples/*.py; do python3 -m skc run "$example" 2>&1 | tail -3; done | tee "$OUT/examples.log"
fi
if has bench; then
  python3 benchmarks/run.py --only "$BENCH" --json "$OUT/benchmarks.json" 2>&1 | tee "$OUT/bench.log"
fi
