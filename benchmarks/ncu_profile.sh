#!/usr/bin/env bash
# Nsight Compute on one call of each case of benchmarks/ncu_profile.py: the details, raw metrics and SASS with
# stall samples of each, as CSV, in $OUT/prof.tar.gz. Usage: CASES="fp8blk-skc fp8blk-cublas" SIZE=8192 bash
# benchmarks/ncu_profile.sh (on the GPU machine; about 15 s a case).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SKC_CACHE_DIR=/tmp/skc-cache
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu)
$NCU --version | tail -1
mkdir -p /tmp/prof
for c in ${CASES:-fp8blk-skc fp8blk-cublas fp8pt-skc fp8pt-cublas attn-skc attn-cudnn}; do
  s=$(date +%s)
  timeout 240 $NCU --profile-from-start off --clock-control none --set full --import-source no -f -o /tmp/prof/$c python3 benchmarks/ncu_profile.py $c ${SIZE:-8192} > /tmp/prof/$c.log 2>&1
  tail -3 /tmp/prof/$c.log
  $NCU -i /tmp/prof/$c.ncu-rep --page details --csv > /tmp/prof/$c-details.csv 2>&1
  $NCU -i /tmp/prof/$c.ncu-rep --page source --csv --print-source sass > /tmp/prof/$c-sass.csv 2>&1
  $NCU -i /tmp/prof/$c.ncu-rep --page raw --csv > /tmp/prof/$c-raw.csv 2>&1
  echo "$c $(( $(date +%s) - s )) s; $(wc -c < /tmp/prof/$c-sass.csv) bytes sass"
done
rm -f /tmp/prof/*.ncu-rep
tar czf $OUT/prof.tar.gz -C /tmp prof
ls -la $OUT
