"""The DataModule base class: whole splits in memory, one gather per batch."""

from __future__ import annotations

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from shiftkit.data.arrays import ArrayDataset, keep_batch

SPLITS = ("train", "val", "test")


class ArrayDataModule(pl.LightningDataModule):
    """Base of the shiftkit DataModules: the arguments they share and their dataloaders.

    A subclass sets ``input_shape`` and ``num_classes`` (available right after construction, so
    LightningCLI can link them into the model) and implements ``_build_datasets`` returning an
    :class:`ArrayDataset` for each of ``"train"``, ``"val"``, ``"test"``. Datasets are built once
    by :meth:`setup`; calling a dataloader method first runs ``setup`` itself, so the module also
    works in a plain training loop. Training order comes from torch's global RNG (seed it with
    ``lightning.seed_everything``); the splits come from ``seed``.

    Args:
        batch_size: examples per batch, for all three dataloaders.
        num_workers: DataLoader worker processes (0: load in the main process, which is fastest
            for in-memory data unless a per-batch transform is heavy).
        seed: seed of the deterministic train/val/test split (and of generated data).
        shuffle: reshuffle the training split every epoch.
        drop_last: drop the last incomplete training batch (val/test never drop).

    Example:
        >>> from shiftkit.data import DigitsDataModule
        >>> dm = DigitsDataModule(batch_size=32)
        >>> dm.input_shape, dm.num_classes
        ((1, 8, 8), 10)
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), y.dtype
        ((32, 1, 8, 8), torch.int64)
    """

    input_shape: tuple[int, ...]
    num_classes: int

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.datasets: dict[str, ArrayDataset] | None = None

    def _build_datasets(self) -> dict[str, ArrayDataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Load and split the data (once; later calls do nothing)."""
        if self.datasets is None:
            datasets = self._build_datasets()
            assert set(datasets) == set(SPLITS), f"{type(self).__name__} built {sorted(datasets)}"
            self.datasets = datasets

    def train_dataloader(self) -> DataLoader:
        """Batches of the training split, shuffled if ``shuffle``."""
        return self._dataloader("train", shuffle=self.shuffle, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        """Batches of the validation split, in a fixed order."""
        return self._dataloader("val", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of the test split, in a fixed order."""
        return self._dataloader("test", shuffle=False, drop_last=False)

    def _dataloader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=keep_batch,
        )
