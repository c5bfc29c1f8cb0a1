"""Eager models carry the tracker's hooks only during measured steps; compiled ones keep them.

Counted on the modules themselves (``_forward_pre_hooks`` / ``_forward_hooks``), with a hand
computed moment so that a hook attached too late or removed too early would show in the numbers.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shiftkit import ShiftTracker
from shiftkit.tracker.hooks import compiled_somewhere

EVERY = 3


def make_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def hook_count(net: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in net.modules())


def batches(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(16, 4, generator=g) * (1 + i) for i in range(n)]


def train(tracker: ShiftTracker, forward, net: nn.Module, xs: list[torch.Tensor]) -> list[int]:
    """Run one step per batch; the hooks the model carries during each step's forward."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    carried = []
    for x in xs:
        with tracker.step():
            carried.append(hook_count(net))
            forward(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
    return carried


@pytest.mark.parametrize("track, per_step", [("inputs", 3), ("both", 6)])
def test_eager_hooks_exist_only_in_measured_steps(track, per_step):
    net = make_net()
    tracker = ShiftTracker(net, every_n_steps=EVERY, track=track)
    assert hook_count(net) == 0  # attach registers nothing yet
    xs = batches(7)
    carried = train(tracker, net, net, xs)
    assert carried == [per_step, 0, 0, per_step, 0, 0, per_step]
    assert hook_count(net) == 0  # removed again at the end of each measured step
    first = next(r for r in tracker.history if r["step"] == 3 and r["site"] == "0")
    assert first["mean"] == pytest.approx(float(xs[3].double().mean()), rel=1e-6)
    assert first["std"] == pytest.approx(float(xs[3].double().std(unbiased=False)), rel=1e-6)
    net(torch.randn(2, 4))  # an evaluation forward outside a step: no hook, nothing measured
    tracker.close()
    assert hook_count(net) == 0 and tracker.measurements == 3


def test_paused_forwards_inside_a_measured_step_run_without_hooks():
    net = make_net()
    tracker = ShiftTracker(net, every_n_steps=1, layers=["0"])
    with tracker.step():
        with tracker.paused():
            inside = hook_count(net)
            net(torch.full((4, 4), 100.0))  # would move the mean far if it were measured
        after = hook_count(net)
        net(torch.zeros(8, 4))
    assert (inside, after) == (0, 1)
    assert tracker.history[0]["mean"] == 0.0
    tracker.close()


def test_compiled_model_keeps_its_hooks_between_measured_steps():
    net = make_net()
    compiled = torch.compile(net, backend="eager")
    tracker = ShiftTracker(compiled, every_n_steps=EVERY)
    assert hook_count(net) == 3  # registered once: Dynamo does not see hooks added later
    carried = train(tracker, compiled, net, batches(4))
    assert carried == [3, 3, 3, 3]
    tracker.close()
    assert hook_count(net) == 0


def test_compiled_function_around_an_eager_model_is_recognised_at_its_first_measurement():
    torch._dynamo.reset()
    eager_net, net = make_net(), make_net()
    xs = batches(7)
    eager = ShiftTracker(eager_net, every_n_steps=EVERY)
    train(eager, eager_net, eager_net, xs)
    tracker = ShiftTracker(net, every_n_steps=EVERY)
    assert hook_count(net) == 0  # nothing in the model says it will be compiled
    carried = train(tracker, torch.compile(lambda x: net(x), backend="eager"), net, xs)
    assert carried == [3, 3, 3, 3, 3, 3, 3]  # kept from the first (compiled, measured) step on
    assert len(tracker.history) == len(eager.history) == 9
    for got, want in zip(tracker.history, eager.history):
        assert (got["step"], got["site"]) == (want["step"], want["site"])
        assert got["kl_gauss"] == pytest.approx(want["kl_gauss"], rel=1e-6, abs=1e-12, nan_ok=True)
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-6, abs=1e-12)
    tracker.close()
    assert hook_count(net) == 0


def compile_submodule(net):
    net[0] = torch.compile(net[0], backend="eager")
    return net


def lightning_compiled(net):
    net._compiler_ctx = {"compiler": "dynamo"}  # what Lightning sets on a compiled LightningModule
    return net


@pytest.mark.parametrize(
    "form, compiled",
    [
        (lambda net: net, False),
        (lambda net: torch.compile(net, backend="eager"), True),
        (compile_submodule, True),
        (lambda net: net.compile(backend="eager") or net, True),
        (lightning_compiled, True),
    ],
)
def test_compiled_somewhere_sees_each_way_of_compiling(form, compiled):
    assert compiled_somewhere(form(make_net())) is compiled
