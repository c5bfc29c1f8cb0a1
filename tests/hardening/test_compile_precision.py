"""torch.compile'd models and mixed precision: the monitor measures exactly what eager float32
statistics of the same activations give.

What works is stated in docs/shift_monitor.md (torch.compile, mixed precision); the inductor
backend is exercised by the slow test (about 30 s of C++ compilation on two cores).
"""

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision

from shiftkit import ShiftMonitor
from tests.hardening.helpers import Capture, assert_pooled_moments, fit, monitor_warnings, rows
from tests.hardening.zoo import Classifier, Containers, sequences

STEPS = 4
SITES = [
    "net.seq.0",
    "net.seq.1",
    "net.blocks.0",
    "net.blocks.1",
    "net.heads.main",
    "net.heads.aux",
]
STATS = ("mean", "std", "p50", "kl_gauss", "kl_hist", "mean_drift", "dead_frac", "nonfinite")


def run(compile_where=None, backend="aot_eager", fullgraph=False):
    pl.seed_everything(0, verbose=False)
    model = Classifier(Containers())  # with a ReLU(inplace=True) after a measured Linear
    if compile_where == "lightningmodule":
        model = torch.compile(model, backend=backend, fullgraph=fullgraph)
    elif compile_where == "submodule":
        model.net = torch.compile(model.net, backend=backend, fullgraph=fullgraph)
    monitor = ShiftMonitor(every_n_steps=2)
    messages = monitor_warnings(fit(model, sequences([(8, 4)] * STEPS), monitor, max_steps=STEPS))
    return monitor, model, messages


@pytest.fixture(scope="module")
def eager():
    return run()[0]


def assert_same_history(got, expected, rel=1e-6):
    assert got.site_names == SITES
    a = {(r["step"], r["site"]): r for r in expected.history}
    b = {(r["step"], r["site"]): r for r in got.history}
    assert a.keys() == b.keys() and len(a) == len(SITES) * STEPS // 2
    for key, row in a.items():
        for stat in STATS:
            assert b[key][stat] == pytest.approx(row[stat], rel=rel, abs=1e-9, nan_ok=True), (
                key,
                stat,
            )


@pytest.mark.parametrize(
    "where, backend, fullgraph",
    [("lightningmodule", "aot_eager", True), ("submodule", "eager", False)],
)
def test_compiled_model_is_measured_like_the_eager_one(eager, where, backend, fullgraph):
    torch._dynamo.reset()
    monitor, model, messages = run(where, backend, fullgraph)  # fullgraph: the hooks break no graph
    assert messages == []
    assert_same_history(monitor, eager)  # site names without _orig_mod, same numbers
    # A second fit of the same compiled model registers new hooks after the first
    # compilation: they fire too (Dynamo recompiles on the changed hooks).
    again = ShiftMonitor(every_n_steps=2)
    fit(model, sequences([(8, 4)] * STEPS), again, max_steps=STEPS)
    assert len(again.history) == len(monitor.history)


@pytest.mark.slow
def test_inductor_compiled_model_is_measured_like_the_eager_one(eager):
    torch._dynamo.reset()
    monitor, _, messages = run("lightningmodule", backend="inductor", fullgraph=True)
    assert messages == []
    assert_same_history(monitor, eager, rel=1e-5)  # inductor fuses the model's own float32 ops


PRECISIONS = {
    "bf16-mixed": (dict(precision="bf16-mixed"), torch.bfloat16, None),
    # Lightning turns "16-mixed" on CPU into bf16-mixed, and says so:
    "16-mixed": (
        dict(precision="16-mixed"),
        torch.bfloat16,
        "AMP with fp16 is not supported on CPU",
    ),
    # ... but float16 autocast itself runs on CPU when asked for with the plugin:
    "16-mixed-plugin": (dict(plugins=[MixedPrecision("16-mixed", "cpu")]), torch.float16, None),
    "16-true": (dict(precision="16-true"), torch.float16, None),
    "bf16-true": (dict(precision="bf16-true"), torch.bfloat16, None),
}


@pytest.mark.parametrize("case", list(PRECISIONS))
def test_low_precision_activations_are_accumulated_in_float32_and_float64(case):
    trainer_kwargs, dtype, lightning_says = PRECISIONS[case]
    pl.seed_everything(0, verbose=False)
    monitor = ShiftMonitor(every_n_steps=1)
    capture = Capture("net.blocks.0")
    messages = fit(
        Classifier(Containers()),
        sequences([(32, 4)] * 3),
        monitor,
        callbacks=[capture],
        **trainer_kwargs,
    )
    assert all(t.dtype == dtype for calls in capture.calls.values() for t in calls)
    assert monitor._acc.raw.dtype == torch.float64
    if lightning_says:
        assert any(lightning_says in m for m in messages)
    for step, row in rows(monitor, "net.blocks.0").items():
        # Reduced in low precision, the mean of 192 values would be off by ~1e-3 relative.
        assert_pooled_moments(row, capture.values(step), rel=1e-6)
    assert len(rows(monitor, "net.blocks.0")) == 3
