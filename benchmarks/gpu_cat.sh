#!/usr/bin/env bash
# The CAT figures on one GPU in one sitting: the CUDA tests, then any `cat_study.py` plans, all sharing the GPU
# (a training step here is launch-bound, so concurrent trainings cost each other little), data resident on it.
#
#   benchmarks/gpu_cat.sh SRC OUT DEADLINE_S PLAN:EPOCHS:JOBS[:VARIANT,...] ...
#   e.g. benchmarks/gpu_cat.sh ../shared/datasets out 470 vgg16:30:1:cat_log5_no_finetune attribution:20:9
#
# SRC holds cifar10-jpg.tar.gz and make_cifar10_batches.py (../shared/datasets), and tiny-imagenet-mini.tar.gz
# for the tiny plan. Every study stops at DEADLINE_S; trainings it cut leave their per-epoch curves in
# OUT/unfinished_curves.json. OUT/sitting.tar.gz holds everything (the device tool returns a few files only).
# A dry run here before a GPU sitting: GPU_CAT_DEVICE=cpu GPU_CAT_SET="max_train_images=256 max_test_images=256"
# (and GPU_CAT_PYTHONPATH=DIR to shadow packages the GPU machine lacks, e.g. optuna and ray, with failing stubs).
set -u
src=$1 out=$2 deadline=$3; shift 3
start=$(date +%s)
export PYTHONPATH=$PWD${GPU_CAT_PYTHONPATH:+:$GPU_CAT_PYTHONPATH} PYTHONUNBUFFERED=1 DSE_CACHE_DIR=/tmp/dse-cache
data=/tmp/dse-data work=/tmp/dse-work
mkdir -p "$data" "$out/sitting"
log=$out/sitting
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$log/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$log/gpu.txt" 2>&1
timeout 240 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider > "$log/cuda_tests.txt" 2>&1 &
[[ " $* " == *" tiny:"* ]] && tar xzf "$src/tiny-imagenet-mini.tar.gz" -C "$data"
python3 "$src/make_cifar10_batches.py" "$data" --tar "$src/cifar10-jpg.tar.gz" > "$log/data.txt" 2>&1
echo "data ready after $(( $(date +%s) - start )) s" >> "$log/data.txt"
left=$(( deadline - ($(date +%s) - start) ))
for study in "$@"; do
  IFS=: read -r plan epochs jobs only <<< "$study"
  timeout "$left" python3 benchmarks/cat_study.py --plan "$plan" --epochs "$epochs" --jobs "$jobs" --device "${GPU_CAT_DEVICE:-cuda}" \
    --data-dir "$data" --work "$work" --out "$log/$plan" ${only:+--only ${only//,/ }} ${GPU_CAT_SET:+--set $GPU_CAT_SET} > "$log/$plan.log" 2>&1 &
done
wait
# trainings the deadline cut still have their per-epoch curve in their resumable state
python3 - "$work" "$log" <<'PY'
import json, sys, pathlib, torch
work, out = map(pathlib.Path, sys.argv[1:])
cut = {str(p.parent.relative_to(work)): torch.load(p, weights_only=True)["curve"] for p in work.rglob("train_state.pt")}
(out / "unfinished_curves.json").write_text(json.dumps(cut, indent=1))
PY
for f in "$work"/*/*/log.txt; do d=$(dirname "$f"); cp "$f" "$log/$(basename "$(dirname "$d")")-$(basename "$d").train.log"; done 2>/dev/null
echo "total $(( $(date +%s) - start )) s" >> "$log/data.txt"
tar czf "$out/sitting.tar.gz" -C "$out" sitting
