#!/usr/bin/env bash
# The GPU checks, as one prepared script for the lent device (H100/H200).
#
# Run from the repository root on the GPU machine, whose python3 has torch, torchvision and timm:
#   bash benchmarks/gpu_run.sh train     # segwise train img/s vs the smp hand loop, CamVid 16x352x352
#                                        # bf16, with the --compile and device-augmentation arms
#   bash benchmarks/gpu_run.sh conv      # issue 17: U-Net/R34 and DeepLabv3+/R50 vs smp, 16x512x512 bf16
#   bash benchmarks/gpu_run.sh instance  # issue 12: every instance method + the torchvision peer
#   bash benchmarks/gpu_run.sh smoke     # a few steps of every instance method on CUDA
#   bash benchmarks/gpu_run.sh volumes   # issue 26: segwise train (resunet3d, then resenc_unet3d)
#                                        # vs the MONAI hand loop on MSD Hippocampus, equal work
#   bash benchmarks/gpu_run.sh conv smoke  # several jobs side by side on the one GPU
# Needs (git-ignored, carried): gpu_data/dsb2018 (a copy of ../shared/data/dsb2018),
# gpu_data/camvid (a copy of ../shared/data/camvid, for `train`), gpu_data/msd_hippocampus
# (for `volumes`) and .whl/ holding the segmentation_models_pytorch, pycocotools, monai,
# nibabel and SimpleITK wheels (cp312). Results go to $OUT
# (default benchmarks/results/gpu). Each job has its own time limit, and every benchmark
# rewrites its JSON after each model, so a job stopped at its limit keeps the rows it finished.
set -u
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
if [ -d .whl ] && [ "${WHEELS:-1}" = 1 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:src
else
    export PYTHONPATH=src
fi
export PYTHONUNBUFFERED=1
LIMIT=${LIMIT:-270}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
export PY DEVICE
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c "import torch, torchvision, timm, segmentation_models_pytorch as smp; \
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', \
timm.__version__, 'smp', smp.__version__)"
    nproc
} >"$OUT/env.txt" 2>&1

conv_chain() {  # $1 = pair, $2.. = seeds: one seed after another, so seed 0 finishes first
    local pair=$1
    shift
    for seed in "$@"; do
        "$PY" benchmarks/bench_convergence.py --device "$DEVICE" --precision bf16 \
            --steps "${CONV_STEPS:-300}" --crop "${CROP:-512}" --batch "${BATCH:-16}" --seeds "$seed" --pairs "$pair" \
            --n-train 500 --n-val 64 --val-size 256 --threads 4 --data gpu_data \
            --out "$OUT/conv_${pair}_s${seed}.json"
    done
}

run_conv() {
    timeout "$LIMIT" bash -c "$(declare -f conv_chain); OUT=$OUT conv_chain unet 0 1 2" \
        >"$OUT/conv_unet.log" 2>&1 &
    timeout "$LIMIT" bash -c "$(declare -f conv_chain); OUT=$OUT conv_chain deeplabv3plus 0 1 2" \
        >"$OUT/conv_deeplabv3plus.log" 2>&1 &
    wait
}

run_train() {  # engine vs hand loop at equal work, + compile and device-augmentation arms; crop 352:
    # CamVid frames are 360x480, so 512 px crops (the conv job's dsb2018 size) do not fit
    timeout "${TRAIN_LIMIT:-$LIMIT}" "$PY" benchmarks/bench_train.py --data gpu_data/camvid \
        --device "$DEVICE" --batch-size 16 --crop 352 --steps "${TRAIN_STEPS:-50}" --workers 6 \
        --repeats 2 --compile --augment-on device \
        --out "$OUT/train.json" >"$OUT/train.log" 2>&1
}

run_smoke() {
    timeout "${SMOKE_LIMIT:-$LIMIT}" "$PY" benchmarks/bench_instance.py --data gpu_data/dsb2018 \
        --device "$DEVICE" --steps "${SMOKE_STEPS:-40}" --batch-size 8 --crop 256 \
        --val-images 8 --overlays 0 --workers 4 \
        --methods unet_watershed yolact solov2 maskrcnn tv_maskrcnn \
        --out "$OUT/instance_smoke.json" >"$OUT/instance_smoke.log" 2>&1
}

run_instance() {
    # shellcheck disable=SC2086  # METHODS is a list
    timeout "$LIMIT" "$PY" benchmarks/bench_instance.py --data gpu_data/dsb2018 \
        --device "$DEVICE" --steps "${INSTANCE_STEPS:-1000}" --batch-size 8 --crop 256 \
        --val-images 64 --overlays 3 --workers 6 \
        --methods ${METHODS:-unet_watershed yolact solov2 maskrcnn tv_maskrcnn} \
        --out "$OUT/instance.json" >"$OUT/instance.log" 2>&1
}

run_volumes() {  # equal work on the GPU: 2000 steps of 4 patches 32x48x32, full precision
    for model in resunet3d resenc_unet3d; do
        timeout "${VOLUMES_LIMIT:-$LIMIT}" "$PY" benchmarks/bench_volumes.py \
            --data gpu_data/msd_hippocampus --device "$DEVICE" --steps "${VOLUME_STEPS:-2000}" \
            --batch 4 --threads 4 --seeds 0 --segwise-model "$model" \
            --out "$OUT/volumes_$model" --json "$OUT/volumes_$model.json" \
            >"$OUT/volumes_$model.log" 2>&1
    done
}

[ $# -gt 0 ] || { echo "usage: bash benchmarks/gpu_run.sh train|conv|smoke|instance|volumes ..." >&2; exit 2; }
for job in "$@"; do  # the jobs named run side by side on the one GPU
    case "$job" in
    train | conv | smoke | instance | volumes) "run_$job" & ;;
    *) echo "unknown job $job (train, conv, smoke, instance, volumes)" >&2; exit 2 ;;
    esac
done
wait
