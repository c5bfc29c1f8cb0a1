#!/usr/bin/env bash
# GPU check (issue 13): on a machine with an NVIDIA GPU, in at most 8 minutes,
#   1. the tests marked `cuda` (they skip without a GPU): pytest -m cuda tests   (limit 150 s)
#   2. the overhead benchmark with --device cuda on ResNet-20: no monitor, ShiftMonitor()
#      defaults, ShiftMonitor every step + histograms, the two floors; 5 interleaved rounds of
#      200 timed steps, plus the phase breakdown                                  (limit 300 s)
# then writes benchmarks/results/gpu.md: the machine, the commit, each part's result and time,
# the ResNet-20 every-step ratio against the CUDA target (<= 1.03x; reported, not asserted) and
# the ResNet-20 rows of the overhead table. The overhead run's own files (overhead.md/.json,
# figures) and each part's whole log go to benchmarks/results/gpu/. Run from the repository
# root, with the project's environment:
#
#   bash benchmarks/gpu.sh                  # ~4 min expected, <= 8 min (each part under `timeout`)
#   bash benchmarks/gpu.sh --with-recipes   # also issue 12's check: one recipe cell on the GPU and
#                                           # a 1-GPU sweep, two cells at once (+ <= 2 x 240 s)
#
# Exit status: 0 when every part finished with status 0 (a missed target is not a failure); 1
# when a part failed or ran out of time (gpu.md is written anyway); 2 without a GPU (nothing run,
# nothing written). Limits can be changed with GPU_TESTS_TIMEOUT, GPU_BENCH_TIMEOUT and
# GPU_RECIPES_TIMEOUT (seconds).
set -euo pipefail

with_recipes=0
for arg in "$@"; do
    case "$arg" in
        --with-recipes) with_recipes=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "benchmarks/gpu.sh: unknown argument '$arg' (known: --with-recipes, --help)" >&2; exit 2 ;;
    esac
done

if [[ ! -f benchmarks/overhead.py ]]; then
    echo "benchmarks/gpu.sh: run it from the repository root (no benchmarks/overhead.py here)" >&2
    exit 2
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "benchmarks/gpu.sh: no NVIDIA GPU here (nvidia-smi missing or finds no device); nothing run" >&2
    exit 2
fi
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: torch sees no CUDA device (a CPU-only torch?); nothing run" >&2
    exit 2
fi

tests_timeout=${GPU_TESTS_TIMEOUT:-150}
bench_timeout=${GPU_BENCH_TIMEOUT:-300}
recipes_timeout=${GPU_RECIPES_TIMEOUT:-240}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's shiftkit
out_md=benchmarks/results/gpu.md
out_dir=benchmarks/results/gpu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# What was measured: before anything is written under benchmarks/results.
dirty=""
git diff --quiet HEAD -- shiftkit tests benchmarks 2>/dev/null || dirty=" (with uncommitted changes)"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty"
    echo "host: $(hostname), $(getconf _NPROCESSORS_ONLN) CPU cores"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/gpu: /'
    python -c "import torch, lightning; print('torch', torch.__version__, '| cuda', torch.version.cuda, '| lightning', lightning.__version__)"
} > "$work/machine.txt"
cat "$work/machine.txt"
rm -rf "$out_dir"  # no stale numbers from an earlier run
mkdir -p "$out_dir"

report_args=()
failed=0
part() {  # part NAME LIMIT_S LOG CMD...: run CMD under `timeout`, log its output, keep status and time
    local name=$1 limit=$2 log=$3 start=$SECONDS code
    shift 3
    echo; echo "== $name (limit ${limit} s): $*"
    echo "\$ $*" > "$log"
    set +e
    timeout --kill-after=20 "$limit" "$@" 2>&1 | tee -a "$log"
    code=${PIPESTATUS[0]}
    set -e
    echo "== $name: exit $code, $((SECONDS - start)) s"
    report_args+=(--part "$name" "$log" "$code" "$((SECONDS - start))" --timeout "$name" "$limit")
    if [[ $code -ne 0 ]]; then failed=1; fi
}

# 1. The tests marked cuda (tests/cuda/: the CPU's statistics on the GPU).
part "tests marked cuda" "$tests_timeout" "$out_dir/tests.log" \
    python -m pytest -q -p no:cacheprovider -rfEsp -m cuda tests

# 2. The overhead benchmark on the GPU, ResNet-20 only (the workload of the CUDA target).
part "overhead benchmark, --device cuda" "$bench_timeout" "$out_dir/overhead.log" \
    python benchmarks/overhead.py --device cuda --workloads cnn --sections timing \
    --configs shift_default,shift_every,floor_read,floor_moments \
    --rounds 5 --steps 200 --time-cap 20 --out "$out_dir"

# 3. Optional (--with-recipes): issue 12's recipe cell and 1-GPU sweep.
if [[ $with_recipes -eq 1 ]]; then
    part "recipe cell on the GPU" "$recipes_timeout" "$out_dir/recipe.log" \
        python -m shiftkit fit --config recipes/mnist_fig1.yaml --variant bn \
        --trainer.accelerator=gpu --trainer.devices=1 --trainer.max_steps=500 \
        --trainer.enable_progress_bar=false --run_dir="$work/cell"
    if [[ -f "$work/cell/result.json" ]]; then
        python - "$work/cell/result.json" <<'PY' | tee -a "$out_dir/recipe.log"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"cell: steps={r['steps']} wall_time_s={r['wall_time_s']:.1f} "
      f"best_val_acc={r['metrics'].get('best_val_acc')} monitor measurements={r['monitor']['measurements']}")
PY
    fi
    visible="${CUDA_VISIBLE_DEVICES:-0}"
    # Two cells at once on the first visible GPU (device slots: 1 GPU x 2 cells).
    part "1-GPU sweep, 2 cells per device" "$recipes_timeout" "$out_dir/sweep.log" \
        env CUDA_VISIBLE_DEVICES="${visible%%,*}" python -m shiftkit sweep recipes/mnist_fig1.yaml --seeds 0 1 \
        --devices-per-cell 1 --cells-per-device 2 --out "$work/grid" --no-progress \
        -- --trainer.accelerator=gpu --trainer.max_steps=500
fi

echo
python benchmarks/gpu_report.py --out "$out_md" --machine "$work/machine.txt" \
    --overhead "$out_dir" "${report_args[@]}"
grep -m1 "^| ResNet-20" "$out_md" || true
exit "$failed"
