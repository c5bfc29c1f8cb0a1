"""Pure-torch statistics of layer inputs: moments, fixed-edge histograms, divergences.

No Lightning import anywhere below this package: a plain training loop can use it. Every state
is a sum, so DDP ranks merge by ``all_reduce``. What such a loop needs is exported here (the
``__all__`` below); the building blocks live in the submodules (:mod:`~shiftkit.stats.moments`,
:mod:`~shiftkit.stats.histogram`, ...).

Example:
    >>> import torch
    >>> from shiftkit.stats import ShiftAccumulator, SiteSpec, site_statistics
    >>> acc = ShiftAccumulator([SiteSpec("fc1")], bins=16)
    >>> acc.observe(0, torch.zeros(8, 4)); before = acc.finish()
    >>> acc.observe(0, torch.ones(8, 4)); after = acc.finish()
    >>> round(site_statistics(after, before)["mean"].item(), 6)
    1.0
"""

from shiftkit.stats.accumulator import (
    ShiftAccumulator,
    SiteSpec,
    Snapshot,
    torch_distributed_all_reduce,
)
from shiftkit.stats.activation import RECTIFIERS, SATURATION_THRESHOLDS
from shiftkit.stats.compare import overflowed, site_statistics, statistics_table
from shiftkit.stats.divergence import (
    HIST_SMOOTHING,
    gaussian_kl,
    gaussian_kl_noise_scale,
    histogram_js,
    histogram_kl,
    mean_drift,
    std_log_ratio,
)
from shiftkit.stats.gradient_ics import (
    MEASURED_TYPES,
    GradientICS,
    gradient_ics,
    parameter_snapshot,
)
from shiftkit.stats.histogram import (
    EDGE_LIMIT,
    HistogramEdges,
    choose_edges,
    histogram_counts,
    histogram_percentiles,
)
from shiftkit.stats.landscape import DEFAULT_MULTIPLIERS, Landscape, landscape_along_gradient
from shiftkit.stats.units import CHANNELS, FEATURES

__all__ = [  # noqa: RUF022 -- grouped by use, not sorted
    # a monitor of one's own: accumulate per site, finish once per measurement, compare
    "CHANNELS",
    "FEATURES",
    "RECTIFIERS",
    "SATURATION_THRESHOLDS",
    "ShiftAccumulator",
    "SiteSpec",
    "Snapshot",
    "overflowed",
    "site_statistics",
    "statistics_table",
    "torch_distributed_all_reduce",
    # the divergences and histograms on their own
    "EDGE_LIMIT",
    "HIST_SMOOTHING",
    "HistogramEdges",
    "choose_edges",
    "gaussian_kl",
    "gaussian_kl_noise_scale",
    "histogram_counts",
    "histogram_js",
    "histogram_kl",
    "histogram_percentiles",
    "mean_drift",
    "std_log_ratio",
    # the gradient-based shift and the loss landscape (Santurkar et al. 2018)
    "DEFAULT_MULTIPLIERS",
    "GradientICS",
    "Landscape",
    "MEASURED_TYPES",
    "gradient_ics",
    "landscape_along_gradient",
    "parameter_snapshot",
]
