#!/usr/bin/env bash
# Train the default model's candidates on a lent GPU in one call of the device tool (issue 12).
# Not yet run: no session with this script has had the device.
#
# Here (CPU machine), once:
#   taskvec data fetch --out runs/bank && mkdir -p .bank && taskvec data pack runs/bank .bank/bank.tar
#   echo /.bank/ >> .git/info/exclude          # 21 MiB: travels beside the ~22 MiB tree (limit 64 MiB)
# Device tool: run(command="bash benchmarks/gpu_train.sh .bank/bank.tar 4", carry=[".bank"], timeout_s=600)
#
# Each config in CONFIGS fine-tunes the shipped tiny weights on the bank for MINUTES minutes (same data,
# seed and budget: the head comparison); weights, cards and histories come back under $OUT.
# The device image already has torch, click, safetensors, tqdm, scikit-image and OpenCV.
set -euo pipefail
BANK=${1:?usage: benchmarks/gpu_train.sh BANK.tar [MINUTES per config]}
MINUTES=${2:-4}
CONFIGS=${CONFIGS:-"tiny tiny_refine"}
DEST=${OUT:-runs/gpu}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$DEST"
python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())'
for cfg in $CONFIGS; do
  python3 -m taskvec.cli train --config "$cfg" --init taskvec/weights/tiny.safetensors --bank "$BANK" \
    --out "runs/gpu-$cfg" --steps 100000 --batch 256 --lr 5e-4 --changed-weight 8 --grad-weight 0.5 \
    --eval-every 500 --time-budget "$MINUTES" --device cuda 2>&1 | tr '\r' '\n' | grep -v '^train ' || exit 1
  mkdir -p "$DEST/$cfg"
  cp "runs/gpu-$cfg/$cfg.safetensors" "runs/gpu-$cfg/$cfg.json" "runs/gpu-$cfg/history.json" "$DEST/$cfg/"
done
