"""Histogram ranges that double when a distribution outgrows them, and re-binning onto them."""

import numpy as np
import pytest
import torch

from shiftkit.stats import (
    HistogramEdges,
    ShiftAccumulator,
    SiteSpec,
    histogram_counts,
    site_statistics,
)
from shiftkit.stats.histogram import rebin, widened


@pytest.mark.parametrize("bins", [8, 64])
@pytest.mark.parametrize("factor", [2, 4])
def test_rebin_onto_widened_edges_equals_binning_directly(gen, bins, factor):
    old = HistogramEdges(-1.3, 2.1, bins)
    new = widened(old, factor)
    assert new.bins == bins and new.hi - new.lo == pytest.approx(factor * (old.hi - old.lo))
    x = torch.empty(5000).uniform_(old.lo, old.hi, generator=gen)  # all inside the old range
    direct = histogram_counts(x, new)
    moved = rebin(histogram_counts(x, old).double(), old, new)
    np.testing.assert_array_equal(moved.numpy(), direct.double().numpy())


def test_rebin_keeps_outer_mass_outer():
    old = HistogramEdges(0.0, 1.0, 4)
    counts = torch.tensor([3.0, 1, 1, 1, 1, 5])
    moved = rebin(counts, old, widened(old))
    assert moved.tolist() == [3.0, 0, 2, 2, 0, 5] and moved.sum() == counts.sum()


def test_widened_site_is_compared_on_rebinned_reference(gen):
    sites = [SiteSpec("a")]
    acc = ShiftAccumulator(sites, bins=16)
    x0 = torch.randn(400, 3, generator=gen)
    acc.observe(0, x0)
    ref = acc.finish()
    acc.widen([0])
    x1 = 1.5 * torch.randn(400, 3, generator=gen)
    acc.observe(0, x1)
    cur = acc.finish()
    assert cur.layout.hi[0] - cur.layout.lo[0] == pytest.approx(2 * (ref.layout.hi[0] - ref.layout.lo[0]))
    stats = site_statistics(cur, ref, sites=sites)
    # The reference re-binned onto the new edges equals binning its data there directly,
    # so kl_hist is the KL between the two direct histograms.
    edges = HistogramEdges(cur.layout.lo[0], cur.layout.hi[0], 16)
    from scipy.stats import entropy

    def smoothed(c):
        c = c.double().numpy() + 0.5
        return c / c.sum()

    expected = entropy(smoothed(histogram_counts(x1, edges)), smoothed(histogram_counts(x0, edges)))
    assert stats["kl_hist"][0].item() == pytest.approx(expected, rel=1e-12)
