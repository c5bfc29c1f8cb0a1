"""DigitsDataModule: scikit-learn's 8x8 digits, scaled, split by class."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from shiftkit.data import DigitsDataModule


@pytest.fixture(scope="module")
def sklearn_digits():
    return load_digits()


def test_shapes_values_and_stratified_sizes(sklearn_digits):
    dm = DigitsDataModule(seed=0)
    assert dm.input_shape == (1, 8, 8) and dm.num_classes == 10
    dm.setup()
    class_counts = np.bincount(sklearn_digits.target)  # 174..183 per class, 1797 in all
    shares = {"train": 0.7, "val": 0.1, "test": 0.2}
    sizes = {"train": 1258, "val": 180, "test": 359}
    for split, rows in dm.split_indices.items():
        ds = dm.datasets[split]
        assert ds.inputs.shape == (sizes[split], 1, 8, 8) and ds.inputs.dtype == np.float32
        per_class = np.bincount(ds.targets, minlength=10)
        assert np.abs(per_class - shares[split] * class_counts).max() <= 1 + 1e-9
        # pixels are sklearn's 0..16 divided by 16, same rows as the labels
        np.testing.assert_allclose(ds.inputs.reshape(len(rows), 64),
                                   sklearn_digits.data[rows] / 16.0, rtol=1e-6)
        np.testing.assert_array_equal(ds.targets, sklearn_digits.target[rows])
    everything = np.concatenate([dm.datasets[s].inputs for s in shares])
    assert everything.min() == 0.0 and everything.max() == 1.0


def test_split_is_fixed_by_seed():
    a, b, c = DigitsDataModule(seed=2), DigitsDataModule(seed=2), DigitsDataModule(seed=3)
    for dm in (a, b, c):
        dm.setup()
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a.split_indices[split], b.split_indices[split])
        assert not np.array_equal(np.sort(a.split_indices[split]),
                                  np.sort(c.split_indices[split]))


def test_standardized_variant_uses_training_statistics():
    dm = DigitsDataModule(variant="standardized")
    dm.setup()
    train = dm.datasets["train"].inputs
    assert abs(float(train.mean())) < 1e-5 and float(train.std()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="unknown variant 'sharpened'"):
        DigitsDataModule(variant="sharpened").setup()
