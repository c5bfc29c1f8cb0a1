"""Models the monitor meets in the wild: odd inputs and outputs, shared modules, shapes that
change between steps, containers and nested LightningModules, a transformer and recurrent nets.

Each row fits a small model and asserts what is observable: the values in the history (against
an oracle that records the module's calls with its own hook), and the warnings.
"""

import pytest
import torch
from torch import nn

from shiftkit import ShiftMonitor
from tests.hardening.helpers import Capture, assert_pooled_moments, fit, monitor_warnings, rows
from tests.hardening.zoo import (
    CellLoop,
    Classifier,
    Containers,
    Nested,
    OddInputs,
    RecurrentNet,
    SharedLinear,
    TinyTransformer,
    sequences,
    tokens,
)

STEPS = 3
IDS = tokens([(8, 5)] * STEPS)
SEQ = sequences([(8, 5, 4)] * STEPS)

# site, model, data, oracle (module name, pick, output?), the one warning about the site (or None)
ODD = {
    "embedding-int-ids-in": (
        "net.emb", OddInputs, IDS, None,
        "site 'net.emb': its input carried no floating-point tensor (got args[0]: int64 8x5); not measured",
    ),
    "embedding-out": ("net.emb@out", OddInputs, IDS, ("net.emb", None, True), None),
    "attention-qkv-in": ("net.attn", TinyTransformer, tokens([(8, 5)] * STEPS), ("net.attn", None, False), None),
    "attention-tuple-out": (
        "net.attn@out", TinyTransformer, tokens([(8, 5)] * STEPS), ("net.attn", lambda out: out[0], True),
        "site 'net.attn@out': measured output[0]: float32 8x5x16; skipped output[1]: float32 8x5x5",
    ),
    "lstm-tuple-out": (
        "net.rnn@out", lambda: RecurrentNet(kind="LSTM"), SEQ, ("net.rnn", lambda out: out[0], True),
        "site 'net.rnn@out': measured output[0]: float32 8x5x8; skipped output[1][0]: float32 1x8x8, "
        "output[1][1]: float32 1x8x8",
    ),
    "gru-tuple-out": (
        "net.rnn@out", lambda: RecurrentNet(kind="GRU"), SEQ, ("net.rnn", lambda out: out[0], True),
        "site 'net.rnn@out': measured output[0]: float32 8x5x8; skipped output[1]: float32 1x8x8",
    ),
    "dict-in": (
        "net.dict_in", OddInputs, IDS, ("net.dict_in", lambda a, kw: a[0]["x"], False),
        "site 'net.dict_in': measured args[0]['x']: float32 8x4; skipped args[0]['mask']: int64 8x4",
    ),
    "keyword-only-in": ("net.kw_only", OddInputs, IDS, ("net.kw_only", lambda a, kw: kw["x"], False), None),
    "none-in": (
        "net.none", OddInputs, IDS, None,
        "site 'net.none': its input carried no floating-point tensor (got no tensor at all); not measured",
    ),
    "none-out": (
        "net.none@out", OddInputs, IDS, None,
        "site 'net.none@out': its output carried no floating-point tensor (got no tensor at all); not measured",
    ),
    # MultiheadAttention uses out_proj's weights without calling it (selected only by name):
    "never-called-submodule": (
        "net.attn.out_proj", TinyTransformer, tokens([(8, 5)] * STEPS), None,
        "site 'net.attn.out_proj': never ran in a measured training step; dropped",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ODD))
def test_measures_the_float_tensor_it_can_and_says_once_what_it_skipped(case):
    site, make, data, oracle, expected = ODD[case]
    module = site.removesuffix("@out")
    monitor = ShiftMonitor(every_n_steps=1, layers=[module], track="both", noise_floor=False)
    capture = [Capture(oracle[0], oracle[1], output=oracle[2])] if oracle else []
    messages = monitor_warnings(fit(Classifier(make()), data, monitor, callbacks=capture))
    about = [m for m in messages if f"site '{site}'" in m]
    assert about == ([f"ShiftMonitor: {expected}"] if expected else [])  # once, or never
    measured = rows(monitor, site)
    if oracle is None:
        assert measured == {}
        return
    assert sorted(measured) == list(range(STEPS))
    for step, row in measured.items():
        assert_pooled_moments(row, capture[0].values(step))


