"""`shiftkit sweep`: cells, resuming, failures, divergence, the W&B export."""

from __future__ import annotations

import json

import pytest
import yaml

from shiftkit.command import main
from shiftkit.records import read_run, read_runs
from shiftkit.sweep import (
    SweepError,
    load_sweep,
    plan_cells,
    resolve_cells,
    run_cells,
    wandb_sweep_config,
)
from shiftkit.sweep.runner import FAILED_FILE, STATUS_FILE
from tests.cli.helpers import TINY, write_yaml

#: Cells must be quick: synthetic data (no sklearn import in each forked cell), 6 steps, one
#: validation, the monitor every 3 steps.
QUICK = ["--data=shiftkit.data.SyntheticDataModule", "--data.num_train=512",
         "--data.num_val=64", "--data.num_test=64", "--trainer.max_steps=6",
         "--trainer.val_check_interval=6", "--monitor.every_n_steps=3"]  # fmt: skip


def sweep_file(tmp_path, grid, variants=None, name="grid.yaml"):
    data = dict(TINY, recipe="grid")
    data["sweep"] = {"grid": grid, **({"variants": variants} if variants else {})}
    return write_yaml(tmp_path / name, data)


def test_cells_order_seed_first_then_variant_then_grid(tiny_recipe):
    spec = load_sweep(tiny_recipe)
    assert spec.recipe == "tiny" and list(spec.variants) == ["plain", "bn"]
    cells = plan_cells(spec, seeds=[3, 4], extra_args=["--trainer.max_steps=2"])
    assert [(c.seed, c.variant) for c in cells] == [(3, "plain"), (3, "bn"), (4, "plain"), (4, "bn")]
    assert cells[1].fit_args == [
        "--config", str(tiny_recipe), "--variant=bn", "--seed_everything=3", "--trainer.max_steps=2"
    ]  # fmt: skip
    paper = plan_cells(spec, scale="paper")
    assert paper[0].fit_args[2:4] == ["--trainer.max_steps=50000", "--variant=plain"]
    with pytest.raises(SweepError, match="no scale 'huge'"):
        plan_cells(spec, scale="huge")


@pytest.mark.parametrize(
    "section, message",
    [
        ({"grid": {"model.lr": 0.1}}, "sweep.grid.model.lr must be a non-empty list"),
        ({"grids": {}}, "unknown key 'sweep.grids'"),
        ({"grid": {"model.norm": ["none"]}, "variants": {"bn": {"model.norm": "batch"}}},
         "'model.norm' is set by both sweep.grid and sweep.variants.bn"),
    ],
)  # fmt: skip
def test_malformed_sweep_sections_name_the_key(tmp_path, section, message):
    path = write_yaml(tmp_path / "bad.yaml", dict(TINY, sweep=section))
    with pytest.raises(SweepError, match=message) as err:
        load_sweep(path)
    assert str(path) in str(err.value)


def test_cell_ids_are_the_hashes_fit_records(tiny_recipe, resolver):
    cells = resolve_cells(plan_cells(load_sweep(tiny_recipe)), resolver)
    assert len({c.cell_id for c in cells}) == 4
    direct, cell_hash = resolver.resolve(["--config", str(tiny_recipe), "--variant", "bn",
                                          "--seed_everything=1"])  # fmt: skip
    assert cells[3].cell_id == cell_hash and cells[3].config == direct
    # Where and how a run is recorded is not part of its identity.
    _, same = resolver.resolve(cells[3].fit_args + ["--wandb=true", "--run_dir=/elsewhere",
                                                    "--trainer.enable_progress_bar=false"])  # fmt: skip
    assert same == cell_hash


