#!/usr/bin/env bash
# The GPU check in one command on the lent GPU machine (docs/gpu_check.md gives the `run` call):
# benchmarks/gpu_check.py --device cuda under a time limit, its log beside its tables in $OUT.
#
#     bash benchmarks/gpu_check.sh [gpu_check.py options, e.g. --steps stage2,roadmap]
#
# PYTHON (default python3, the image's torch Python). GPU_CHECK_LIMIT (seconds, default 480): SIGINT after that, so the script records the step it was in
# and writes its JSON and Markdown before the run tool's own limit kills everything.
set -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1
timeout -s INT -k 20 "${GPU_CHECK_LIMIT:-480}" "${PYTHON:-python3}" benchmarks/gpu_check.py --device cuda --out "$OUT" "$@" 2>&1 \
  | tee "$OUT/gpu_check.log"
