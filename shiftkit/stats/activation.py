"""Which activation inputs count as saturated (sigmoid/tanh) or dead (ReLU).

The monitor counts them in the same pass as the moments (the ``flag`` row of
:func:`~shiftkit.stats.moments.unit_raw_sums`). Thresholds: a sigmoid input beyond ±4 gives
an output within 0.018 of 0 or 1 and a derivative below 7% of its maximum; a tanh input
beyond ±2 gives ``|tanh| > 0.964`` and a derivative below 7% of its maximum. Non-finite
elements are left out of numerator and denominator.
"""

from __future__ import annotations

#: Default |input| beyond which a saturating nonlinearity counts as saturated.
SATURATION_THRESHOLDS = {"Sigmoid": 4.0, "Tanh": 2.0, "Hardtanh": 1.0, "Softsign": 4.0, "Hardsigmoid": 3.0}

#: Activation modules whose inputs <= 0 give a zero output and zero gradient.
RECTIFIERS = ("ReLU", "ReLU6")