def test_interrupted_sweep_resumes_with_the_missing_cells_only(tmp_path, resolver):
    path = sweep_file(tmp_path, {"seed_everything": [0, 1, 2]})
    cells = resolve_cells(plan_cells(load_sweep(path), extra_args=QUICK), resolver)
    out = tmp_path / "out"

    def stop_after_one(outcome):
        raise KeyboardInterrupt  # what Ctrl-C does, at a known point

    first = run_cells(cells, out, jobs=1, progress=False, on_cell_done=stop_after_one)
    assert first.interrupted and len(first.executed) == 1
    assert [o.status for o in first.outcomes] == ["ok", "pending", "pending"]
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/result.json")}
    assert list(finished) == [cells[0].cell_id]

    second = run_cells(cells, out, jobs=2, progress=False)
    assert not second.interrupted and second.ok
    assert [o.status for o in second.outcomes] == ["done", "ok", "ok"]
    assert sorted(o.cell.cell_id for o in second.executed) == sorted(c.cell_id for c in cells[1:])
    assert (out / cells[0].cell_id / "result.json").stat().st_mtime_ns == finished[cells[0].cell_id]
    runs = read_runs(out)
    assert sorted(r.seed for r in runs) == [0, 1, 2]
    assert all(r.result["config_hash"] == r.path.name and r.result["steps"] == 6 for r in runs)
    status = json.loads((out / STATUS_FILE).read_text())
    assert [c["status"] for c in status["cells"]] == ["done", "ok", "ok"]

    third = run_cells(cells, out, progress=False)
    assert third.executed == [] and third.ok


def test_failed_cell_is_recorded_and_retried_divergence_is_a_result(tmp_path, resolver):
    variants = {"fine": {}, "huge_lr": {"model.optimizer": "sgd", "model.lr": 1e9},
                "broken": {"model.arch": "no_such_arch"}}  # fmt: skip
    path = sweep_file(tmp_path, {"seed_everything": [0]}, variants)
    cells = resolve_cells(plan_cells(load_sweep(path), extra_args=QUICK), resolver)
    out = tmp_path / "out"
    lines = []
    report = run_cells(cells, out, jobs=2, progress=False, write=lines.append)
    assert [(o.cell.variant, o.status) for o in report.outcomes] == [
        ("fine", "ok"), ("huge_lr", "diverged"), ("broken", "failed")
    ]  # fmt: skip
    result = read_run(out / cells[1].cell_id).result
    assert result["diverged"] is True and isinstance(result["diverged_step"], int)
    assert result["steps"] == result["diverged_step"] + 1 < 6
    broken = out / cells[2].cell_id
    assert not (broken / "result.json").exists()
    record = json.loads((broken / FAILED_FILE).read_text())
    assert record["exit_code"] != 0 and "no_such_arch" in record["error"]
    assert any(line.split()[1:4] == ["failed", cells[2].cell_id, "broken"] for line in lines)
    assert any(" diverged " in line and "diverged at step" in line for line in lines)

    again = run_cells(cells, out, progress=False)
    assert [o.status for o in again.outcomes] == ["done", "done", "failed"]
    assert [o.cell.variant for o in again.executed] == ["broken"]


