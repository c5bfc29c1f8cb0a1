"""`shiftkit sweep` on many GPUs and many machines: device slots (`--devices-per-cell`, with the
visible GPUs faked through CUDA_VISIBLE_DEVICES and a stand-in cell that records what it was
given) and shards (`--shard i/n`, whose union reports as the unsharded grid)."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest

from shiftkit.command import main
from shiftkit.report.cli import main as report_main
from shiftkit.sweep import SweepError, parse_shard, shard_cells
from shiftkit.sweep import runner as sweep_runner
from shiftkit.sweep.devices import device_slots, visible_devices
from shiftkit.sweep.runner import FAILED_FILE, STATUS_FILE
from tests.sweep import fake_cell
from tests.sweep.test_sweep import QUICK, sweep_file

#: The stand-in cells still go through `shiftkit fit`'s config resolution (ids), so the grid
#: must name a GPU accelerator: --devices-per-cell refuses cells pinned to the CPU.
GPU = ["--trainer.accelerator=gpu"]


@pytest.fixture
def fake_cells(monkeypatch):
    """Cells run tests/sweep/fake_cell.py instead of `shiftkit fit` (forked or fresh)."""
    monkeypatch.setattr(sweep_runner, "CELL_MODULE", fake_cell.__name__)


def records(out: Path) -> dict[str, dict]:
    """cell id -> what the fake cell recorded, for every cell that ran."""
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob(f"*/{fake_cell.RECORD}")}


def most_at_once(recs) -> int:
    """The largest number of cells whose [start, end] intervals overlap at one moment."""
    events = sorted([(r["start"], 1) for r in recs] + [(r["end"], -1) for r in recs])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_visible_devices_and_slots():
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "3, 5,GPU-ab12"}) == ["3", "5", "GPU-ab12"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "2,-1,4"}) == ["2"]  # CUDA stops at -1
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    five = ["0", "1", "2", "3", "4"]
    assert device_slots(five, 2) == [("0", "1"), ("2", "3")]  # the odd one out stays idle
    assert device_slots(["7"], 1, cells_per_device=2) == [("7",), ("7",)]
    assert device_slots(five[:4], 2, 2) == [("0", "1"), ("2", "3"), ("0", "1"), ("2", "3")]
    with pytest.raises(SweepError, match=r"--devices-per-cell 2: only 1 GPU\(s\) visible"):
        device_slots(["0"], 2)
    with pytest.raises(SweepError, match="only 0 GPU"):
        device_slots([], 1)


def test_devices_per_cell_pins_disjoint_gpus_and_a_failed_cell_frees_its_slot(
    tmp_path, monkeypatch, fake_cells, capsys
):
    """Six fake GPUs, two per cell: three slots for nine cells, three of which fail at once."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5")
    variants = {"a": {"model.width": 16}, "b": {"model.width": 24}, "broken": {"model.width": 8}}
    path = sweep_file(tmp_path, {"seed_everything": [0, 1, 2]}, variants)
    out = tmp_path / "out"
    code = main(["sweep", str(path), "--out", str(out), "--devices-per-cell", "2", "--no-progress",
                 "--", *GPU])  # fmt: skip
    assert code == 1, capsys.readouterr()  # the broken cells failed; the others finished
    assert "3 at a time, 1 thread(s) each, GPUs 0,1 | 2,3 | 4,5" in capsys.readouterr().out
    recs = records(out)
    assert len(recs) == 9 and len(list(out.glob("*/result.json"))) == 6
    slots = {("0", "1"), ("2", "3"), ("4", "5")}
    assert {tuple(r["devices"].split(",")) for r in recs.values()} == slots  # every GPU used
    for r in recs.values():
        # K = 2: each cell is a 2-device DDP run on its own GPUs, one thread
        assert {"--trainer.devices=2", "--trainer.strategy=ddp"} <= set(r["argv"])
        assert r["threads"] == "1"
    for one, two in combinations(recs.values(), 2):
        if one["start"] < two["end"] and two["start"] < one["end"]:  # ran at the same time
            assert not set(one["devices"].split(",")) & set(two["devices"].split(","))
    assert most_at_once(recs.values()) == 3
    # A failed cell's GPUs go to the next cell at once, while the first cells still run.
    status = json.loads((out / STATUS_FILE).read_text())
    first_broken = next(c["cell_id"] for c in status["cells"] if c["variant"] == "broken")
    broken = recs[first_broken]
    assert json.loads((out / first_broken / FAILED_FILE).read_text())["devices"] == [
        *broken["devices"].split(",")
    ]
    successor = min((r for r in recs.values() if r["start"] > broken["end"]),
                    key=lambda r: r["start"])  # fmt: skip
    assert successor["devices"] == broken["devices"]
    assert successor["start"] < min(r["end"] for r in recs.values() if r is not broken)


