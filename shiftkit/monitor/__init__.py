"""The Lightning callbacks: ShiftMonitor and the two opt-in, expensive measurements.

- :class:`ShiftMonitor`: how each layer's input distribution moves between steps;
- :class:`GradientICSMonitor`: the gradient-based shift of Santurkar et al. (2018);
- :class:`LandscapeMonitor`: loss and gradient smoothness along the gradient (Santurkar et al.).

A misconfigured one raises :class:`MonitorConfigError`.
"""

from shiftkit.monitor.gradient_ics import GradientICSMonitor
from shiftkit.monitor.landscape import LandscapeMonitor
from shiftkit.monitor.shift_monitor import ShiftMonitor
from shiftkit.monitor.validation import MonitorConfigError

__all__ = ["GradientICSMonitor", "LandscapeMonitor", "MonitorConfigError", "ShiftMonitor"]
