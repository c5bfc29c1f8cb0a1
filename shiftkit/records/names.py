"""Metric names: the only place in shiftkit that spells a logged key.

The ShiftMonitor logs, per monitored *site*, one scalar per statistic under
``shift/{site}/{stat}``. A site is a module name as ``nn.Module.named_modules``
gives it (``fc1``, ``net.0``, ``encoder.block.3.conv``): the module's input by
default, and ``{module}@out`` for its output. Sites may contain dots and even
slashes, so a key is parsed from the right: the stat is the last ``/``
component, the site everything between ``shift/`` and that last ``/``.

Example:
    >>> shift_key("net.0@out", "kl_gauss")
    'shift/net.0@out/kl_gauss'
    >>> parse_shift_key("shift/net.0@out/kl_gauss")
    ('net.0@out', 'kl_gauss')
    >>> parse_shift_key("train/loss") is None
    True
"""

from __future__ import annotations

import re

SHIFT_PREFIX = "shift/"
"""Prefix of every key the ShiftMonitor logs."""

OUTPUT_SITE_SUFFIX = "@out"
"""Appended to a module name to name its output site (``fc1@out``)."""

DIVERGENCE_STATS = (
    "kl_gauss",  # per-unit Gaussian KL(now || reference), mean over units
    "kl_gauss_floor",  # the same KL expected from sampling noise alone at this batch size
    "kl_hist",  # KL between the pooled fixed-edge histograms
    "js_hist",  # Jensen-Shannon between the pooled histograms
    "mean_drift",  # |mu_now - mu_ref| / sigma_ref, mean over units
    "mean_drift_max",  # ... max over units
    "std_log_ratio",  # log(sigma_now / sigma_ref), mean over units
)
"""The per-site statistics that compare a snapshot with its reference (NaN until there is one)."""

DEFAULT_QUANTILES = (0.15, 0.5, 0.85)
"""Percentile levels the monitor reads from each histogram by default (Ioffe & Szegedy, Fig. 1)."""


def percentile_name(q: float) -> str:
    """The statistic that holds percentile level ``q`` of a site's histogram.

    Example:
        >>> [percentile_name(q) for q in (0.15, 0.5, 0.025)]
        ['p15', 'p50', 'p2.5']
    """
    return f"p{100 * q:g}"


def percentile_names(quantiles) -> list[str]:
    """:func:`percentile_name` of each level: ``(0.15, 0.5, 0.85)`` -> ``["p15", "p50", "p85"]``."""
    return [percentile_name(q) for q in quantiles]


def site_stats(quantiles=DEFAULT_QUANTILES) -> tuple[str, ...]:
    """Every per-site statistic, in the order the monitor logs them, for percentile levels
    ``quantiles``.

    Example:
        >>> site_stats((0.1, 0.9))[7:11]
        ('mean', 'std', 'p10', 'p90')
    """
    return (
        *DIVERGENCE_STATS,
        "mean",
        "std",
        *percentile_names(quantiles),  # read from the histogram
        "hist_outside",  # share of the histogram outside its range (percentiles there are bounds)
        "sat_frac",  # fraction of values beyond the saturation threshold (sigmoid/tanh)
        "dead_frac",  # fraction of values <= 0 (ReLU inputs)
        "dead_units",  # fraction of units that were <= 0 for every value
        "nonfinite",  # count of NaN/Inf values
    )


STATS = site_stats(DEFAULT_QUANTILES)
"""The per-site statistics at the default percentile levels (:data:`DEFAULT_QUANTILES`), in the
order the monitor logs them; a percentile of any level in (0, 100) is a valid statistic too
(:func:`is_stat`)."""

BASE_STATS = site_stats(())
"""Every per-site statistic but the percentiles, whose names follow the monitor's ``quantiles``."""

_PERCENTILE = re.compile(r"p(\d+(?:\.\d*)?(?:e-?\d+)?)")


def is_stat(name: str) -> bool:
    """Whether ``name`` is a per-site statistic: one of :data:`BASE_STATS` or a percentile
    ``p<number>`` of a level in (0, 100), as :func:`percentile_name` spells it.

    Example:
        >>> [is_stat(s) for s in ("kl_gauss", "p10", "p2.5", "p100", "p", "kl")]
        [True, True, True, False, False, False]
    """
    if name in _BASE_SET:
        return True
    match = _PERCENTILE.fullmatch(name)
    return match is not None and 0 < float(match.group(1)) < 100 and percentile_name(
        float(match.group(1)) / 100
    ) == name


