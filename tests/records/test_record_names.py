"""shift_key / parse_shift_key and the metric-name constants."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shiftkit.records import (
    BASE_STATS,
    DIVERGENCE_STATS,
    GLOBAL_STEP,
    SHIFT_MAX_KL_GAUSS,
    SHIFT_MEAN_KL_GAUSS,
    STATS,
    TRAIN_LOSS,
    is_stat,
    parse_shift_key,
    percentile_names,
    shift_key,
)

SITES = ["fc1", "net.0", "net.0@out", "encoder.block.3.conv@out", "enc/block.1", "a/b.c/d@out"]


@pytest.mark.parametrize("site", SITES)
def test_round_trip_every_stat(site):
    for stat in STATS:
        key = shift_key(site, stat)
        assert key == f"shift/{site}/{stat}"
        assert parse_shift_key(key) == (site, stat)


def test_stats_are_the_ones_the_monitor_logs():
    assert len(STATS) == len(set(STATS)) == 17
    assert STATS[0] == "kl_gauss" and STATS[-1] == "nonfinite"
    assert {"p15", "p50", "p85", "kl_gauss_floor", "dead_units", "hist_outside"} <= set(STATS)
    assert set(BASE_STATS) | {"p15", "p50", "p85"} == set(STATS) and len(BASE_STATS) == 14
    assert set(DIVERGENCE_STATS) < set(BASE_STATS)


@pytest.mark.parametrize("level, name", [(0.1, "p10"), (0.9, "p90"), (0.025, "p2.5"), (0.999, "p99.9")])
def test_a_percentile_of_any_level_is_a_statistic(level, name):
    assert percentile_names((level,)) == [name] and is_stat(name)
    assert parse_shift_key(shift_key("net.0@out", name)) == ("net.0@out", name)


@pytest.mark.parametrize("name", ["p", "p0", "p100", "p150", "p-5", "p010", "p1.50", "pp10", "p10x"])
def test_names_that_are_no_percentile(name):
    assert not is_stat(name) and parse_shift_key(f"shift/fc1/{name}") is None


@pytest.mark.parametrize(
    "key",
    [SHIFT_MEAN_KL_GAUSS, SHIFT_MAX_KL_GAUSS, TRAIN_LOSS, GLOBAL_STEP, "shift/fc1/hist",
     "shift//kl_gauss", "shift/kl_gauss", "fc1/kl_gauss", "shifty/fc1/kl_gauss", ""],
)
def test_non_site_keys_do_not_parse(key):
    assert parse_shift_key(key) is None


def test_shift_key_rejects_bad_names():
    with pytest.raises(ValueError, match="unknown stat"):
        shift_key("fc1", "kl")
    with pytest.raises(ValueError, match="non-empty"):
        shift_key("", "mean")


def test_import_pulls_in_no_lightning_torch_wandb_or_monitor():
    heavy = ("lightning", "torch", "wandb", "shiftkit.monitor")
    code = f"import sys, shiftkit.records; print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
