#!/usr/bin/env bash
# The CAT figures on one GPU in one sitting: the CUDA tests, then VGG-16 (FP and CAT), the small-VGG loss
# attribution on CIFAR-10 and small VGG on Tiny-ImageNet, all trainings sharing the GPU, data resident on it.
#
#   benchmarks/gpu_cat.sh SRC OUT [DEADLINE_S] [EPOCHS_SMALL] [EPOCHS_VGG16]
#
# SRC holds cifar10-jpg.tar.gz, tiny-imagenet-mini.tar.gz and make_cifar10_batches.py (../shared/datasets);
# OUT receives the logs, each plan's table and JSON rows, and the curves of any training the deadline cut.
set -u
src=$1 out=$2 deadline=${3:-480} es=${4:-20} ev=${5:-30}
start=$(date +%s)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 DSE_CACHE_DIR=/tmp/dse-cache
data=/tmp/dse-data work=/tmp/dse-work
mkdir -p "$data" "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$out/gpu.txt" 2>&1
timeout 200 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider > "$out/cuda_tests.txt" 2>&1 &
tests=$!
tar xzf "$src/tiny-imagenet-mini.tar.gz" -C "$data"
python3 "$src/make_cifar10_batches.py" "$data" --tar "$src/cifar10-jpg.tar.gz" > "$out/data.txt" 2>&1
echo "data ready after $(( $(date +%s) - start )) s" >> "$out/data.txt"
left=$(( deadline - ($(date +%s) - start) ))
study() {  # plan epochs jobs [cat_study options]
  local plan=$1 epochs=$2 jobs=$3; shift 3
  timeout "$left" python3 benchmarks/cat_study.py --plan "$plan" --epochs "$epochs" --jobs "$jobs" --device cuda \
    --data-dir "$data" --work "$work" --out "$out/$plan" "$@" > "$out/$plan.log" 2>&1
}
study vgg16 "$ev" 2 &
study attribution "$es" 9 ${ATTRIBUTION_ONLY:+--only $ATTRIBUTION_ONLY} &
study tiny 30 2 &
wait
# trainings the deadline cut still have their per-epoch curve in their resumable state
python3 - "$work" "$out" <<'EOF'
import json, sys, pathlib, torch
work, out = map(pathlib.Path, sys.argv[1:])
cut = {str(p.parent.relative_to(work)): torch.load(p, weights_only=True)["curve"] for p in work.rglob("train_state.pt")}
(out / "unfinished_curves.json").write_text(json.dumps(cut, indent=1))
EOF
echo "total $(( $(date +%s) - start )) s" >> "$out/data.txt"
