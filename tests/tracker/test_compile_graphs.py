"""Under torch.compile the tracker adds one variant of each compiled graph (measured steps) and no
more, also when the model graph-breaks (issue 13): its hooks are traced without the site index and
with an empty per-site list, so Dynamo's guards on them are the same in every block.

Counted with ``torch._dynamo.utils.counters["stats"]["unique_graphs"]``, on CPU with the
``aot_eager`` backend (no code generation).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from shiftkit import ShiftTracker

STEPS = 6
EVERY = 3  # steps 0 and 3 measured


class Block(nn.Module):
    """Linear -> Tanh after a data-dependent branch on ``.item()``, as in ``nn.Transformer``'s
    checks: with ``breaks``, Dynamo ends the graph there and compiles the rest of the block as a
    separate function, shared by every block."""

    def __init__(self, breaks: bool):
        super().__init__()
        self.fc, self.act, self.breaks = nn.Linear(8, 8), nn.Tanh(), breaks

    def forward(self, x):
        if self.breaks and not bool(torch.isfinite(x).all().item()):
            x = x.nan_to_num()
        return self.act(self.fc(x))


class Net(nn.Module):
    def __init__(self, depth: int, breaks: bool):
        super().__init__()
        self.blocks = nn.Sequential(*[Block(breaks) for _ in range(depth)])
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.blocks(x))


def train(depth: int, breaks: bool, monitor: bool, compiled: bool = True):
    """``(compiled graphs, history)`` of STEPS steps; the tracker measures every EVERY steps."""
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    net = Net(depth, breaks)
    model = torch.compile(net, backend="aot_eager", fullgraph=not breaks) if compiled else net
    tracker = ShiftTracker(model, every_n_steps=EVERY) if monitor else None
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        with tracker.step() if tracker else contextlib.nullcontext():
            model(torch.randn(16, 8, generator=g)).square().mean().backward()
            opt.step()
            opt.zero_grad()
    graphs = counters["stats"]["unique_graphs"]
    if tracker is None:
        return graphs, []
    tracker.close()
    return graphs, tracker.history


def test_a_graph_breaking_model_gets_one_measured_variant_whatever_its_depth():
    alone, _ = train(6, breaks=True, monitor=False)
    shallow, _ = train(2, breaks=True, monitor=True)
    deep, history = train(6, breaks=True, monitor=True)
    # Without the monitor: the graph before the first break, the block's rest (its input with and
    # without requires_grad) and the head; with it, each piece that runs a hook once more. The site
    # index and the deferred list used to be guarded on: one recompilation per block (12 graphs at
    # depth 6 against 8 at depth 2, and Dynamo's recompile limit on deeper models).
    assert deep == shallow <= 2 * alone
    assert deep > alone  # the measured variant exists: the hooks are traced, not skipped
    _, eager = train(6, breaks=True, monitor=True, compiled=False)
    assert len(history) == len(eager) == 2 * 13  # 2 measurements x (6 blocks x 2 + head)
    for got, want in zip(history, eager):
        assert (got["step"], got["site"]) == (want["step"], want["site"])
        for stat in ("mean", "std", "kl_gauss", "p50"):
            assert got[stat] == pytest.approx(want[stat], rel=1e-6, abs=1e-9, nan_ok=True), stat


def test_a_fullgraph_model_gets_exactly_one_more_graph():
    alone, _ = train(6, breaks=False, monitor=False)
    with_tracker, history = train(6, breaks=False, monitor=True)
    assert (alone, with_tracker) == (1, 2)  # unmeasured and measured variants
    assert {r["step"] for r in history} == {0, 3}
