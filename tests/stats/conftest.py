import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Two CPU cores are shared by several engineers: keep intra-op threads at one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def gen():
    """A seeded torch generator: every test draws the same data on every run."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
