"""benchmarks/gpu.sh's report (gpu_report.py) on made-up runs, and --device cuda without a GPU.

The GPU run itself is not tested here (no GPU in CI): these check what the report says of a part
that passed, failed or ran out of time, and the ResNet-20 ratio against the CUDA target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_report import every_step_line, part_status, pytest_summary, render
from benchmarks.report import evaluate_targets, target_every

ROOT = Path(__file__).resolve().parents[2]


def summary(ratio: float, lo: float, hi: float) -> dict:
    return {
        "period": 1, "rounds": 5, "n_steps": 1000, "median_step_ms": 12.0, "ratio": ratio,
        "ratio_min": lo, "ratio_max": hi, "added_ms_per_step": (ratio - 1) * 12.0,
        "added_ms_per_measurement": (ratio - 1) * 12.0, "cuda_peak_mib": 300.0, "capped_blocks": 0,
    }  # fmt: skip


def results(ratio: float, lo: float, hi: float, device: str = "cuda") -> dict:
    r = {
        "run": {"argv": ["--device", device], "wall_s": 150.0},
        "machine": {"device": device, "cpu_model": "x", "logical_cores": 16, "torch_threads": 16},
        "configs": {"none": {"label": "no monitor"}, "shift_every": {"label": "every step"}},
        "workloads": {
            "cnn": {
                "summary": {"none": summary(1.0, 1.0, 1.0), "shift_every": summary(ratio, lo, hi)}
            }
        },
    }
    r["targets"] = evaluate_targets(r)
    return r


def test_cuda_target_on_resnet20_only_on_cuda():
    assert target_every("cnn", "cuda") == 1.03
    assert target_every("cnn", "cpu") == 1.10
    assert target_every("mlp", "cuda") == 1.25  # no CUDA target of its own: the CPU one
    [row] = evaluate_targets(results(1.02, 1.01, 1.025))
    assert row["target"] == "every step + histograms (CUDA) <= 1.03x" and row["met"] == "yes"
    [row] = evaluate_targets(results(1.05, 1.04, 1.06, device="cpu"))
    assert row["target"] == "every step + histograms <= 1.10x" and row["met"] == "yes"


def test_every_step_line_against_the_cuda_target():
    assert every_step_line(results(1.02, 1.01, 1.025)) == (
        "1.020x (min-max over 5 rounds 1.010-1.025)",
        "yes (target <= 1.03x)",
    )
    assert (
        every_step_line(results(1.05, 1.02, 1.08))[1]
        == "NO (spread crosses target) (target <= 1.03x)"
    )
    assert every_step_line(None) == ("not measured", "n/a")


def test_part_status_and_pytest_summary():
    assert part_status(0, 41) == "ok"
    assert part_status(124, 150, timeout=150) == "timed out (limit 150 s)"
    assert part_status(137, 170) == "timed out after 170 s"
    assert part_status(1, 30) == "FAILED (exit 1)"
    log = "....\n==== short test summary info ====\nFAILED tests/cuda/test_cuda.py::t\n=== 1 failed, 2 passed, 970 deselected in 30.1s ===\n"
    assert pytest_summary(log) == "1 failed, 2 passed, 970 deselected in 30.1s"
    assert pytest_summary("no counts here") is None


def test_render_links_the_overhead_table_and_quotes_failed_parts(tmp_path):
    gpu = tmp_path / "results" / "gpu"
    gpu.mkdir(parents=True)
    (gpu / "overhead.json").write_text(json.dumps(results(1.02, 1.01, 1.025)))
    tests_log = gpu / "tests.log"
    tests_log.write_text(
        "\n".join(f"line {i}" for i in range(50)) + "\n=== 1 failed, 2 passed in 9s ===\n"
    )
    bench_log = gpu / "overhead.log"
    bench_log.write_text("wrote overhead.md\n")
    md = render(
        "gpu: H200\ncommit: abc123\n",
        [("tests marked cuda", str(tests_log), 1, 40), ("overhead", str(bench_log), 0, 160)],
        gpu,
        tmp_path / "results" / "gpu.md",
        {"tests marked cuda": 150},
    )
    assert "gpu: H200\ncommit: abc123" in md
    assert "| tests marked cuda | FAILED (exit 1): 1 failed, 2 passed in 9s | 40 |" in md
    assert "| overhead | ok | 160 |" in md
    assert "1.020x (min-max over 5 rounds 1.010-1.025): yes (target <= 1.03x)" in md
    assert "[`gpu/overhead.md`](gpu/overhead.md)" in md
    assert "| every step | 1.020x (1.010-1.025) | 0.24 | 12.00 | 1000 | 300 |" in md
    assert "| every step + histograms (CUDA) <= 1.03x | 1.020x | yes |" in md
    assert "line 11\n" in md and "line 10\n" not in md  # a failed part: its last 40 lines


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message of a machine without CUDA"
)
def test_device_cuda_without_a_gpu_stops_in_one_line(tmp_path):
    cmd = [sys.executable, "benchmarks/overhead.py", "--device", "cuda", "--workloads", "cnn"]
    cmd += ["--sections", "timing", "--configs", "shift_every", "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert (
        line.startswith("--device cuda: torch ") and "sees no CUDA device; nothing measured" in line
    )
    assert not (tmp_path / "out").exists()