HISTOGRAM_PREFIX = "shift_hist/"
"""Prefix of the per-site ``wandb.Histogram`` keys (``log_histograms=True``)."""

SHIFT_MEAN_KL_GAUSS = "shift/mean_kl_gauss"
"""Network summary: ``kl_gauss`` averaged over all monitored sites."""
SHIFT_MAX_KL_GAUSS = "shift/max_kl_gauss"
"""Network summary: ``kl_gauss`` maximised over all monitored sites."""

TRAIN_LOSS = "train/loss"
"""Training loss, logged per step."""
TRAIN_ACC = "train/acc"
"""Training accuracy, logged per step."""
VAL_LOSS = "val/loss"
"""Validation loss, logged per validation epoch."""
VAL_ACC = "val/acc"
"""Validation accuracy, logged per validation epoch."""
TEST_LOSS = "test/loss"
"""Test loss."""
TEST_ACC = "test/acc"
"""Test accuracy."""
DIVERGED = "diverged"
"""1.0 once the loss became non-finite (the run was stopped), else 0.0."""
DIVERGED_STEP = "diverged_step"
"""The global step at which the loss first became non-finite."""
GLOBAL_STEP = "trainer/global_step"
"""Key Lightning's WandbLogger adds to every W&B log call: the Trainer's global step."""
STEP = "step"
"""Step column of a Lightning CSVLogger ``metrics.csv``."""

_BASE_SET = frozenset(BASE_STATS)


def shift_key(site: str, stat: str) -> str:
    """Return the logged key of statistic ``stat`` at monitored site ``site``.

    Args:
        site: a module name (``"net.0"``), or ``"{module}@out"`` for its output.
        stat: a statistic (:func:`is_stat`): one of :data:`BASE_STATS` or ``p<number>``.

    Raises:
        ValueError: if ``site`` is empty or ``stat`` is not a statistic.
    """
    if not site:
        raise ValueError("shift_key: site must be a non-empty module name")
    if not is_stat(stat):
        raise ValueError(
            f"shift_key: unknown stat {stat!r}; expected one of {BASE_STATS} or a percentile "
            "p<number> (p10 for level 0.1)"
        )
    return f"{SHIFT_PREFIX}{site}/{stat}"


def parse_shift_key(key: str) -> tuple[str, str] | None:
    """Split a per-site shift key into ``(site, stat)``; ``None`` if it is not one.

    The inverse of :func:`shift_key`. Network summaries (``shift/mean_kl_gauss``),
    training metrics and keys whose last component is not a statistic (:func:`is_stat`)
    (e.g. a histogram someone logged under ``shift/``) give ``None``.
    """
    if not key.startswith(SHIFT_PREFIX):
        return None
    site, sep, stat = key[len(SHIFT_PREFIX) :].rpartition("/")
    if not sep or not site or not is_stat(stat):
        return None
    return site, stat


def histogram_key(site: str) -> str:
    """The W&B key of a site's fixed-edge histogram: ``shift_hist/{site}``."""
    return f"{HISTOGRAM_PREFIX}{site}"


def shift_key_regex(stat: str) -> str:
    """A regular expression matching :func:`shift_key` ``(site, stat)`` for every site, nothing else.

    For W&B panels that overlay all layers (``metricRegex``): the network summaries
    (``shift/mean_kl_gauss``) and the other statistics (``kl_gauss_floor``) do not match.

    Example:
        >>> import re
        >>> bool(re.match(shift_key_regex("kl_gauss"), "shift/net.0@out/kl_gauss"))
        True
        >>> bool(re.match(shift_key_regex("kl_gauss"), "shift/net.0/kl_gauss_floor"))
        False
    """
    shift_key("x", stat)  # validates stat
    return f"^{SHIFT_PREFIX}.+/{stat}$"


HEATMAP_PREFIX = "shift_heatmap/"
"""Prefix of the layer x step heat-map images logged to W&B (``shift_heatmap/{stat}``)."""


