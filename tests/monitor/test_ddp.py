"""Under DDP the states are summed across ranks: 2 ranks equal 1 process on the same global batch."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shiftkit.records import read_csv_metrics

REPO = Path(__file__).resolve().parents[2]
#: Sums over a rank's half and then across ranks differ from one sum over the
#: whole batch only by float32 rounding, and the parameters after a few updates
#: only by the order of DDP's gradient averaging: 1e-5 relative, or 1e-7
#: absolute for values near 0 (the activations are of order 1).
RTOL, ATOL = 1e-5, 1e-7
#: The split-half noise floor splits each rank's local batch, so it is not
#: expected to match the single-process value.
EXCLUDED = {"kl_gauss_floor", "step", "epoch", "site"}


def launch(out: Path, strategy: str, devices: int, batch: int) -> dict[int, dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "tests.monitor.ddp_run", "--strategy", strategy, "--devices", str(devices)]
    cmd += ["--batch", str(batch), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return launch(tmp_path_factory.mktemp("single"), "auto", 1, 16)[0]


@pytest.mark.parametrize("strategy", ["ddp_fork", "ddp", "ddp_spawn"])
def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path, single, strategy):
    ranks = launch(tmp_path, strategy, 2, 8)
    assert ranks[0]["world"] == 2
    assert ranks[0]["history"] == ranks[1]["history"]  # every rank sees the same numbers
    one = {(r["step"], r["site"]): r for r in single["history"]}
    two = {(r["step"], r["site"]): r for r in ranks[0]["history"]}
    assert one.keys() == two.keys() and len(one) == 6 * 3  # fc1, act, fc2
    for key, row in one.items():
        for stat, value in row.items():
            if stat not in EXCLUDED:
                assert two[key][stat] == pytest.approx(value, rel=RTOL, abs=ATOL, nan_ok=True), (key, stat)
    # One SUM collective per measurement; one MAX while layers are discovered.
    assert ranks[0]["collectives"] == {"sum": 6, "max": 1}
    logged = read_csv_metrics(tmp_path / "csv" / "version_0").set_index("step")
    assert logged.loc[3, "shift/fc1/kl_gauss"] == pytest.approx(two[(3, "fc1")]["kl_gauss"], rel=1e-12)
    assert not math.isnan(logged.loc[3, "shift/fc1/kl_gauss"])
