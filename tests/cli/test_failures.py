"""`shiftkit fit` when things go wrong: W&B cannot start, bad data, a crash mid-run, secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shiftkit.records import HISTORY_FILE, RESULT_FILE, read_run
from tests.cli.helpers import TINY, fit, write_yaml

REPO = Path(__file__).resolve().parents[2]


def test_wandb_that_cannot_start_is_a_warning_and_the_run_completes(tmp_path, monkeypatch):
    import wandb

    def broken_init(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wandb, "init", broken_init)
    recipe = write_yaml(tmp_path / "tiny.yaml", TINY)
    with pytest.warns(UserWarning, match=r"W&B could not start \(OSError: .*No space left on device\)"):
        fit("--config", str(recipe), "--wandb=true", "--wandb_mode=offline", f"--run_dir={tmp_path / 'run'}")
    run = read_run(tmp_path / "run")
    assert run.result["steps"] == 12 and len(run.history) > 0
    assert run.metrics["val/acc"].notna().sum() == 3


def test_a_missing_data_directory_is_one_message_and_exit_status_1(tmp_path):
    cmd = [sys.executable, "-m", "shiftkit.cli", "fit", "--data=mnist", f"--data.data_dir={tmp_path / 'nowhere'}",
           "--trainer.max_steps=1", f"--run_dir={tmp_path / 'run'}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("shiftkit: error: ")
    assert "nowhere" in proc.stderr and "Traceback" not in proc.stderr


class Boom(Exception):
    pass


def test_a_crash_mid_run_keeps_what_the_monitor_measured(tmp_path, monkeypatch):
    from shiftkit.models import ShiftClassifier

    original = ShiftClassifier.training_step

    def crashing_step(self, batch, batch_idx):
        if self.global_step == 9:
            raise Boom("simulated crash at step 9")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ShiftClassifier, "training_step", crashing_step)
    recipe = write_yaml(tmp_path / "tiny.yaml", TINY)
    with pytest.raises(Boom):
        fit("--config", str(recipe), f"--run_dir={tmp_path / 'run'}")
    run_dir = tmp_path / "run"
    assert not (run_dir / RESULT_FILE).exists()  # not a finished run: a sweep retries it
    history = (run_dir / HISTORY_FILE).read_text().splitlines()
    steps = {int(line.split(",")[0]) for line in history[1:]}
    assert steps == {0, 4, 8}  # every measurement before the crash (every 4 steps)


def test_no_secret_reaches_any_file_the_run_writes(tmp_path, monkeypatch):
    secret = "secret-test-key-123"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("MY_SERVICE_TOKEN", secret + "-token")
    recipe = write_yaml(tmp_path / "tiny.yaml", TINY)
    fit("--config", str(recipe), "--wandb=true", "--wandb_mode=offline", f"--run_dir={tmp_path / 'run'}")
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in written) and any(p.suffix == ".wandb" for p in written)
    for path in written:
        data = path.read_bytes()
        assert secret.encode() not in data, path
