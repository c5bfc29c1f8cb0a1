"""One ShiftMonitor measurement split into phases, timed from the benchmark side.

shiftkit is not changed for this: :class:`PhaseTimer` replaces, for the length of one block,
functions and methods that shiftkit looks up at call time (a method on its class, a function in
``shiftkit.tracker.tracker``'s namespace) with a wrapper that adds ``time.perf_counter()``
differences to the phase, and puts the originals back afterwards. A phase whose function is not
found (renamed or inlined in this version of shiftkit) is reported as not separable, with the
name that was looked for; nothing fails.

Phases (exclusive: a phase's time excludes the phases nested in it):

* ``hooks``: the hooks' own Python work around each measured tensor (``SiteHooks._take_input``
  / ``_take_output``, or their ``_plain`` forms for eager models, minus the accumulation they call);
* ``accumulation``: ``ShiftAccumulator.observe``, the per-site kernels folding a tensor in;
* ``snapshot``: ``ShiftAccumulator.finish`` minus the DDP reduce (the deferred small sites'
  reductions, the one device-to-host copy, the per-unit fields on the host);
* ``ddp_reduce``: ``torch_distributed_all_reduce`` (not run in one process);
* ``comparison``: ``statistics_table`` (the statistics against the reference, and the overflow flags);
* ``read_back``: ``records_from_host`` (the host table and histograms into per-site records);
* ``logging``: ``measurement_metrics`` + ``log_measurement`` + ``ShiftTracker._wandb_media``;
* ``history``: ``SiteRecord.row`` (one history row per site);
* ``checks``: ``ShiftTracker._report_inventories`` + ``_warn_about`` + ``_widen_outgrown``;
* ``other``: the rest of ``ShiftTracker._measure_now`` (inline list appends and bookkeeping).

What no wrapper sees: PyTorch's forward-hook dispatch and the hook closures' flag checks (in the
step's added time, in no phase). On CUDA the phases time kernel launches, not kernels; the wait
for the device lands in whichever phase first syncs (``read_back`` as a rule).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

#: (phase, owner, attribute): what is wrapped. Owners are import paths resolved at wrap time.
WRAPPED = (
    ("hooks", "shiftkit.tracker.hooks:SiteHooks", "_take_input"),  # compiled models
    ("hooks", "shiftkit.tracker.hooks:SiteHooks", "_take_output"),
    ("hooks", "shiftkit.tracker.hooks:SiteHooks", "_take_input_plain"),  # eager models
    ("hooks", "shiftkit.tracker.hooks:SiteHooks", "_take_output_plain"),
    ("accumulation", "shiftkit.stats:ShiftAccumulator", "observe"),
    ("snapshot", "shiftkit.stats:ShiftAccumulator", "finish"),
    ("ddp_reduce", "shiftkit.tracker.tracker", "torch_distributed_all_reduce"),
    ("comparison", "shiftkit.tracker.tracker", "statistics_table"),
    ("read_back", "shiftkit.tracker.tracker", "records_from_host"),
    ("logging", "shiftkit.tracker.tracker", "measurement_metrics"),
    ("logging", "shiftkit.tracker.tracker", "log_measurement"),
    ("logging", "shiftkit.tracker.tracker:ShiftTracker", "_wandb_media"),
    ("history", "shiftkit.tracker.logging:SiteRecord", "row"),
    ("checks", "shiftkit.tracker.tracker:ShiftTracker", "_report_inventories"),
    ("checks", "shiftkit.tracker.tracker:ShiftTracker", "_warn_about"),
    ("checks", "shiftkit.tracker.tracker:ShiftTracker", "_widen_outgrown"),
    ("measurement", "shiftkit.tracker.tracker:ShiftTracker", "_measure_now"),
)

#: Phases in table order; ``measurement`` is the whole of ``_measure_now`` (the sum of the phases
#: below it plus ``other``), and the hot-path phases run during the forward, outside it.
PHASES = (
    "hooks",
    "accumulation",
    "snapshot",
    "ddp_reduce",
    "comparison",
    "read_back",
    "logging",
    "history",
    "checks",
    "other",
)

#: Which phase a nested phase is subtracted from, to make every phase exclusive.
_PARENT = {
    "accumulation": "hooks",
    "ddp_reduce": "snapshot",
    **{p: "measurement" for p in PHASES[2:-1]},
}


def _resolve(path: str):
    import importlib

    module, _, attr = path.partition(":")
    owner = importlib.import_module(module)
    return getattr(owner, attr) if attr else owner


class PhaseTimer:
    """Inclusive seconds and call counts per phase while :meth:`installed` is active."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.missing: list[str] = []

    def reset(self) -> None:
        """Forget what was timed so far (the warm-up's first measurements describe the sites)."""
        self.seconds.clear()
        self.calls.clear()

    def _wrap(self, phase: str, fn):
        seconds, calls = self.seconds, self.calls

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - t0
                calls[phase] += 1

        return timed

    @contextmanager
    def installed(self) -> Iterator[PhaseTimer]:
        """Wrap every function of :data:`WRAPPED` that exists; restore them all on exit."""
        undo = []
        try:
            for phase, path, attr in WRAPPED:
                try:
                    owner = _resolve(path)
                except (ImportError, AttributeError):
                    owner = None
                # Only what the owner defines itself: the original goes back exactly.
                if owner is None or attr not in vars(owner):
                    self.missing.append(f"{phase}: {path.replace(':', '.')}.{attr}")
                    continue
                original = vars(owner)[attr]
                undo.append((owner, attr, original))
                setattr(owner, attr, self._wrap(phase, original))
            yield self
        finally:
            for owner, attr, original in reversed(undo):
                setattr(owner, attr, original)

    def per_measurement(self) -> dict:
        """Exclusive milliseconds per measurement for each phase, and the calls behind them."""
        n = self.calls.get("measurement", 0)
        exclusive = dict(self.seconds)
        for child, parent in _PARENT.items():
            if parent in exclusive and child in exclusive:
                exclusive[parent] -= exclusive[child]
        # What is left of the measurement once every named phase inside it is taken out.
        exclusive["other"] = exclusive.pop("measurement", 0.0)
        ms = {p: exclusive.get(p, 0.0) * 1e3 / n if n else None for p in PHASES}
        # Never called: not separable in this version (said in ``missing``) or not run here
        # (the DDP reduce in one process); None rather than a zero that looks measured.
        not_run = [p for p in PHASES[:-1] if not self.calls.get(p)]
        for p in not_run:
            ms[p] = None
        total = sum(v for v in ms.values() if v is not None) if n else None
        return {
            "measurements": n,
            "ms_per_measurement": ms,
            "total_ms_per_measurement": total,
            "calls_per_measurement": {p: self.calls.get(p, 0) / n for p in self.calls} if n else {},
            "not_run": not_run,
            "not_separable": list(self.missing),
        }