@pytest.mark.parametrize(
    "make, site, calls",
    [(SharedLinear, "net.fc", 2), (CellLoop, "net.cell", 5)],
    ids=["weight-sharing", "recurrent-cell"],
)
def test_every_call_of_a_module_folds_into_one_state(make, site, calls):
    monitor = ShiftMonitor(every_n_steps=1, layers=[site])
    capture = Capture(site)
    fit(
        Classifier(make()),
        sequences([(8, 5, 4) if make is CellLoop else (8, 4)] * STEPS),
        monitor,
        callbacks=[capture],
    )
    for step, row in rows(monitor, site).items():
        assert len(capture.calls[step]) == calls
        assert_pooled_moments(row, capture.values(step))  # the union of the calls, not the last one
    assert len(rows(monitor, site)) == STEPS


def conv_net():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


SHAPES = {
    "sequence-length": (TinyTransformer, tokens([(8, 5), (8, 9), (8, 2)]), "net.ln1"),
    "image-size": (conv_net, sequences([(4, 3, 8, 8), (4, 3, 12, 12), (4, 3, 6, 5)]), "net.0"),
    "partial-last-batch": (
        conv_net,
        sequences([(4, 3, 8, 8), (4, 3, 8, 8), (1, 3, 8, 8)]),
        "net.1",
    ),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_shapes_that_change_between_steps_are_measured_at_every_step(case):
    make, data, site = SHAPES[case]
    monitor = ShiftMonitor(every_n_steps=1)
    capture = Capture(site)
    messages = monitor_warnings(fit(Classifier(make()), data, monitor, callbacks=[capture]))
    assert messages == []
    measured = rows(monitor, site)
    assert sorted(measured) == list(range(STEPS))
    for step, row in measured.items():
        assert_pooled_moments(row, capture.values(step))
        if step > 0:
            assert row["kl_gauss"] >= 0 and row["kl_hist"] >= 0


class Scores(nn.Module):
    """Softmax over attention-like scores: its last dimension (its units) is the sequence length."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(16, 4)
        self.softmax = nn.Softmax(-1)
        self.head = nn.Linear(4, 2)

    def forward(self, ids):
        h = self.emb(ids)
        return self.head(self.softmax(h @ h.transpose(1, 2)) @ h).mean(1)


def test_a_site_whose_number_of_units_changes_is_skipped_at_those_steps_with_one_warning():
    monitor = ShiftMonitor(every_n_steps=1, layers=["net.softmax"])
    messages = monitor_warnings(
        fit(Classifier(Scores()), tokens([(4, 5), (4, 7), (4, 5)]), monitor)
    )
    assert messages == [
        "ShiftMonitor: site 'net.softmax': the number of units changed between calls; those calls are skipped"
    ]
    assert sorted(rows(monitor, "net.softmax")) == [0, 2]  # step 1 had 7 units instead of 5


SITES = {
    "sequential-modulelist-moduledict": (
        Containers, ["net.seq.0", "net.seq.1", "net.blocks.0", "net.blocks.1", "net.heads.main", "net.heads.aux"],
    ),
    "nested-lightningmodule": (Nested, ["backbone.net.0", "backbone.net.1", "head"]),
    "transformer": (
        TinyTransformer, ["net.ln1", "net.ln2", "net.mlp.0", "net.mlp.1", "net.mlp.2", "net.ln_f", "net.head"],
    ),
    "lstm": (lambda: RecurrentNet(kind="LSTM"), ["net.rnn", "net.head"]),  # the float input sequence
}  # fmt: skip


@pytest.mark.parametrize("case", list(SITES))
def test_default_selection_names_and_measures_every_layer(case):
    make, expected = SITES[case]
    model = make()
    model = model if isinstance(model, Nested) else Classifier(model)
    data = (
        tokens([(8, 5)] * STEPS)
        if case == "transformer"
        else sequences([(8, 5, 4) if case == "lstm" else (8, 4)] * STEPS)
    )
    monitor = ShiftMonitor(every_n_steps=1)
    capture = Capture(expected[-1])
    messages = monitor_warnings(fit(model, data, monitor, callbacks=[capture]))
    assert monitor.site_names == expected
    assert messages == []  # MultiheadAttention.out_proj (never called) is not selected by default
    assert len(monitor.history) == STEPS * len(expected)
    assert all(
        torch.isfinite(torch.tensor([r["mean"], r["std"], r["p50"]])).all() for r in monitor.history
    )
    for step, row in rows(monitor, expected[-1]).items():
        assert_pooled_moments(row, capture.values(step))
