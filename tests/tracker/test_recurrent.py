"""The default selection covers recurrent layers: an LSTM's and a GRU's float input sequence."""

import pytest
import torch
from torch import nn

from shiftkit import ShiftTracker


class Tagger(nn.Module):
    """Token ids -> embedding -> LSTM -> GRU -> linear, batch first."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(6, 5, batch_first=True)
        self.gru = nn.GRU(5, 4, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, tokens, h0=None):
        x, _ = self.lstm(self.embed(tokens), h0)
        x, _ = self.gru(x)
        return self.head(x)


def test_lstm_and_gru_inputs_are_measured_by_default_and_their_states_skipped():
    torch.manual_seed(0)
    model = Tagger()
    tracker = ShiftTracker(model, every_n_steps=1)
    assert tracker.site_names == ["lstm", "gru", "head"]  # the embedding's input is integer ids
    tokens = torch.randint(0, 20, (8, 7))
    h0 = (torch.zeros(1, 8, 5), torch.zeros(1, 8, 5))
    said = r"site 'lstm': measured args\[0\]: float32 8x7x6; skipped args\[1\]\[0\]: float32 1x8x5, args\[1\]\[1\]"
    with pytest.warns(UserWarning, match=said), tracker.step():
        model(tokens, h0)
    tracker.close()
    rows = {r["site"]: r for r in tracker.history}
    # Units are the features (last dimension), pooled over batch and time: 6, 5 and 4.
    assert tracker._acc.layout.units == (6, 5, 4)
    expected = model.embed(tokens).detach()
    assert rows["lstm"]["mean"] == pytest.approx(expected.mean().item(), rel=1e-5)
    assert rows["lstm"]["std"] == pytest.approx(expected.std(unbiased=False).item(), rel=1e-5)
    assert rows["gru"]["nonfinite"] == 0.0