def test_sweep_command_dry_run_lists_cells_and_commands(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(tiny_recipe), "--out", str(out), "--seeds", "5", "--dry-run",
                 "--", "--trainer.max_steps=2"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"2 cells, output {out}"
    assert lines[0].split()[1:] == ["todo", "plain", "seed=5"]
    assert lines[1].strip().startswith(f"shiftkit fit --config {tiny_recipe} --variant=plain "
                                       "--seed_everything=5 --trainer.max_steps=2 --run_dir=")  # fmt: skip
    assert not out.exists()


def test_sweep_command_bad_file_is_one_error(tmp_path, capsys):
    path = write_yaml(tmp_path / "bad.yaml", dict(TINY, sweep={"grid": {"model.lr": 0.1}}))
    assert main(["sweep", str(path)]) == 2
    assert capsys.readouterr().err.startswith("shiftkit sweep: error: ")


def test_wandb_export_is_the_same_grid(tiny_recipe, tmp_path, resolver, monkeypatch):
    monkeypatch.chdir(tiny_recipe.parent)
    target = tmp_path / "wandb_sweep.yaml"
    assert main(["sweep", str(tiny_recipe), "--export-wandb", str(target), "--scale", "paper",
                 "--seeds", "0", "1", "2", "--", "--data.num_workers=2"]) == 0  # fmt: skip
    exported = yaml.safe_load(target.read_text())
    assert exported["method"] == "grid"
    assert exported["parameters"] == {
        "variant": {"values": ["plain", "bn"]},
        "seed_everything": {"values": [0, 1, 2]},
    }
    command = exported["command"]
    assert command[:7] == ["${env}", "${interpreter}", "-m", "shiftkit.cli", "fit", "--config",
                           "tiny.yaml"]  # fmt: skip
    assert command[7:] == ["--trainer.max_steps=50000", "--wandb=true", "${args}",
                           "--data.num_workers=2"]  # fmt: skip
    assert exported["program"] and exported["metric"]["name"] == "result/best_val_acc"

    # What a W&B agent runs for one grid point is the local sweep's cell of that point:
    # ${args} is "--<key>=<str(value)>" for every parameter.
    spec = load_sweep(tiny_recipe)
    local = resolve_cells(plan_cells(spec, "paper", [0, 1, 2], ["--data.num_workers=2"]), resolver)
    agent_args = [a for a in command[5:] if a not in ("${args}", "--wandb=true")]
    cut = agent_args.index("--data.num_workers=2")
    agent_args[cut:cut] = ["--variant=bn", "--seed_everything=2"]
    _, agent_hash = resolver.resolve(agent_args)
    assert agent_hash == next(c.cell_id for c in local if c.variant == "bn" and c.seed == 2)
    assert wandb_sweep_config(spec)["command"][7:9] == ["--wandb=true", "${args}"]


@pytest.mark.slow
def test_ctrl_c_stops_a_real_sweep_and_a_rerun_finishes_it(tmp_path):
    """The command as a user runs it: fresh interpreters per cell, Ctrl-C to the process group."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    path = sweep_file(tmp_path, {"seed_everything": [0, 1, 2]})
    out = tmp_path / "out"
    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal\n"
        "from shiftkit.command import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    cmd = [sys.executable, "-c", script, "sweep", str(path), "--out", str(out), "--no-progress",
           "--exec", "subprocess", "--", "--trainer.max_steps=400", *QUICK[:4]]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while not list(out.glob("*/result.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    done = [p.parent.name for p in out.glob("*/result.json")]
    assert len(done) == 1 and "interrupted" in output

    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "2 of 3 cells to run (1 finished before)" in rerun.stdout + rerun.stderr
    assert len(list(out.glob("*/result.json"))) == 3


def test_a_scale_overrides_a_variant_at_that_scale_only(tmp_path, resolver):
    data = dict(TINY, recipe="grid")
    data["sweep"] = {"grid": {"seed_everything": [0]},
                     "variants": {"plain": {"model.norm": "none"}, "deep": {"model.norm": "none", "model.depth": 3}},
                     "scales": {"big": {"model.width": 32, "variants": {"deep": {"model.depth": 5}}}}}  # fmt: skip
    spec = load_sweep(write_yaml(tmp_path / "grid.yaml", data))
    small, big = plan_cells(spec), plan_cells(spec, "big")
    assert [c.fit_args for c in small] == [
        ["--config", str(spec.path), "--variant=plain", "--seed_everything=0"],
        ["--config", str(spec.path), "--variant=deep", "--seed_everything=0"],
    ]  # the small scale is untouched (its cell ids too)
    assert big[1].fit_args == ["--config", str(spec.path), "--model.width=32", "--variant=deep",
                               "--model.depth=5", "--seed_everything=0"]  # fmt: skip
    configs = [c.config["model"] for c in resolve_cells(big, resolver)]
    assert [(m["depth"], m["width"]) for m in configs] == [(2, 32), (5, 32)]  # TINY: depth 2
    data["sweep"]["scales"]["big"]["variants"] = {"nosuch": {"model.depth": 5}}
    spec = load_sweep(write_yaml(tmp_path / "bad.yaml", data))
    with pytest.raises(SweepError, match=r"sweep.scales.big.variants names unknown variant\(s\) \['nosuch'\]"):
        plan_cells(spec, "big")
