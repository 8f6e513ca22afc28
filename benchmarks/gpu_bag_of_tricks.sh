#!/usr/bin/env bash
# The bag of tricks on one CUDA GPU with no network: the final recipe (RUNS runs), then the baseline (one run).
#
#   PYTHONPATH=. benchmarks/gpu_bag_of_tricks.sh DATA_ARCHIVE OUT_DIR
#
# Run from the repository root. DATA_ARCHIVE is CIFAR-10 as an ImageFolder .tar.gz
# (train/<class>/*, test/<class>/*), or a folder holding torchvision's cifar-10-batches-py;
# it is decoded once into GRAPHNET_CACHE (default: a temporary folder, removed at the end).
# Prints each run's table and the final recipe's summary (mean, min, max, std of accuracy and
# time); OUT_DIR gets the printed output (final.txt, baseline.txt, final_fp16.txt, gpu.txt) and
# each run's logs, curves and checkpoint. Sized for one H100 within 10 minutes: RUNS=3 final
# runs of 10 epochs, one baseline run of 24, and (unless PRECISION is set) one final run in fp16. Environment: PYTHON (default python3), RUNS (3),
# PRECISION (bf16; or fp16, fp32), EXTRA (more `graphnet train` options, e.g. --compile).
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: PYTHONPATH=. $0 DATA_ARCHIVE OUT_DIR" >&2
    exit 2
fi
data=$1
out=$2
python=${PYTHON:-python3}
if [ -z "${GRAPHNET_CACHE:-}" ]; then
    GRAPHNET_CACHE=$(mktemp -d)
    trap 'rm -rf "$GRAPHNET_CACHE"' EXIT
fi
export GRAPHNET_CACHE
mkdir -p "$out"

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    "$python" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
} | tee "$out/gpu.txt"

# shellcheck disable=SC2206  # EXTRA is split into options on purpose
common=(--data "$data" --device cuda --precision "${PRECISION:-bf16}" ${EXTRA:-})
start=$SECONDS
"$python" -m graphnet.cli train "${common[@]}" --runs "${RUNS:-3}" --out "$out/final" 2>&1 | tee "$out/final.txt"
"$python" -m graphnet.cli train "${common[@]}" --recipe baseline --out "$out/baseline" 2>&1 | tee "$out/baseline.txt"
# one final-recipe run in Page's fp16 (batch norms in fp32) beside the bf16 runs, to pick the default by measurement
if [ -z "${PRECISION:-}" ]; then
    "$python" -m graphnet.cli train --data "$data" --device cuda --precision fp16 ${EXTRA:-} --out "$out/final_fp16" \
        2>&1 | tee "$out/final_fp16.txt"
fi
echo "gpu_bag_of_tricks: done in $((SECONDS - start)) s; logs in $out"
