"""Fast, deterministic synthetic classification tasks, for tests and for deep linear networks."""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np

from shiftkit.data.arrays import ArrayDataset
from shiftkit.data.base import ArrayDataModule

SyntheticTask = Literal["gaussian_mixture", "teacher"]
TeacherActivation = Literal["tanh", "relu", "linear"]
_STREAMS = {"task": 0, "train": 1, "val": 2, "test": 3}
_CALIBRATION_SIZE = 8192
_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "linear": lambda a: a}


def _rng(seed: int, stream: str) -> np.random.Generator:
    # Independent streams: changing num_train leaves the task and the val/test samples alone.
    return np.random.default_rng([seed, _STREAMS[stream]])


def _balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes)


class GaussianMixture:
    """Classes as unit-variance Gaussian blobs around random centres ``class_sep`` from 0.

    The centres are random directions scaled to norm ``class_sep`` (in high ``dim`` nearly
    orthogonal, so two centres are about ``class_sep * sqrt(2)`` apart); an example of class k is
    ``centre_k + N(0, I)``. Each split has (almost exactly) equal class counts.

    Args:
        num_classes: number of blobs.
        dim: input dimension.
        class_sep: distance of every centre from the origin.
        seed: seed of the centres.

    Example:
        >>> task = GaussianMixture(num_classes=3, dim=5, class_sep=4.0, seed=0)
        >>> x, y = task.sample(6, np.random.default_rng(1))
        >>> x.shape, sorted(y.tolist())
        ((6, 5), [0, 0, 1, 1, 2, 2])
    """

    def __init__(self, num_classes: int, dim: int, class_sep: float, seed: int) -> None:
        directions = _rng(seed, "task").standard_normal((num_classes, dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        self.centres = class_sep * directions
        self.num_classes = num_classes

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` examples: float32 inputs ``(n, dim)`` and int64 labels."""
        labels = _balanced_labels(n, self.num_classes, rng)
        noise = rng.standard_normal((n, self.centres.shape[1]))
        return (self.centres[labels] + noise).astype(np.float32), labels.astype(np.int64)


class TeacherNetwork:
    """A random, fixed MLP ``teacher`` that labels standard Gaussian inputs by its argmax.

    ``depth`` hidden layers of ``hidden`` units (weights ``N(0, 1/fan_in)``, no biases, the
    given activation), then a linear layer to ``num_classes`` logits. Each logit is then
    standardized over a fixed calibration sample, so that no class dominates the argmax (the
    classes come out roughly, not exactly, balanced). With ``activation="linear"`` the labels
    are a linear function's argmax, learnable exactly by a (deep) linear network.

    Args:
        num_classes: number of logits / classes.
        dim: input dimension.
        hidden: width of the hidden layers.
        depth: number of hidden layers (0: a random linear classifier).
        activation: ``"tanh"``, ``"relu"`` or ``"linear"``.
        seed: seed of the teacher's weights.

    Example:
        >>> teacher = TeacherNetwork(num_classes=4, dim=8, hidden=16, depth=2, activation="tanh",
        ...                          seed=0)
        >>> x, y = teacher.sample(5, np.random.default_rng(1))
        >>> x.shape, y.dtype
        ((5, 8), dtype('int64'))
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        hidden: int,
        depth: int,
        activation: TeacherActivation,
        seed: int,
    ) -> None:
        rng = _rng(seed, "task")
        widths = [dim] + [hidden] * depth + [num_classes]
        self.weights = [
            rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
            for fan_in, fan_out in itertools.pairwise(widths)
        ]
        self.activation = _ACTIVATIONS[activation]
        self.dim = dim
        logits = self._raw_logits(rng.standard_normal((_CALIBRATION_SIZE, dim)))
        self.logit_mean, self.logit_std = logits.mean(axis=0), logits.std(axis=0)

    def _raw_logits(self, x: np.ndarray) -> np.ndarray:
        for weight in self.weights[:-1]:
            x = self.activation(x @ weight)
        return x @ self.weights[-1]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The teacher's standardized logits for inputs ``x`` of shape ``(n, dim)``."""
        return (self._raw_logits(x) - self.logit_mean) / self.logit_std

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` examples: float32 Gaussian inputs ``(n, dim)`` and the teacher's int64 labels."""
        x = rng.standard_normal((n, self.dim))
        return x.astype(np.float32), self.logits(x).argmax(axis=1).astype(np.int64)


class SyntheticDataModule(ArrayDataModule):
    """Synthetic classification with flat inputs (``input_shape = (dim,)``) or inputs of any
    given ``shape`` (e.g. CIFAR-10's ``(3, 32, 32)``), generated in milliseconds and
    identical for a given ``seed``.

    Two tasks:

    - ``"gaussian_mixture"``: :class:`GaussianMixture`, ``num_classes`` blobs whose centres are
      ``class_sep`` from the origin; learnable by a linear classifier.
    - ``"teacher"``: :class:`TeacherNetwork`, labels from a random fixed MLP
      (``teacher_depth`` x ``teacher_hidden``, ``teacher_activation``) applied to N(0, I)
      inputs. For the deep linear network of Santurkar et al. use
      ``teacher_activation="linear"``: the target is still a class label (cross-entropy), not a
      regression target, so every DataModule of shiftkit yields the same ``(x, int64 label)``
      batches and the same models and metrics apply.

    The task (centres / teacher weights) and each split are drawn from separate streams of
    ``seed``; val and test are fresh samples of the same distribution, not hold-outs. With
    ``shape`` an example is drawn as a flat vector of ``prod(shape)`` values and
    reshaped: it stands in for a real dataset's images (same shapes, same classes), e.g. to
    run a paper-scale network for a few steps without its data.

    Args:
        task: ``"gaussian_mixture"`` or ``"teacher"``.
        num_classes: number of classes.
        dim: input dimension.
        num_train: training examples.
        num_val: validation examples.
        num_test: test examples.
        class_sep: Gaussian mixture: distance of each class centre from the origin.
        teacher_hidden: teacher: hidden width.
        teacher_depth: teacher: number of hidden layers.
        teacher_activation: teacher: ``"tanh"``, ``"relu"`` or ``"linear"``.
        batch_size: examples per batch.
        num_workers: DataLoader worker processes.
        seed: seed of the task and of the samples.
        shuffle: reshuffle the training split every epoch.
        drop_last: drop the last incomplete training batch.
        shape: shape of one input (``input_shape``); given, it replaces ``(dim,)`` and ``dim``
            is unused. (Not named ``input_shape``: that hparam is the model's, linked from
            this module's attribute, and Lightning refuses shared hparams that differ, as the
            config's list and the attribute's tuple do.)

    Example:
        >>> dm = SyntheticDataModule(num_classes=4, dim=16, batch_size=32)
        >>> dm.input_shape, dm.num_classes
        ((16,), 4)
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), x.dtype, y.dtype
        ((32, 16), torch.float32, torch.int64)
        >>> images = SyntheticDataModule(shape=(3, 32, 32), num_train=8, batch_size=4)
        >>> tuple(next(iter(images.train_dataloader()))[0].shape)
        (4, 3, 32, 32)
    """

    def __init__(
        self,
        task: SyntheticTask = "gaussian_mixture",
        num_classes: int = 10,
        dim: int = 32,
        num_train: int = 4096,
        num_val: int = 1024,
        num_test: int = 1024,
        class_sep: float = 3.0,
        teacher_hidden: int = 64,
        teacher_depth: int = 2,
        teacher_activation: TeacherActivation = "tanh",
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            shuffle=shuffle,
            drop_last=drop_last,
        )
        if task not in ("gaussian_mixture", "teacher"):
            raise ValueError(f"task must be 'gaussian_mixture' or 'teacher', got {task!r}")
        if teacher_activation not in _ACTIVATIONS:
            raise ValueError(
                f"teacher_activation must be one of {sorted(_ACTIVATIONS)}, "
                f"got {teacher_activation!r}"
            )
        if shape is not None:
            shape = tuple(int(n) for n in shape)
            if not shape or min(shape) < 1:
                raise ValueError(f"shape must be sizes >= 1, got {shape}")
            dim = int(np.prod(shape))
        if num_classes < 2 or dim < 1 or min(num_train, num_val, num_test) < 1:
            raise ValueError("need num_classes >= 2, dim >= 1 and at least 1 example per split")
        self.task = task
        self.input_shape = shape or (dim,)
        self.num_classes = num_classes
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.class_sep = class_sep
        self.teacher = (teacher_hidden, teacher_depth, teacher_activation)

    def make_task(self) -> GaussianMixture | TeacherNetwork:
        """The generating task (mixture centres or teacher weights) for this seed."""
        dim = int(np.prod(self.input_shape))
        if self.task == "gaussian_mixture":
            return GaussianMixture(self.num_classes, dim, self.class_sep, self.seed)
        hidden, depth, activation = self.teacher
        return TeacherNetwork(self.num_classes, dim, hidden, depth, activation, self.seed)

    def _build_datasets(self) -> dict[str, ArrayDataset]:
        task = self.make_task()
        datasets = {}
        for split, n in self.sizes.items():
            x, y = task.sample(n, _rng(self.seed, split))
            datasets[split] = ArrayDataset(x.reshape(n, *self.input_shape), y)
        return datasets