def test_shared_gpu_slots_fresh_interpreters_and_cpu_runs_unchanged(
    tmp_path, monkeypatch, fake_cells, capsys
):
    """One fake GPU shared by two cells at a time, cells as fresh interpreters; without
    --devices-per-cell a cell sees what the sweep sees, as before."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    path = sweep_file(tmp_path, {"seed_everything": [0, 1, 2]})
    shared = tmp_path / "shared"
    assert main(["sweep", str(path), "--out", str(shared), "--devices-per-cell", "1",
                 "--cells-per-device", "2", "--exec", "subprocess", "--no-progress",
                 "--", *GPU]) == 0  # fmt: skip
    recs = list(records(shared).values())
    assert len(recs) == 3 and {r["devices"] for r in recs} == {"7"}
    assert all("--trainer.strategy=ddp" not in r["argv"] for r in recs)  # one device: no DDP
    assert most_at_once(recs) == 2

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    plain = tmp_path / "plain"
    assert main(["sweep", str(path), "--out", str(plain), "--jobs", "2", "--no-progress"]) == 0
    recs = list(records(plain).values())
    assert len(recs) == 3 and {r["devices"] for r in recs} == {"0,1,2"}
    assert all(not any(a.startswith("--trainer.devices") for a in r["argv"]) for r in recs)
    assert most_at_once(recs) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--devices-per-cell", "1"], "runs on the CPU (trainer.accelerator: cpu)"),
        (["--devices-per-cell", "4", "--", *GPU], "only 2 GPU(s) visible"),
        (["--devices-per-cell", "2", "--", "--trainer.devices=8"], "leave --trainer.devices out"),
        (["--cells-per-device", "2"], "--cells-per-device needs --devices-per-cell"),
        (["--shard", "3/3"], "--shard must be i/n with 0 <= i < n"),
        (["--shard", "1/2", "--export-wandb", "w.yaml"], "leave them out of --export-wandb"),
    ],
)  # fmt: skip
def test_bad_device_and_shard_requests_are_one_error(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    path = sweep_file(tmp_path, {"seed_everything": [0]})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shiftkit sweep: error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_shards_partition_the_grid_in_a_stable_order():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(SweepError):
            parse_shard(bad)
    cells = list(range(10))
    shards = [shard_cells(cells, i, 3) for i in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_report_of_the_shards_union_is_the_report_of_the_whole_sweep(tmp_path, capsys):
    """Three shards on two "machines" (two output directories; shards 0 and 1 share one), then
    `shiftkit report` over both: the same claims table and results as one unsharded sweep."""
    variants = {"plain": {"model.norm": "none"}, "bn": {"model.norm": "batch"}}
    path = sweep_file(tmp_path, {"seed_everything": [0, 1]}, variants)
    # Named as C1's recipe, so that the report decides a claim (its table of numbers) too.
    path.write_text(path.read_text().replace("recipe: grid", "recipe: mnist_fig1"))

    def sweep(out: Path, *shard: str) -> None:
        argv = ["sweep", str(path), "--out", str(out), "--no-progress", *shard, "--", *QUICK]
        assert main(argv) == 0

    sweep(tmp_path / "whole" / "runs")
    for shard, machine in (("0/3", "m1"), ("1/3", "m1"), ("2/3", "m2")):
        sweep(tmp_path / machine / "runs", "--shard", shard)
    m1, m2 = tmp_path / "m1" / "runs", tmp_path / "m2" / "runs"
    assert sorted(p.name for p in m1.glob("sweep*.json")) == [
        "sweep.shard0of3.json", "sweep.shard1of3.json"
    ]  # fmt: skip
    whole = {p.parent.name for p in (tmp_path / "whole" / "runs").glob("*/result.json")}
    shards = [{p.parent.name for p in m.glob("*/result.json")} for m in (m1, m2)]
    assert len(whole) == 4 and [len(s) for s in shards] == [3, 1] and shards[0] | shards[1] == whole
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(m2), "--shard", "1/3", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"1 cells (shard 1/3 of 4), output {m2}"

    def report(out: Path, *runs: Path) -> tuple[str, str]:
        assert report_main([*map(str, runs), "-o", str(out), "--no-figures", "--no-index",
                            "--no-progress"]) == 0  # fmt: skip
        readme = (out / "README.md").read_text().replace(" ".join(map(str, runs)), "RUNS")
        return readme, (out / "results.csv").read_text()

    one = report(tmp_path / "report_whole", tmp_path / "whole" / "runs")
    union = report(tmp_path / "report_union", m1, m2)
    assert union[1] == one[1]  # results.csv: every run, its facts and numbers, in one order
    assert union[1].count("\n") == 5 and ",bn,1," in union[1]
    assert union[0].replace("report_union", "report_whole") == one[0]
