#!/usr/bin/env bash
# The checks that need a GPU, in one run of under 8 minutes on one CUDA GPU, ending in one table:
#   1. the `gpu`-marked tests;
#   2. a 1-rank PPG run with the process group forced (VPT_RL_DIST_FORCE=1): NCCL on the GPU runs
#      every collective a multi-GPU job runs, plus a --resume from its sharded checkpoint;
#   3. a 1x PPG run from a 134-key (foundation-layout) file in bf16, stopped and resumed, with the
#      PPO ratio on the first minibatch before any update (train/ratio_dev_first: acting one frame
#      at a time and training on whole segments round differently in bf16 on CUDA; it must start
#      at 1 within RATIO_TOL);
#   4. bench/speed/gpu.py (1x and 2x, fp32 and bf16, MFU).
#
#   bash scripts/gpu_check.sh              # on the GPU machine, from the repository root
#   bash scripts/gpu_check.sh --cpu        # the same steps on CPU at toy sizes (CI runs this)
#
# Every figure goes to $OUT_DIR (default bench/out/gpu_check) and the table to stdout; the exit
# code is non-zero when a step fails or the ratio is off by more than RATIO_TOL.
set -uo pipefail
cd "$(dirname "$0")/.."

CPU=0
[[ "${1:-}" == "--cpu" ]] && CPU=1
PY=${PYTHON:-python}
OUT_DIR=${OUT_DIR:-bench/out/gpu_check}
RATIO_TOL=${RATIO_TOL:-0.05}   # bf16 trunk: log-probs within 0.15 nats of fp32 (docs/benchmarks.md); the two bf16 paths agree far closer
rm -rf "$OUT_DIR" && mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/results.tsv"
: >"$RESULTS"
FAILED=0

if [[ $CPU == 1 ]]; then
    DEVICE=cpu; PRESET=tiny; FRAMES=64; GPU_BENCH=(--device cpu --quick)
else
    DEVICE=cuda; PRESET=1x; FRAMES=512; GPU_BENCH=()
fi

record() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; }

step() {  # step NAME COMMAND...: run, time, record ok/FAIL
    local name=$1; shift
    local t0=$SECONDS
    echo "=== $name: $*"
    if "$@" >"$OUT_DIR/$name.log" 2>&1; then
        record "$name" "ok ($((SECONDS - t0)) s)"
    else
        record "$name" "FAIL ($((SECONDS - t0)) s; see $OUT_DIR/$name.log)"
        tail -20 "$OUT_DIR/$name.log"
        FAILED=1
    fi
}

csv_last() {  # csv_last FILE COLUMN: the column's first non-empty value in a progress CSV
    "$PY" - "$1" "$2" <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get(sys.argv[2])]
print(rows[0][sys.argv[2]] if rows else "missing")
EOF
}

# 1. gpu-marked tests (skipped with their reason on CPU)
step gpu_tests "$PY" -m pytest -q -m gpu tests

# 2. one forced rank: the NCCL path (gloo on CPU) with checkpoint and resume
RUNS="$OUT_DIR/runs"
COMMON=(--config configs/smoke.yaml --runs-dir "$RUNS" log.progress=false "device=$DEVICE" env.num_envs=2 ppg.segment_len=16)
step forced_rank env VPT_RL_DIST_FORCE=1 "$PY" train_ppo.py "${COMMON[@]}" --run-name forced total_frames=64 stop_after_frames=32
step forced_resume env VPT_RL_DIST_FORCE=1 "$PY" train_ppo.py --resume "$RUNS/forced" log.progress=false
grep -q "data parallel: 1 ranks" "$RUNS/forced/train.log" && record forced_group "process group of 1 started" || { record forced_group "FAIL: no process group"; FAILED=1; }

# 3. a policy from a 134-key file (the released foundation layout), bf16, stopped and resumed
INIT="$OUT_DIR/init-$PRESET.weights"
step make_init "$PY" - "$PRESET" "$INIT" <<'EOF'
import sys
from vpt_rl import VPTConfig, VPTPolicy, save_weights
policy = VPTPolicy(VPTConfig.preset(sys.argv[1]), aux_value_head=False)  # 134 keys, as foundation files
save_weights(policy, sys.argv[2])
EOF
BF16=(--init "$INIT" --config configs/smoke.yaml --runs-dir "$RUNS" log.progress=false "device=$DEVICE" perf.precision=bf16 env.num_envs=2 ppg.segment_len=16 "total_frames=$FRAMES")
step bf16_run "$PY" train_ppo.py "${BF16[@]}" --run-name bf16 "stop_after_frames=$((FRAMES / 2))"
step bf16_resume "$PY" train_ppo.py --resume "$RUNS/bf16" log.progress=false
if [[ -f "$RUNS/bf16/progress.csv" ]]; then
    RATIO=$(csv_last "$RUNS/bf16/progress.csv" train/ratio_dev_first)
    record ratio_dev_first "$RATIO (tolerance $RATIO_TOL)"
    "$PY" -c "import sys; sys.exit(0 if float('$RATIO') <= $RATIO_TOL else 1)" 2>/dev/null || { record ratio_check "FAIL: above tolerance"; FAILED=1; }
fi
grep -h "frames/s" "$RUNS"/bf16/train.log | tail -1 | sed 's/^/    /' >"$OUT_DIR/bf16_speed.txt" || true
[[ -s "$OUT_DIR/bf16_speed.txt" ]] && record bf16_speed "$(tr -s ' ' <"$OUT_DIR/bf16_speed.txt")"

# 4. the model benchmark
step gpu_bench "$PY" bench/speed/gpu.py "${GPU_BENCH[@]}" --out "$OUT_DIR/gpu.json"

echo
echo "=== gpu_check ($DEVICE, $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")'))"
column -t -s $'\t' "$RESULTS" 2>/dev/null || cat "$RESULTS"
[[ -f "$OUT_DIR/gpu_bench.log" ]] && tail -25 "$OUT_DIR/gpu_bench.log"
exit $FAILED
