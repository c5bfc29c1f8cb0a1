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

SHIFT_PREFIX = "shift/"
"""Prefix of every key the ShiftMonitor logs."""

OUTPUT_SITE_SUFFIX = "@out"
"""Appended to a module name to name its output site (``fc1@out``)."""

STATS = (
    "kl_gauss",  # per-unit Gaussian KL(now || reference), mean over units
    "kl_gauss_floor",  # the same KL expected from sampling noise alone at this batch size
    "kl_hist",  # KL between the pooled fixed-edge histograms
    "js_hist",  # Jensen-Shannon between the pooled histograms
    "mean_drift",  # |mu_now - mu_ref| / sigma_ref, mean over units
    "mean_drift_max",  # ... max over units
    "std_log_ratio",  # log(sigma_now / sigma_ref), mean over units
    "mean",
    "std",
    "p15",  # percentiles read from the histogram (Ioffe & Szegedy, Fig. 1)
    "p50",
    "p85",
    "hist_outside",  # share of the histogram outside its range (percentiles there are bounds)
    "sat_frac",  # fraction of values beyond the saturation threshold (sigmoid/tanh)
    "dead_frac",  # fraction of values <= 0 (ReLU inputs)
    "dead_units",  # fraction of units that were <= 0 for every value
    "nonfinite",  # count of NaN/Inf values
)
"""The per-site statistics, in the order the monitor logs them."""

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
EPOCH = "epoch"
"""Epoch column Lightning adds to logged metrics."""
STEP = "step"
"""Step column of a Lightning CSVLogger ``metrics.csv``."""

_STAT_SET = frozenset(STATS)


def shift_key(site: str, stat: str) -> str:
    """Return the logged key of statistic ``stat`` at monitored site ``site``.

    Args:
        site: a module name (``"net.0"``), or ``"{module}@out"`` for its output.
        stat: one of :data:`STATS`.

    Raises:
        ValueError: if ``site`` is empty or ``stat`` is not in :data:`STATS`.
    """
    if not site:
        raise ValueError("shift_key: site must be a non-empty module name")
    if stat not in _STAT_SET:
        raise ValueError(f"shift_key: unknown stat {stat!r}; expected one of {STATS}")
    return f"{SHIFT_PREFIX}{site}/{stat}"


def parse_shift_key(key: str) -> tuple[str, str] | None:
    """Split a per-site shift key into ``(site, stat)``; ``None`` if it is not one.

    The inverse of :func:`shift_key`. Network summaries (``shift/mean_kl_gauss``),
    training metrics and keys whose last component is not in :data:`STATS`
    (e.g. a histogram someone logged under ``shift/``) give ``None``.
    """
    if not key.startswith(SHIFT_PREFIX):
        return None
    site, sep, stat = key[len(SHIFT_PREFIX) :].rpartition("/")
    if not sep or not site or stat not in _STAT_SET:
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
LANDSCAPE_LOSS_RANGE = "landscape/loss_range"
"""Loss landscape variation: max - min of ``L(x - eta g)`` over the step sizes."""
LANDSCAPE_LOSS_MIN = "landscape/loss_min"
"""``min_eta L(x - eta g)`` (lower edge of the band of Fig. 4a)."""
LANDSCAPE_LOSS_MAX = "landscape/loss_max"
"""``max_eta L(x - eta g)`` (upper edge of the band of Fig. 4a)."""
LANDSCAPE_GRAD_PRED_MAX = "landscape/grad_pred_max"
"""Gradient predictiveness: ``max_eta ||grad L(x) - grad L(x - eta g)||``."""
LANDSCAPE_GRAD_PRED_MIN = "landscape/grad_pred_min"
"""``min_eta ||grad L(x) - grad L(x - eta g)||``."""
LANDSCAPE_BETA_SMOOTH = "landscape/beta_smooth"
"""Effective beta-smoothness: ``max_eta ||grad L(x) - grad L(x - eta g)|| / ||eta g||``."""

LANDSCAPE_STATS = (
    "loss_range",
    "loss_min",
    "loss_max",
    "grad_pred_max",
    "grad_pred_min",
    "beta_smooth",
)
"""The landscape summaries, in the order the LandscapeMonitor logs them."""


def landscape_key(stat: str) -> str:
    """Return the logged key of landscape statistic ``stat``: ``landscape/{stat}``.

    Raises:
        ValueError: if ``stat`` is not in :data:`LANDSCAPE_STATS`.

    Example:
        >>> landscape_key("beta_smooth") == LANDSCAPE_BETA_SMOOTH
        True
    """
    if stat not in LANDSCAPE_STATS:
        raise ValueError(f"landscape_key: unknown stat {stat!r}; expected one of {LANDSCAPE_STATS}")
    return f"{LANDSCAPE_PREFIX}{stat}"
