"""The overhead benchmark runs end to end at toy size and writes its outputs.

Performance is claimed by ``benchmarks/overhead.py``, never by a timed unit test: nothing here
asserts a timing, only that the pipeline produces complete, well-formed records.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.breakdown import PHASES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "overhead.py"


def _run(out: Path, *extra: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run the script at toy size with one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, str(SCRIPT), "--toy", "--threads", "1", "--out", str(out), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.timeout(180)
def test_toy_run_writes_table_json_and_figures(tmp_path):
    configs = (
        "none,shift_default,shift_every,floor_read,floor_moments,fastai,wandb_watch_10,bolts,"
        "torchinstruments_1,torchinstruments_timed,nvdlfw_inspect"
    )
    proc = _run(
        tmp_path, "--workloads", "mlp", "--configs", configs, "--sections", "timing,memory,scaling"
    )

    md = (tmp_path / "overhead.md").read_text()
    record = json.loads((tmp_path / "overhead.json").read_text())
    assert md in proc.stdout  # the table is also printed

    # Machine info that makes a number interpretable.
    m = record["machine"]
    for key in ("cpu_model", "logical_cores", "torch", "torch_threads", "date", "device"):
        assert m[key] not in (None, ""), key
    assert m["torch_threads"] == 1

    # Every configuration has a ratio row against 'none' from the same run, and its steps.
    summary = record["workloads"]["mlp"]["summary"]
    assert list(summary) == configs.split(",")
    assert summary["none"]["ratio"] == 1.0
    for name, s in summary.items():
        assert s["n_steps"] >= 1, name
        if name != "none":
            assert s["ratio"] is not None and s["ratio"] > 0, name
            assert s["ratio_min"] <= s["ratio"] <= s["ratio_max"], name
            assert f"{s['ratio']:.3f}x" in md, name
    # Periodic configurations are timed over whole periods: steps are a multiple of the period.
    plan = record["workloads"]["mlp"]["plan"]
    for name in ("shift_default", "wandb_watch_10"):
        period = plan["periods"][name]
        assert period > 1 and summary[name]["n_steps"] % period == 0, (
            name,
            summary[name]["n_steps"],
            period,
        )
    # The monitored sites of the paper MLP: 4 Linear + 3 Sigmoid.
    assert plan["sites"] == 7

    # The floors are columns: every configuration's added time in units of each floor, and its
    # cost per measurement (the timed torchinstruments' sample is its every-forward twin's).
    w = record["workloads"]["mlp"]
    assert "| added ms per measurement | added / read-once floor | added / moments floor |" in md
    assert set(w["added_vs_floors"]) == set(configs.split(",")) - {"none"}
    assert all(set(v) == {"floor_read", "floor_moments"} for v in w["added_vs_floors"].values())
    per = w["per_measurement_ms"]
    assert per["torchinstruments_timed"] == per["torchinstruments_1"]
    assert per["wandb_watch_10"] == pytest.approx(
        10 * summary["wandb_watch_10"]["added_ms_per_step"]
    )
    assert per["torchinstruments_1"] > 0  # a real sample every forward: never free
    peers = {
        r["target"].rsplit(" ", 1)[-1] for r in record["targets"] if "cheaper than" in r["target"]
    }
    assert peers == {"torchinstruments_1", "nvdlfw_inspect", "wandb_watch_10"}

    # One measurement split into phases; the single process runs no DDP reduce.
    b = w["breakdown"]
    assert b["config"] == "shift_every" and b["measurements"] >= 1
    assert b["not_separable"] == [], b["not_separable"]  # a rename in shiftkit shows up here
    ms = b["ms_per_measurement"]
    assert list(ms) == list(PHASES)
    assert ms["ddp_reduce"] is None and b["not_run"] == ["ddp_reduce"]
    for phase in ("hooks", "accumulation", "snapshot", "comparison", "read_back", "logging"):
        assert math.isfinite(ms[phase]) and ms[phase] > 0, (phase, ms[phase])
    assert b["calls_per_measurement"]["accumulation"] == 7  # one per monitored site
    assert b["total_ms_per_measurement"] == pytest.approx(
        sum(v for v in ms.values() if v is not None)
    )
    assert "| read-back (device to host, records) |" in md

    # Memory section: RSS samples and the history growth per measurement.
    mem = record["memory"]
    assert [r["key"] for r in mem["runs"]] == ["none", "flat", "history"]
    assert all(len(r["samples"]) >= 2 for r in mem["runs"])
    assert mem["sites"] == 7
    hist = next(r for r in mem["runs"] if r["key"] == "history")
    assert hist["history_rows"] == 7 * hist["steps"]
    assert hist["history_bytes"] > 0 and mem["object_bytes_per_measurement"] > 0

    # Scaling: both sweeps, with site counts that follow the depth (2 * depth + 1).
    points = record["scaling"]["points"]
    assert {p["sweep"] for p in points} == {"depth", "batch"}
    depth_points = [p for p in points if p["sweep"] == "depth"]
    assert [p["sites"] for p in depth_points] == [3, 7]

    # Targets are reported (not enforced), with a verdict each.
    rows = record["targets"]
    assert any("defaults" in r["target"] for r in rows)
    assert all(r["met"].split()[0] in ("yes", "NO", "n/a") for r in rows)
    assert "pending (no GPU in this environment" in md

    for fig in ("overhead_ratios.png", "scaling.png", "memory_flatness.png"):
        assert (tmp_path / fig).stat().st_size > 1000, fig
    assert not math.isnan(summary["shift_every"]["added_ms_per_step"])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ddp_and_fresh_process_memory_sections_run(tmp_path):
    _run(tmp_path, "--workloads", "mlp", "--sections", "ddp", timeout=500)
    d = json.loads((tmp_path / "overhead.json").read_text())["ddp"]["mlp"]
    assert "error" not in d, d
    assert d["single_ratio"] > 0 and d["ddp_ratio"] > 0
    assert d["relative"] == pytest.approx(d["ddp_ratio"] / d["single_ratio"])

    # Outside --toy each memory run is a fresh interpreter (memory_worker.py).
    out = tmp_path / "memory"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out)]
    cmd += ["--sections", "memory", "--memory-steps", "40"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mem = json.loads((out / "overhead.json").read_text())["memory"]
    assert [r["key"] for r in mem["runs"]] == ["none", "flat", "history"]
    assert all("error" not in r and len(r["samples"]) >= 2 for r in mem["runs"])
    assert mem["object_bytes_per_measurement"] > 0
