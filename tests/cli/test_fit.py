"""`shiftkit fit` end to end: the run directory it leaves, divergence, W&B offline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from shiftkit.records import (
    config_hash,
    read_run,
    read_wandb_offline,
    read_wandb_offline_config,
    read_wandb_offline_summary,
    wait_for_wandb_run,
)
from tests.cli.helpers import TINY, fit, write_yaml


def last(frame: pd.DataFrame, column: str) -> float:
    return frame[column].dropna().iloc[-1]


def test_fit_writes_a_complete_run_directory(tmp_path, monkeypatch, resolver):
    recipe = write_yaml(tmp_path / "tiny.yaml", TINY)
    monkeypatch.chdir(tmp_path)
    fit("--config", str(recipe))

    # No --run_dir: runs/<recipe>/<config_hash>, the directory a sweep cell would use.
    _, expected_hash = resolver.resolve(["--config", str(recipe)])
    run_dir = tmp_path / "runs" / "tiny" / expected_hash
    run = read_run(run_dir)
    result, metrics, history = run.result, run.metrics, run.history

    assert (run.recipe, run.variant, run.seed) == ("tiny", "none", 0)
    assert result["config_hash"] == expected_hash == config_hash(result["config"])
    assert result["config"]["model"]["norm"] == "none" and "run_dir" not in result["config"]
    assert (run_dir / "config.yaml").is_file()

    # result.json against metrics.csv, the CSVLogger's record of the same run.
    # Lightning logs a validation after n optimizer steps under step n - 1, the test under n.
    assert result["steps"] == 12
    assert metrics.loc[metrics["val/acc"].notna(), "step"].tolist() == [3, 7, 11]
    assert metrics.loc[metrics["test/acc"].notna(), "step"].tolist() == [12]
    assert result["metrics"]["val/acc"] == last(metrics, "val/acc")
    assert result["metrics"]["best_val_acc"] == metrics["val/acc"].max()
    assert result["metrics"]["test/acc"] == last(metrics, "test/acc")
    assert result["metrics"]["train/loss"] == last(metrics, "train/loss_epoch")
    assert result["diverged"] is False and result["diverged_step"] is None
    assert result["target_accuracy"] == 0.5
    reached = metrics.loc[metrics["val/acc"] >= 0.5, "step"]
    assert len(reached) and result["steps_to_target"] == reached.min() + 1
    assert 0 < result["wall_time_s"] < 120

    # shift_history.csv: every 4 steps (0, 4, 8), every monitored site, and the summary of it.
    sites = sorted(history["site"].unique())
    assert sorted(history["step"].unique()) == [0, 4, 8]
    assert len(history) == 3 * len(sites) and "model.hidden.0.linear" in sites
    monitor = result["monitor"]
    assert monitor["measurements"] == 3 and sorted(monitor["sites"]) == sites
    per_step = history.groupby("step")["kl_gauss"].mean()
    assert monitor["mean_kl_gauss"] == pytest.approx(per_step.mean(), rel=1e-12)
    assert {row["site"] for row in monitor["per_site"]} == set(sites)

    # shift_histograms.npz: one (sites x (bins + 2)) block per measurement, 16 bins asked for.
    hists = run.histograms
    assert hists["steps"].tolist() == [0, 4, 8]
    assert hists["counts"].shape == (3, len(sites), 18)
    assert sorted(hists["sites"].tolist()) == sites
    # Each site's histogram counts the (sub-sampled) values of one batch of 32.
    assert np.all(hists["counts"].sum(axis=2) > 0)


def test_divergence_is_recorded_not_raised(tmp_path):
    recipe = write_yaml(tmp_path / "tiny.yaml", TINY)
    fit("--config", str(recipe), "--model.optimizer=sgd", "--model.lr=1e9", f"--run_dir={tmp_path / 'run'}")
    run = read_run(tmp_path / "run")
    result = run.result
    assert result["diverged"] is True
    step = result["diverged_step"]
    assert isinstance(step, int) and 0 < step < 12
    assert result["steps"] == step + 1  # the run stopped after the non-finite step
    assert last(run.metrics, "diverged") == 1.0
    assert last(run.metrics, "diverged_step") == step
    assert result["steps_to_target"] is None
    assert all(math.isfinite(v) for v in result["metrics"].values() if isinstance(v, float))


def test_variant_and_data_shorthands_and_print_config(tiny_recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit("--config", str(tiny_recipe), "--variant", "bn", "--data", "mnist5k",
            "--monitor.every_n_steps=7", "--print_config")  # fmt: skip
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["variant"] == "bn" and printed["model"]["norm"] == "batch"
    assert printed["data"]["class_path"] == "shiftkit.data.Mnist5kDataModule"
    assert printed["data"]["init_args"]["batch_size"] == 32  # the recipe's value is kept
    assert printed["monitor"]["every_n_steps"] == 7
    assert printed["monitor"]["keep_histograms"] is True and printed["monitor"]["enabled"] is True


def test_unknown_key_in_a_config_file_is_one_clear_error(tmp_path, capsys):
    bad = dict(TINY, model={"arch": "mlp", "nrom": "batch"})
    path = write_yaml(tmp_path / "bad.yaml", bad)
    with pytest.raises(SystemExit) as exit_info:
        fit("--config", str(path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (
        f"shiftkit fit: error: unknown key 'model.nrom' in config file {path}; "
        "did you mean 'model.norm'?"
    )
    assert len(err) == 2  # and a pointer to --help, nothing else


def test_unknown_datamodule_argument_names_the_file_and_the_class(tmp_path, capsys):
    bad = dict(TINY, data={"class_path": "shiftkit.data.DigitsDataModule",
                           "init_args": {"batch_sz": 32}})  # fmt: skip
    path = write_yaml(tmp_path / "bad.yaml", bad)
    with pytest.raises(SystemExit):
        fit("--config", str(path))
    first = capsys.readouterr().err.splitlines()[0]
    assert first == (
        f"shiftkit fit: error: unknown key 'data.init_args.batch_sz' in config file {path}; "
        "did you mean 'batch_size' (DigitsDataModule)?"
    )


def test_unknown_variant_is_an_error(tiny_recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit("--config", str(tiny_recipe), "--variant=bnn")
    assert exit_info.value.code == 2
    assert "no such variant in" in capsys.readouterr().err


def test_monitor_can_be_switched_off(tmp_path):
    recipe = write_yaml(tmp_path / "tiny.yaml", TINY)
    fit("--config", str(recipe), "--monitor.enabled=false", "--test_after_fit=false",
        f"--run_dir={tmp_path / 'run'}")  # fmt: skip
    run = read_run(tmp_path / "run")
    assert run.result["monitor"] is None and run.history is None
    assert "test/acc" not in run.result["metrics"]
    assert not any(c.startswith("shift/") for c in run.metrics.columns)


def test_wandb_offline_run_holds_the_values(tmp_path):
    recipe = write_yaml(tmp_path / "tiny.yaml", TINY)
    run_dir = tmp_path / "run"
    fit("--config", str(recipe), "--wandb=true", f"--run_dir={run_dir}")
    result = read_run(run_dir).result
    csv = read_run(run_dir).metrics.set_index("step")
    run_file = wait_for_wandb_run(run_dir)  # under run_dir/wandb/
    frame = read_wandb_offline(run_file).set_index("trainer/global_step")
    # The same validation accuracies, under the same Trainer steps, as metrics.csv.
    csv_val = csv["val/acc"].dropna()
    wb_val = frame["val/acc"].dropna()
    assert wb_val.tolist() == csv_val.tolist() and len(wb_val) == 3
    key = "shift/model.hidden.0.linear/mean"
    assert frame.loc[4, key] == pytest.approx(csv.loc[4, key], rel=1e-12)
    summary = read_wandb_offline_summary(run_file)
    assert summary["result/config_hash"] == result["config_hash"]
    assert summary["result/steps"] == 12
    # The W&B config is the recorded config: the run's variant, not the DataModule's "raw".
    config = read_wandb_offline_config(run_file)
    assert config["variant"] == "none" and config["recipe"] == "tiny"
    assert config["config_hash"] == result["config_hash"]
    assert config["model"] == result["config"]["model"]
