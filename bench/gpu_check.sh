#!/bin/sh
# The GPU check of issue 24 (bench/gpu_check.py): every GPU row in under 8 minutes on one
# GPU, the table printed and written into bench/RESULTS.md. A hard limit of 480 s on top
# of the script's own 450 s, so that a rerun fits in the same 15-minute lease.
cd "$(dirname "$0")/.." || exit 1
exec timeout 480 "${PYTHON:-python}" -m bench --gpu "$@"
