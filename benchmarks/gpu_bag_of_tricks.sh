#!/usr/bin/env bash
# The bag of tricks and airbench94 on one CUDA GPU, offline, in independent stages that fit 8 minutes on an H100.
#
#   PYTHONPATH=. benchmarks/gpu_bag_of_tricks.sh OUT_DIR
#
# Run from the repository root, from source (PYTHONPATH=.; no install, no pydot needed). The data
# is .data/cifar10-jpeg.tar.gz (git-ignored, so it travels with the working tree; DATA overrides),
# decoded once into the cache .data/cache (GRAPHNET_CACHE overrides) that every stage reads.
#
# Stages, each on its own under `timeout` (one failing does not stop the others; none starts with
# less than 20 s of the total budget left): env (GPU, driver, torch/CUDA/cuDNN), decode, smoke (1
# epoch), airbench94 and airbench94_muon RUNS times each (bf16, channels_last; published: 3.83 s
# and 2.59 s on an A100, 94.01%, TTA included: first, so that an overrun elsewhere cannot squeeze
# them), then the final recipe RUNS times in bf16 with channels_last and the reshape and view
# ghost-BN methods, and contiguous, one fp16 final run and one baseline run, and last (the first
# to be skipped when time runs short) ghost_bn (benchmarks/ghost_bn.py: each method, forward +
# backward of one layer) and the final recipe with the chunks method.
#
# OUT_DIR gets small text files: env.txt, <stage>.txt (each run's table), stages.tsv (stage, exit
# status, seconds), summary.txt (per run: prep time, train time, train + final-TTA time, mean
# epoch time, final TTA accuracy, images/s; per stage mean/min/max), and runs.tar.gz (every run's log.json, log.tsv,
# curves.png; no checkpoints; under 16 MB).
#
# Environment: PYTHON (default python3), RUNS (3), BUDGET_S (total seconds, 480), EXTRA (more
# `graphnet train` options, e.g. --compile), TINY=1 (check the script end to end on the CPU:
# fp32, 256 images, width x0.125, 1 epoch, 2 runs; the stage names keep their GPU meaning).
set -uo pipefail
if [ $# -ne 1 ]; then
    echo "usage: PYTHONPATH=. $0 OUT_DIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
data=${DATA:-.data/cifar10-jpeg.tar.gz}
export GRAPHNET_CACHE=${GRAPHNET_CACHE:-$PWD/.data/cache}
budget=${BUDGET_S:-480}
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "${TINY:-}" = 1 ]; then
    device=cpu; bf16=fp32; fp16=fp32; runs=${RUNS:-2}
    # shellcheck disable=SC2206
    size=(--subset 256 --test-subset 100 --width-mult 0.125 --batch-size 32 --epochs 1)
    baseline_size=("${size[@]}"); ghost_shape=64,16,8,8
else
    device=cuda; bf16=bf16; fp16=fp16
    size=(); baseline_size=(); ghost_shape=512,128,32,32
fi
# shellcheck disable=SC2206  # EXTRA is split into options on purpose
common=(--data "$data" --device "$device" ${EXTRA:-})
train=("$python" -m graphnet.cli train)

printf 'stage\tstatus\tseconds\n' > "$out/stages.tsv"
start=$SECONDS

# stage NAME LIMIT_S COMMAND...: run COMMAND under timeout, output to OUT_DIR/NAME.txt and the terminal
stage() {
    local name=$1 limit=$2 left status began
    shift 2
    left=$((budget - (SECONDS - start)))
    if [ "$left" -lt 20 ]; then
        echo "== $name: skipped, ${left} s of the ${budget} s budget left" | tee "$out/$name.txt"
        printf '%s\tskipped\t0\n' "$name" >> "$out/stages.tsv"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (at most $limit s)"
    began=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.txt" 2>&1
    status=$?
    tail -n 4 "$out/$name.txt"
    [ "$status" -eq 124 ] && echo "== $name: timed out after $limit s" | tee -a "$out/$name.txt"
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - began))" >> "$out/stages.tsv"
}

stage env 60 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
\"$python\" -m graphnet.cli --version
\"$python\" -c \"import torch, platform; print('python', platform.python_version(), '| torch', torch.__version__,
'| CUDA', torch.version.cuda, '| cuDNN', torch.backends.cudnn.version(), '|',
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')\""
stage decode 120 "$python" -c "import sys, time; from graphnet.data import load_dataset
t = time.perf_counter(); d = load_dataset(sys.argv[1], progress=False)
print(d, f'loaded in {time.perf_counter() - t:.1f} s')" "$data"
stage smoke 60 "${train[@]}" "${common[@]}" --precision "$bf16" "${size[@]}" --epochs 1 --out "$work/smoke"
stage airbench94 60 "${train[@]}" "${common[@]}" --precision "$bf16" "${size[@]}" --runs "$runs" --recipe airbench94 \
    --channels-last --out "$work/airbench94"
stage airbench94_muon 60 "${train[@]}" "${common[@]}" --precision "$bf16" "${size[@]}" --runs "$runs" \
    --recipe airbench94_muon --channels-last --out "$work/airbench94_muon"
stage final_bf16_cl_reshape 100 "${train[@]}" "${common[@]}" --precision "$bf16" "${size[@]}" --runs "$runs" \
    --channels-last --ghost-bn-method reshape --out "$work/final_bf16_cl_reshape"
stage final_bf16_contiguous 100 "${train[@]}" "${common[@]}" --precision "$bf16" "${size[@]}" --runs "$runs" \
    --no-channels-last --ghost-bn-method reshape --out "$work/final_bf16_contiguous"
stage final_bf16_cl_view 100 "${train[@]}" "${common[@]}" --precision "$bf16" "${size[@]}" --runs "$runs" \
    --channels-last --ghost-bn-method view --out "$work/final_bf16_cl_view"
stage final_fp16 50 "${train[@]}" "${common[@]}" --precision "$fp16" "${size[@]}" --out "$work/final_fp16"
stage baseline 120 "${train[@]}" "${common[@]}" --precision "$bf16" "${baseline_size[@]}" --recipe baseline \
    --out "$work/baseline"
stage ghost_bn 40 "$python" benchmarks/ghost_bn.py --device "$device" --shape "$ghost_shape"
stage final_bf16_cl_chunks 100 "${train[@]}" "${common[@]}" --precision "$bf16" "${size[@]}" --runs "$runs" \
    --channels-last --ghost-bn-method chunks --out "$work/final_bf16_cl_chunks"
"$python" benchmarks/summarise_runs.py "$work" | tee "$out/summary.txt"
tar -czf "$out/runs.tar.gz" -C "$work" --exclude checkpoint.pt .
if [ "$(stat -c %s "$out/runs.tar.gz")" -ge 16000000 ]; then  # keep it small: logs only
    tar -czf "$out/runs.tar.gz" -C "$work" --exclude checkpoint.pt --exclude curves.png .
fi
echo "gpu_bag_of_tricks: done in $((SECONDS - start)) s; results in $out"
cat "$out/stages.tsv"
