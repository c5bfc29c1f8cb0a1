"""The compiled (fused) hot path gives the eager path's raw sums."""

import math

import pytest
import torch

from shiftkit.stats import ShiftAccumulator, SiteSpec, site_statistics
from shiftkit.stats.moments import unit_raw_sums


def data(shape, gen):
    x = torch.randn(*shape, generator=gen) * 3 + 1
    x.view(-1)[::97] = math.nan
    x.view(-1)[5] = math.inf
    return x


def test_fused_equals_eager_features_with_saturation_and_nonfinite(gen):
    x = data((60, 100), gen)
    k = torch.randn(100, generator=gen)
    fused = unit_raw_sums(x, -1, k, True, False, 4.0, fused=True)
    eager = unit_raw_sums(x, -1, k, True, False, 4.0)
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-4)
    assert fused[0].sum() == eager[0].sum() == (~torch.isfinite(x)).sum()  # counts are exact


@pytest.mark.slow
@pytest.mark.parametrize("shape,unit_dim,positive", [((32, 16, 8, 8), 1, True), ((9, 7, 5), -1, False)])
def test_fused_equals_eager_other_layouts(gen, shape, unit_dim, positive):
    x = data(shape, gen)
    k = torch.randn(x.shape[unit_dim], generator=gen)
    fused = unit_raw_sums(x, unit_dim, k, True, positive, None, fused=True)
    torch.testing.assert_close(fused, unit_raw_sums(x, unit_dim, k, True, positive, None), rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_fused_accumulator_statistics_equal_eager(gen):
    sites = [SiteSpec("a", 1, rectifier=True)]
    batches = [torch.randn(16, 8, 6, 6, generator=gen) + i for i in range(3)]
    stats = []
    for fused in (False, True):
        acc = ShiftAccumulator(sites, fused=fused)
        snaps = []
        for b in batches:
            acc.observe(0, b)
            snaps.append(acc.finish())
        stats.append(site_statistics(snaps[2], snaps[1], sites=sites))
    for name, value in stats[0].items():
        torch.testing.assert_close(stats[1][name], value, rtol=1e-5, atol=1e-6, equal_nan=True, msg=name)
