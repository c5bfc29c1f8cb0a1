"""The README's demo command, run with a tiny step count."""

import subprocess
import sys
from pathlib import Path

from shiftkit.records import read_run, read_wandb_offline, wait_for_wandb_run

REPO = Path(__file__).resolve().parents[1]


def run_demo(tmp_path, *args):
    # `shiftkit demo ...`, the README command, through the console script's entry point
    cmd = [sys.executable, "-m", "shiftkit", "demo", "--steps", "40", "--every", "10", "--out", str(tmp_path), *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_demo_prints_most_shifted_table_and_writes_a_run_directory(tmp_path):
    out = run_demo(tmp_path, "--wandb")
    assert "Most-shifted layer inputs over 40 steps" in out
    run_dir = next(tmp_path.glob("paper_mlp-none/version_*"))
    run = read_run(run_dir)
    assert run.result["steps"] == 40 and run.result["diverged"] is False
    history = run.history
    assert sorted(history.step.unique()) == [0, 10, 20, 30]
    # The printed table is the monitor's summary: its top site has the largest mean kl_gauss.
    means = history.groupby("site").kl_gauss.mean()
    table_lines = out.split("Most-shifted layer inputs")[1].splitlines()[2:]
    assert table_lines[0].split()[0] == means.idxmax()
    # The local CSV and the offline W&B run hold the same shift values.
    logged = run.metrics.set_index("step")
    top = means.idxmax()
    last = history[history.site == top].set_index("step").kl_gauss
    assert logged.loc[30, f"shift/{top}/kl_gauss"] == last.loc[30]
    wandb_frame = read_wandb_offline(wait_for_wandb_run(run_dir / "wandb"), step_col="trainer/global_step")
    assert wandb_frame.set_index("trainer/global_step").loc[30, f"shift/{top}/kl_gauss"] == last.loc[30]
    assert "wandb sync" in out


def test_demo_rejects_bad_arguments(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "shiftkit", "demo", "--steps", "0", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and "--steps and --every must be >= 1" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing half-written
