"""Pure-torch statistics of layer inputs: moments, fixed-edge histograms, divergences.

No Lightning import anywhere below this package: a plain training loop can use
it. Every state is a sum, so DDP ranks merge by ``all_reduce``.
"""

from shiftkit.stats.accumulator import (
    Layout,
    ShiftAccumulator,
    SiteSpec,
    Snapshot,
    torch_distributed_all_reduce,
)
from shiftkit.stats.activation import (
    RECTIFIERS,
    SATURATION_THRESHOLDS,
    dead_fraction,
    dead_unit_fraction,
    saturation_fraction,
)
from shiftkit.stats.compare import DIVERGENCE_STATS, overflowed, percentile_names, site_statistics
from shiftkit.stats.divergence import (
    HIST_SMOOTHING,
    gaussian_kl,
    gaussian_kl_noise_scale,
    histogram_js,
    histogram_kl,
    mean_drift,
    smoothed_probabilities,
    std_log_ratio,
)
from shiftkit.stats.histogram import (
    EDGE_LIMIT,
    HistogramEdges,
    choose_edges,
    edges_from_range,
    finite_extremes,
    histogram_counts,
    histogram_percentiles,
    rebin,
    widened,
    strided_subsample,
)
from shiftkit.stats.moments import FIELDS, MomentState, shifted_variance, unit_field_sums, unit_moment_sums
from shiftkit.stats.units import CHANNELS, FEATURES, reduce_dims
from shiftkit.stats.gradient_ics import (
    MEASURED_TYPES,
    GradientICS,
    Replay,
    default_layers,
    gradient_ics,
    parameter_groups,
    parameter_snapshot,
)
from shiftkit.stats.landscape import (
    DEFAULT_MULTIPLIERS,
    STEP_RANGE,
    Landscape,
    landscape_along_gradient,
    step_multipliers,
)

__all__ = [name for name in dir() if not name.startswith("_")]
