#!/usr/bin/env bash
# Real-data benchmark of the cxr_lejepa bundle on PneumoniaMNIST (MedMNIST v2, 28x28 upsampled to 64x64):
# LeJEPA pretraining capped at 15 minutes of wall-clock time on the machine it runs on, then every evaluation protocol
# (linear probe, kNN, few-shot, label-fraction sweep, fine-tuning, supervised-from-scratch and random-init baselines).
#
#     bash benchmarks/pneumoniamnist.sh            # from the repository root; needs ../shared/data/pneumoniamnist
#
# Outputs: benchmarks/results/pneumoniamnist/{metrics.json,report.md,label_efficiency.png,pretrain_log.txt,commands.md}
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/pneumoniamnist/pneumoniamnist.npz}
OUT=${OUT:-/tmp/cxr_lejepa_pneumoniamnist}
RES=benchmarks/results/pneumoniamnist
[ -f "$DATA" ] || { echo "PneumoniaMNIST not found at $DATA (set DATA=...)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT" "$RES"

# ResNet-18 with the standard stem (7x7 stride-2 convolution + max pooling), batch 128, 2 global 64x64 + 6 local
# 27x27 views, lambda 0.05, AdamW 5e-4, 1 warm-up epoch then cosine over 21 epochs, stopped at 15 minutes at most.
TRAIN=(python -m monai.bundle run training --config_file bundles/cxr_lejepa/configs/train.json
    --dataset_dir "$DATA" --output_dir "$OUT" --batch_size 128 --max_epochs 21 --time_limit_minutes 15
    --network_def#conv1_t_size 7 --network_def#no_max_pool False)
EVAL=(python -m monai.bundle run evaluating
    --config_file "['bundles/cxr_lejepa/configs/train.json','bundles/cxr_lejepa/configs/evaluate.json']"
    --dataset_dir "$DATA" --output_dir "$OUT" --batch_size 128
    --network_def#conv1_t_size 7 --network_def#no_max_pool False
    --eval_label_fractions "[0.01,0.05,0.1,0.25,0.5,1.0]" --eval_seeds "[0,1,2]" --eval_shots "[1,5,10]"
    --eval_episodes 5 --eval_finetune_fractions "[0.01,0.1,1.0]" --eval_finetune_minutes 2)

start=$(date +%s)
"${TRAIN[@]}" 2>&1 | tee "$OUT/pretrain_log.txt"
pretrain_s=$(( $(date +%s) - start ))
"${EVAL[@]}" --eval_pretrain_seconds "$pretrain_s" 2>&1 | tee "$OUT/eval_log.txt"

cp "$OUT/eval/metrics.json" "$OUT/eval/report.md" "$OUT/eval/label_efficiency.png" "$RES/"
grep -E "Epoch\[[0-9]+\] Complete|Time limit|Iter: .*(0|5)/" "$OUT/pretrain_log.txt" > "$RES/pretrain_log.txt" || true
{
    echo "# Commands"
    echo
    echo "Produced by \`bash benchmarks/pneumoniamnist.sh\` at commit \`$(git rev-parse HEAD)\` on $(date -u +%FT%TZ),"
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, torch $(python -c 'import torch; print(torch.__version__)')."
    echo "Wall-clock pretraining time (including start-up): ${pretrain_s} s."
    echo
    echo '```bash'
    printf '%q ' "${TRAIN[@]}"; echo
    printf '%q ' "${EVAL[@]}"; echo "--eval_pretrain_seconds ${pretrain_s}"
    echo '```'
} > "$RES/commands.md"
echo "results in $RES"
