"""SyntheticDataModule: shapes, determinism, and tasks that can actually be learned."""

import numpy as np
import pytest
import torch

from shiftkit.data import SyntheticDataModule


def built(**kwargs) -> SyntheticDataModule:
    dm = SyntheticDataModule(**kwargs)
    dm.setup()
    return dm


def logistic_regression_accuracy(dm: SyntheticDataModule, shuffle_labels: bool = False) -> float:
    """Test accuracy of a linear softmax classifier fitted full-batch on the training split."""
    train, test = dm.datasets["train"], dm.datasets["test"]
    x, y = torch.from_numpy(train.inputs), torch.from_numpy(train.targets)
    if shuffle_labels:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], dm.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):  # one torch thread: tests/conftest.py
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        predicted = model(torch.from_numpy(test.inputs)).argmax(dim=1)
    return float((predicted == torch.from_numpy(test.targets)).float().mean())


@pytest.mark.parametrize("task", ["gaussian_mixture", "teacher"])
def test_shapes_and_declared_attributes(task):
    dm = SyntheticDataModule(task=task, num_classes=5, dim=12, num_train=100, num_val=30,
                             num_test=40)
    assert dm.input_shape == (12,) and dm.num_classes == 5  # before setup
    dm.setup()
    for split, n in {"train": 100, "val": 30, "test": 40}.items():
        ds = dm.datasets[split]
        assert ds.inputs.shape == (n, 12) and ds.inputs.dtype == np.float32
        assert ds.targets.dtype == np.int64 and set(ds.targets.tolist()) <= set(range(5))


@pytest.mark.parametrize("task", ["gaussian_mixture", "teacher"])
def test_same_seed_same_data_other_seed_other_data(task):
    sizes = {"num_train": 300, "num_val": 100, "num_test": 100}
    a, b, c = (built(task=task, seed=seed, **sizes) for seed in (5, 5, 6))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a.datasets[split].inputs, b.datasets[split].inputs)
        np.testing.assert_array_equal(a.datasets[split].targets, b.datasets[split].targets)
        assert not np.array_equal(a.datasets[split].inputs, c.datasets[split].inputs)
    assert not np.array_equal(a.datasets["train"].inputs[:100], a.datasets["val"].inputs[:100])
    # a bigger training set leaves the task and the held-out samples alone
    bigger = built(task=task, seed=5, **{**sizes, "num_train": 600})
    np.testing.assert_array_equal(bigger.datasets["test"].inputs, a.datasets["test"].inputs)
    np.testing.assert_array_equal(bigger.datasets["test"].targets, a.datasets["test"].targets)


def test_gaussian_mixture_is_learnable_and_labels_matter():
    dm = built(num_classes=10, dim=32, num_train=2048, class_sep=3.0)
    assert np.bincount(dm.datasets["train"].targets).tolist() == [205] * 8 + [204] * 2
    assert logistic_regression_accuracy(dm) > 0.75  # chance: 0.10
    assert logistic_regression_accuracy(dm, shuffle_labels=True) < 0.2


def test_class_sep_sets_difficulty():
    def nearest_centre_accuracy(class_sep):
        dm = built(num_classes=10, dim=32, num_test=2000, class_sep=class_sep)
        centres = dm.make_task().centres
        test = dm.datasets["test"]
        distances = ((test.inputs[:, None, :] - centres[None]) ** 2).sum(-1)
        return float((distances.argmin(1) == test.targets).mean())

    easy, medium, hard = (nearest_centre_accuracy(s) for s in (6.0, 3.0, 1.0))
    assert easy > 0.99 and 0.75 < medium < 0.95 and hard < 0.5


def test_linear_teacher_is_learnable_by_a_linear_model():
    dm = built(task="teacher", teacher_activation="linear", num_classes=10, dim=32,
               num_train=2048)
    counts = np.bincount(dm.datasets["train"].targets, minlength=10)
    assert counts.min() > 0.4 * 2048 / 10  # logits standardized: no class starves
    assert logistic_regression_accuracy(dm) > 0.85
    assert logistic_regression_accuracy(dm, shuffle_labels=True) < 0.2


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="task must be"):
        SyntheticDataModule(task="spirals")
    with pytest.raises(ValueError, match="teacher_activation must be one of"):
        SyntheticDataModule(task="teacher", teacher_activation="sigmoid")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        SyntheticDataModule(num_classes=1)


def test_shape_gives_image_shaped_examples_of_the_flat_task():
    images = built(shape=[3, 4, 5], num_classes=3, num_train=30, num_val=6, num_test=6)
    flat = built(dim=60, num_classes=3, num_train=30, num_val=6, num_test=6)
    assert images.input_shape == (3, 4, 5)  # a tuple, as the real image DataModules declare it
    assert images.datasets["train"].inputs.shape == (30, 3, 4, 5)
    # The same draws as the flat task of prod(shape) dimensions, only reshaped.
    np.testing.assert_array_equal(images.datasets["train"].inputs.reshape(30, 60),
                                  flat.datasets["train"].inputs)  # fmt: skip
    np.testing.assert_array_equal(images.datasets["val"].targets, flat.datasets["val"].targets)
    with pytest.raises(ValueError, match=r"shape must be sizes >= 1, got \(3, 0\)"):
        SyntheticDataModule(shape=[3, 0])
