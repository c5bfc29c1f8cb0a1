"""A report's records: one folder per grid cell and seed, named by what the grid varies, never
written over another run's record."""

from __future__ import annotations

import json

import pytest

from shiftkit.records import read_runs
from shiftkit.report.build import copy_run_records
from tests.report import synthetic_runs as syn


def test_cells_of_a_knob_grid_do_not_collide(tmp_path):
    # lr_multipliers: the variant names say only the norm in real sweeps; the folders must not.
    syn.write_recipe(tmp_path / "runs", "lr_multipliers")
    runs = read_runs(tmp_path / "runs")
    copy_run_records(runs, tmp_path / "records")
    results = sorted((tmp_path / "records").glob("lr_multipliers/*/seed=*/result.json"))
    assert len(results) == len(runs) == 18
    names = {p.parent.parent.name for p in results}
    assert names == {f"lr_multiplier={m},norm={n}" for m in (1, 5, 30) for n in ("none", "batch")}
    rec = json.loads((tmp_path / "records/lr_multipliers/lr_multiplier=30,norm=batch/seed=2/result.json").read_text())
    assert (rec["config"]["model"]["lr_multiplier"], rec["config"]["model"]["norm"], rec["seed"]) == (30, "batch", 2)


def test_copying_again_is_harmless_but_another_run_is_refused(tmp_path):
    syn.write_recipe(tmp_path / "runs", "landscape")
    runs = read_runs(tmp_path / "runs")
    copy_run_records(runs, tmp_path / "records")
    copy_run_records(runs, tmp_path / "records")  # the same runs: nothing to refuse
    target = next((tmp_path / "records").glob("landscape/norm=batch/seed=0/result.json"))
    rec = json.loads(target.read_text())
    rec["config_hash"] = "another-run"
    target.write_text(json.dumps(rec))
    with pytest.raises(FileExistsError, match="already holds another run's record"):
        copy_run_records(runs, tmp_path / "records")
    assert json.loads(target.read_text())["config_hash"] == "another-run"  # left as it was


def test_two_runs_of_one_cell_are_refused_before_anything_is_written(tmp_path):
    syn.write_recipe(tmp_path / "a", "landscape")
    syn.write_recipe(tmp_path / "b", "landscape")  # the same cells again, elsewhere
    with pytest.raises(FileExistsError, match="both map to record folder"):
        copy_run_records(read_runs(tmp_path), tmp_path / "records")
    assert not (tmp_path / "records").exists()
