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
