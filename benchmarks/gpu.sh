#!/usr/bin/env bash
# GPU check of the recipes and of `shiftkit sweep --devices-per-cell` (issue 12): one recipe cell
# on a GPU, then a 1-GPU grid with two cells at once through the sweep's device slots
# (--devices-per-cell 1 --cells-per-device 2). Writes what it printed, with the machine, to
# benchmarks/results/gpu.md. Run from the repository root, with the project's environment:
#
#   bash benchmarks/gpu.sh            # ~2-3 min on one GPU
#
# Without a GPU it stops at once with a message and writes nothing. It is not a test: it checks
# that the cells finish (exit status) and records their times; it asserts no timing.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "benchmarks/gpu.sh: no NVIDIA GPU here (nvidia-smi missing or finds no device); nothing run" >&2
    exit 2
fi
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: torch sees no CUDA device (a CPU-only torch?); nothing run" >&2
    exit 2
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's shiftkit
out_md=benchmarks/results/gpu.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$work/gpu.log"

run() {  # echo the command, run it, keep its output, exit status and time for the record
    echo "\$ $*" | tee -a "$log"
    local start=$SECONDS code
    set +e
    "$@" 2>&1 | tee -a "$log"
    code=${PIPESTATUS[0]}
    set -e
    echo "(exit $code, $((SECONDS - start)) s)" | tee -a "$log"
    echo | tee -a "$log"
    return "$code"
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| lightning', lightning.__version__)"
    echo
} | tee -a "$log"

# 1. One recipe cell on the GPU: C1's BN variant, 500 steps.
run python -m shiftkit.cli fit --config recipes/mnist_fig1.yaml --variant bn \
    --trainer.accelerator=gpu --trainer.devices=1 --trainer.max_steps=500 \
    --trainer.enable_progress_bar=false --run_dir="$work/cell"
python - "$work/cell/result.json" <<'PY' | tee -a "$log"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"cell: steps={r['steps']} wall_time_s={r['wall_time_s']:.1f} "
      f"best_val_acc={r['metrics'].get('best_val_acc')} monitor measurements={r['monitor']['measurements']}")
PY
echo | tee -a "$log"

# 2. A 1-GPU grid, two cells at once on the same GPU (device slots: 1 GPU x 2 cells).
visible="${CUDA_VISIBLE_DEVICES:-0}"
export CUDA_VISIBLE_DEVICES="${visible%%,*}"  # the first visible GPU only
run python -m shiftkit.cli sweep \
    recipes/mnist_fig1.yaml --seeds 0 1 --devices-per-cell 1 --cells-per-device 2 \
    --out "$work/grid" --no-progress -- --trainer.accelerator=gpu --trainer.max_steps=500

{
    echo "# GPU check (benchmarks/gpu.sh)"
    echo
    echo "Printed by \`bash benchmarks/gpu.sh\` (one recipe cell on a GPU; a 1-GPU grid of"
    echo "4 cells, two at once through \`--devices-per-cell 1 --cells-per-device 2\`)."
    echo
    echo '```'
    cat "$log"
    echo '```'
} > "$out_md"
echo "wrote $out_md"