def heatmap_key(stat: str) -> str:
    """The W&B key of the layer x step heat map of statistic ``stat``: ``shift_heatmap/{stat}``."""
    shift_key("x", stat)  # validates stat
    return f"{HEATMAP_PREFIX}{stat}"


SHIFT_STEP = "shift/step"
"""Step metric of what :class:`~shiftkit.ShiftTracker` logs to W&B itself (``wandb=True``): the
optimizer step of the measurement, declared with ``define_metric`` as the x axis of every
``shift/*`` key. (Through Lightning's WandbLogger the x axis is :data:`GLOBAL_STEP`; through the
Hugging Face Trainer, ``train/global_step``.)"""


GRAD_ICS_PREFIX = "grad_ics/"
"""Prefix of the keys the GradientICSMonitor logs: ``grad_ics/{layer}/{stat}``."""

GRAD_ICS_STATS = (
    "l2",  # ||G - G'||_2: the layer's gradient before/after the layers below it update
    "cos",  # cos(G, G')
    "grad_norm",  # ||G||_2
    "rel",  # ||G - G'||_2 / ||G||_2
)
"""The per-layer statistics of the gradient-based shift (Santurkar et al. 2018, Def. 2.1)."""

_GRAD_ICS_STAT_SET = frozenset(GRAD_ICS_STATS)


def grad_ics_key(layer: str, stat: str) -> str:
    """Return the logged key of gradient-based shift statistic ``stat`` of layer ``layer``.

    Args:
        layer: a module name (``"model.net.0"``).
        stat: one of :data:`GRAD_ICS_STATS`.

    Raises:
        ValueError: if ``layer`` is empty or ``stat`` is not in :data:`GRAD_ICS_STATS`.

    Example:
        >>> grad_ics_key("net.0", "l2")
        'grad_ics/net.0/l2'
    """
    if not layer:
        raise ValueError("grad_ics_key: layer must be a non-empty module name")
    if stat not in _GRAD_ICS_STAT_SET:
        raise ValueError(f"grad_ics_key: unknown stat {stat!r}; expected one of {GRAD_ICS_STATS}")
    return f"{GRAD_ICS_PREFIX}{layer}/{stat}"


def parse_grad_ics_key(key: str) -> tuple[str, str] | None:
    """Split a gradient-shift key into ``(layer, stat)``; ``None`` if it is not one.

    Example:
        >>> parse_grad_ics_key("grad_ics/net.0/cos")
        ('net.0', 'cos')
        >>> parse_grad_ics_key("shift/net.0/kl_gauss") is None
        True
    """
    if not key.startswith(GRAD_ICS_PREFIX):
        return None
    layer, sep, stat = key[len(GRAD_ICS_PREFIX) :].rpartition("/")
    if not sep or not layer or stat not in _GRAD_ICS_STAT_SET:
        return None
    return layer, stat


LANDSCAPE_PREFIX = "landscape/"
"""Prefix of the keys the LandscapeMonitor logs (Santurkar et al. 2018, Fig. 4)."""
LANDSCAPE_STATS = (
    "loss_range",  # max - min of L(x - eta g) over the step sizes eta (loss landscape variation)
    "loss_min",  # min_eta L(x - eta g): lower edge of the band of Fig. 4a
    "loss_max",  # max_eta L(x - eta g): upper edge
    "grad_pred_max",  # gradient predictiveness: max_eta ||grad L(x) - grad L(x - eta g)||
    "grad_pred_min",  # min_eta of the same
    "beta_smooth",  # effective beta-smoothness: max_eta of that change / ||eta g||
)
"""The landscape summaries, in the order the LandscapeMonitor logs them (``landscape/{stat}``)."""


def landscape_key(stat: str) -> str:
    """Return the logged key of landscape statistic ``stat``: ``landscape/{stat}``.

    Raises:
        ValueError: if ``stat`` is not in :data:`LANDSCAPE_STATS`.

    Example:
        >>> landscape_key("beta_smooth")
        'landscape/beta_smooth'
    """
    if stat not in LANDSCAPE_STATS:
        raise ValueError(f"landscape_key: unknown stat {stat!r}; expected one of {LANDSCAPE_STATS}")
    return f"{LANDSCAPE_PREFIX}{stat}"
