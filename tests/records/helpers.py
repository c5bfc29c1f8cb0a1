"""The values the records tests log, known in advance."""

from __future__ import annotations

from shiftkit.records import SHIFT_MEAN_KL_GAUSS, shift_key

MAX_STEPS = 6


def known_shift_metrics(step: int) -> dict[str, float]:
    """Values a callback logs at ``step``: not exact in decimal, sites with dots, @out, slashes."""
    return {
        shift_key("fc1", "kl_gauss"): step / 3,
        shift_key("net.0@out", "std_log_ratio"): -0.1 * step,
        shift_key("enc/block.1", "p50"): 1e-7 * step**2,
        SHIFT_MEAN_KL_GAUSS: step / 7,
    }
