#!/usr/bin/env bash
# GPU smoke test: does nlp-transfer train on a CUDA machine in each of its main modes? Run from the repo root:
#
#   bash benchmarks/gpu_smoke.sh          # on a CUDA machine: SST-2 slice of 2,000 rows, 1 epoch per check
#   bash benchmarks/gpu_smoke.sh --cpu    # dry run on a CPU: 64 rows, the same steps, DDP over 2 CPU processes
#
# Checks, each through the SST-2 recipe (recipes/sentiment.py recipes/configs/sentiment/sst2_full.yaml key=value ...)
# except rank, check and speed, each with its own timeout (the GPU timeouts add up to about 13 minutes; a healthy run takes a few):
#   full_bf16    full fine-tuning with training.mixed_precision=bf16          (CPU: bf16 only where torch supports it)
#   frozen       strategy=frozen, cached encoder features, mean pooling, lr 1e-3, 3 epochs of the head
#   lora         strategy=lora (rank 8 on query/value, head trained), lr 1e-3
#   ddp_2proc    accelerate launch --multi_gpu --num_processes 2: needs 2 GPUs (SKIP with 1: NCCL refuses two
#                processes on one device); in --cpu mode 2 CPU processes over gloo
#   speed_bf16   benchmarks/speed.py --trainer-bf16: nlp-transfer against the Trainer at its best, both in bf16
#                (the figure is nlp_bf16 / trainer_grouped_bf16; on one GPU: CUDA_VISIBLE_DEVICES=0)
#   rank         nlp-transfer rank on the slice (depth 3, mean pooling, a random control): encodes on the GPU and
#                must not recommend the random control
#   check        nlp-transfer check on the frozen run: calibration and selective prediction on the GPU
# Output: one line per check, `PASS|FAIL|SKIP <name> <key figure> <seconds>`, then a summary line; exit 1 if any
# check failed. A recipe check passes when the run finishes within its timeout, writes metrics.json and run_info.json
# that say what was asked (bf16, cached features, 2 processes, an adapter), and, on a GPU, reaches a dev-accuracy floor
# well above chance (full 0.70, frozen 0.60, lora 0.65, ddp 0.65; none in --cpu mode, 64 rows are too few).
# Logs and run folders stay in a temporary folder, printed at the end when a check failed (removed otherwise).
# It installs nothing: torch with CUDA, accelerate and the package (pip install -e .) must be there already.
# SST-2 is read from ../shared/datasets/sst2 unless NLP_TRANSFER_DATASETS names another datasets folder.
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

MODE=gpu
case "${1:-}" in
--cpu) MODE=cpu ;;
"") ;;
*)
    sed -n '2,24p' "$0"
    exit 2
    ;;
esac

export HF_HUB_OFFLINE=1
export NLP_TRANSFER_DATASETS="${NLP_TRANSFER_DATASETS:-$(cd .. && pwd)/shared/datasets}"
SST2_DIR="$NLP_TRANSFER_DATASETS/sst2"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_smoke.XXXXXX")
export NLP_TRANSFER_BENCHMARK_RESULTS="$WORK/results"
FAILED=0
TOTAL_START=$SECONDS

