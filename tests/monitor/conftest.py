"""Fixtures of the monitor tests (the models and data are in tests/monitor/helpers.py)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest


@pytest.fixture
def quiet_seed():
    pl.seed_everything(0, verbose=False)
