"""Which layers are monitored, and the errors when none match."""

import pytest
from torch import nn

from shiftkit import ShiftMonitor
from shiftkit.tracker.selection import select_modules, unit_layouts
from shiftkit.stats import CHANNELS, FEATURES
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.head = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Dropout(), nn.Linear(5, 2), nn.Softmax(-1))


def names(selected):
    return [n for n, _ in selected]


def test_default_selection_is_linear_conv_norm_and_activations():
    assert names(select_modules(Mixed(), None, None)) == ["conv", "bn", "relu", "head.0", "head.1", "head.3"]


def test_patterns_on_names_types_and_classes():
    m = Mixed()
    assert names(select_modules(m, ["head.*"], None)) == ["head.0", "head.1", "head.2", "head.3", "head.4"]
    assert names(select_modules(m, "Conv*", None)) == ["conv"]
    assert names(select_modules(m, [nn.Linear], ["head.3"])) == ["head.0"]
    assert names(select_modules(m, None, ["Tanh", "bn"])) == ["conv", "relu", "head.0", "head.3"]


def test_unit_layouts_follow_the_last_typed_layer():
    layouts = unit_layouts(Mixed())
    assert layouts["conv"] == layouts["bn"] == layouts["relu"] == CHANNELS
    assert layouts["head.0"] == layouts["head.1"] == FEATURES


def test_nothing_matches_is_a_clear_error_at_setup():
    monitor = ShiftMonitor(layers=["encoder.*"], exclude=["x"])
    with pytest.raises(ValueError, match=r"no module matched layers=\['encoder\.\*'\].*fc1 \(Linear\)"):
        trainer(max_steps=1, callbacks=[monitor]).fit(OffsetNet(), loader(standardized(8, 6), 8))


def test_stats_filter_limits_logged_keys(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from shiftkit.records import read_csv_metrics

    logger = CSVLogger(tmp_path)
    monitor = ShiftMonitor(every_n_steps=1, stats=["kl_gauss", "p50"], layers=["fc1"])
    trainer(max_steps=3, callbacks=[monitor], logger=logger).fit(OffsetNet(lr=0.1), loader(standardized(16, 6), 8))
    keys = {k for k in read_csv_metrics(logger.log_dir).columns if k.startswith("shift/")}
    assert keys == {"shift/fc1/kl_gauss", "shift/fc1/p50", "shift/mean_kl_gauss", "shift/max_kl_gauss"}