if [[ $MODE == gpu ]]; then
    ROWS=2000 THREADS=4 EVAL_ROWS=0
    FLOOR_FULL=0.70 FLOOR_FROZEN=0.60 FLOOR_LORA=0.65 FLOOR_DDP=0.65
    T_FULL=120 T_FROZEN=90 T_LORA=120 T_DDP=120 T_SPEED=150 T_RANK=60 T_CHECK=45
    BF16=true
    GPUS=$(python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
    if [[ $GPUS -lt 1 ]]; then
        echo "FAIL cuda no_cuda_device 0"
        echo "no CUDA device visible to torch: run on a GPU machine, or use --cpu for the dry run" >&2
        exit 1
    fi
else
    ROWS=64 THREADS=1 EVAL_ROWS=64
    FLOOR_FULL=0 FLOOR_FROZEN=0 FLOOR_LORA=0 FLOOR_DDP=0
    T_FULL=180 T_FROZEN=180 T_LORA=180 T_DDP=300 T_SPEED=400 T_RANK=240 T_CHECK=120
    BF16=$(python -c "import torch; print('true' if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'false')" 2>/dev/null || echo false)
    GPUS=0
fi
export OMP_NUM_THREADS=$THREADS

# The overrides every recipe check shares: the slice, one evaluation at the end, the thread count, the data files.
COMMON=(
    "data.train_file=$SST2_DIR/train.tsv" "data.validation_file=$SST2_DIR/dev.tsv"
    "data.max_train_samples=$ROWS" training.epochs=1 training.eval_strategy=epoch "training.torch_threads=$THREADS"
)
[[ $EVAL_ROWS -gt 0 ]] && COMMON+=("data.max_eval_samples=$EVAL_ROWS")
PRECISION=no
[[ $BF16 == true ]] && PRECISION=bf16

# run_facts RUN_DIR FLOOR EXPECT: print the key figure of a finished run; non-zero when a fact or the floor is missed.
# EXPECT is one of: bf16 (mixed_precision recorded), cached (train features encoded once), adapter, processes2.
run_facts() {
    python - "$@" <<'PY'
import json, sys
from pathlib import Path

run, floor, expect = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
accuracy = json.loads((run / "metrics.json").read_text())["validation"]["accuracy"]
info = json.loads((run / "run_info.json").read_text())
facts = {
    "bf16": info.get("mixed_precision") == "bf16",
    "fp32": info.get("mixed_precision") == "no",
    "cached": "train" in (info.get("feature_encoding_seconds") or {}),
    "adapter": (run / "adapter" / "adapter_config.json").is_file(),
    "processes2": info.get("num_processes") == 2,
}
print(f"dev_accuracy={accuracy:.4f}")
if not facts[expect]:
    print(f"run_info does not show {expect}", file=sys.stderr)
sys.exit(0 if facts[expect] and accuracy >= floor else 1)
PY
}

# rank_facts: the recommendation of nlp-transfer rank, which must be a pretrained candidate.
rank_facts() {
    python - "$WORK/rank/rank.json" <<'PY'
import json, sys

report = json.load(open(sys.argv[1]))
failed = [c["name"] for c in report["candidates"] if c["error"]]
print(f"recommended={report['recommended'].split('@')[-1]}")
sys.exit(1 if failed or report["recommended"].endswith("init=random") else 0)
PY
}

# check_facts: the calibration error before and after the fitted temperature.
check_facts() {
    python - "$WORK/frozen/check/check.json" <<'PY'
import json, math, sys

c = json.load(open(sys.argv[1]))["calibration"]
print(f"ece={c['ece']:.4f}->{c['ece_after_temperature']:.4f}")
sys.exit(0 if math.isfinite(c["ece_after_temperature"]) else 1)
PY
}

# speed_facts: the bf16 throughput ratio (and the float32 one) from speed.py's JSON result.
speed_facts() {
    python - "$NLP_TRANSFER_BENCHMARK_RESULTS/speed_$ROWS.json" <<'PY'
import json, sys

results = json.load(open(sys.argv[1]))["results"]
rate = {name: values["samples_per_second"] for name, values in results.items() if "samples_per_second" in values}
figures = [f"fp32_vs_trainer={rate['nlp_fp32'] / rate['trainer_grouped']:.2f}x"]
if "nlp_bf16" in rate and "trainer_grouped_bf16" in rate:
    figures.insert(0, f"bf16_vs_trainer_bf16={rate['nlp_bf16'] / rate['trainer_grouped_bf16']:.2f}x")
print(",".join(figures))
PY
}

# check NAME TIMEOUT FACTS_COMMAND -- COMMAND...: run COMMAND under TIMEOUT, then FACTS_COMMAND for the figure.
check() {
    local name=$1 limit=$2 facts=$3 start=$SECONDS figure="" status=PASS rc
    shift 4
    timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    if [[ $rc -ne 0 ]]; then
        status=FAIL
        figure="exit_$rc"
        [[ $rc -eq 124 ]] && figure="timeout_${limit}s"
    elif ! figure=$(eval "$facts" 2>>"$WORK/$name.log"); then
        status=FAIL
    fi
    [[ $status == FAIL ]] && FAILED=$((FAILED + 1))
    echo "$status $name ${figure:-no_figure} $((SECONDS - start))"
}

if [[ ! -f $SST2_DIR/train.tsv ]]; then
    echo "FAIL data missing_$SST2_DIR 0"
    exit 1
fi
echo "# gpu_smoke mode=$MODE rows=$ROWS threads=$THREADS gpus=$GPUS bf16=$BF16 work=$WORK"

RECIPE=(python recipes/sentiment.py recipes/configs/sentiment/sst2_full.yaml --overwrite "${COMMON[@]}")
if [[ $BF16 == true ]]; then
    check full_bf16 "$T_FULL" "run_facts $WORK/full_bf16 $FLOOR_FULL bf16" -- \
        "${RECIPE[@]}" "output_dir=$WORK/full_bf16" strategy=full training.mixed_precision=bf16
else
    check full_fp32 "$T_FULL" "run_facts $WORK/full_fp32 $FLOOR_FULL fp32" -- \
        "${RECIPE[@]}" "output_dir=$WORK/full_fp32" strategy=full
fi
check frozen "$T_FROZEN" "run_facts $WORK/frozen $FLOOR_FROZEN cached" -- \
    "${RECIPE[@]}" "output_dir=$WORK/frozen" strategy=frozen transfer.cache_features=true transfer.pooling=mean \
    training.learning_rate=1e-3 training.epochs=3 "training.mixed_precision=$PRECISION"
check lora "$T_LORA" "run_facts $WORK/lora $FLOOR_LORA adapter" -- \
    "${RECIPE[@]}" "output_dir=$WORK/lora" strategy=lora training.learning_rate=1e-3 "training.mixed_precision=$PRECISION"

# rank: candidates encoded where the run would train; check: the frozen run's calibration
check rank "$T_RANK" rank_facts -- python -m nlp_transfer.cli rank recipes/configs/sentiment/sst2_full.yaml \
    "${COMMON[@]}" "training.torch_threads=$THREADS" --models @depth=3,@pooling=mean,@init=random --sample 1000 \
    --output "$WORK/rank"
check check "$T_CHECK" check_facts -- python -m nlp_transfer.cli check "$WORK/frozen"

# DDP: 2 processes, float32, each with the recipe's batch (effective batch 64)
LAUNCH=(python -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no
    --dynamo_backend no --main_process_port 29533 "${RECIPE[@]:1}" "output_dir=$WORK/ddp_2proc")
if [[ $MODE == cpu ]]; then
    check ddp_2proc "$T_DDP" "run_facts $WORK/ddp_2proc $FLOOR_DDP processes2" -- env CUDA_VISIBLE_DEVICES= "${LAUNCH[@]}"
elif [[ $GPUS -ge 2 ]]; then
    check ddp_2proc "$T_DDP" "run_facts $WORK/ddp_2proc $FLOOR_DDP processes2" -- env CUDA_VISIBLE_DEVICES=0,1 "${LAUNCH[@]}"
else
    echo "SKIP ddp_2proc needs_2_gpus_found_$GPUS 0"
fi

# speed: the Trainer at its best (length-grouped) against nlp-transfer, both in bf16 where bf16 runs
SPEED=(python benchmarks/speed.py --train-rows "$ROWS" --threads "$THREADS")
if [[ $BF16 == true ]]; then
    check speed_bf16 "$T_SPEED" speed_facts -- env CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0}" \
        "${SPEED[@]}" --skip trainer_random --trainer-bf16
else
    check speed_fp32 "$T_SPEED" speed_facts -- "${SPEED[@]}" --skip trainer_random,nlp_bf16
fi

echo "# $FAILED failed, $((SECONDS - TOTAL_START)) s in all"
if [[ $FAILED -gt 0 ]]; then
    echo "# logs and runs kept in $WORK" >&2
    exit 1
fi
rm -rf "$WORK"
