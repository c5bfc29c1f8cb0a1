import numpy as np
import pytest
import torch



@pytest.fixture
def gen():
    """A seeded torch generator: every test draws the same data on every run."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
