"""The ShiftMonitor Lightning callback: which layers, when, against what reference, where to log."""

from shiftkit.monitor.shift_monitor import ShiftMonitor

__all__ = ["ShiftMonitor"]
