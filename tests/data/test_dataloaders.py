"""Every DataModule: declared attributes, batch shapes and dtypes, and Lightning's use of it."""

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _update_dataloader
from lightning.pytorch.cli import LightningCLI
from torch.utils.data import DistributedSampler

from shiftkit.data import (
    DATAMODULES,
    ArrayDataModule,
    Cifar10DataModule,
    DigitsDataModule,
    Mnist5kDataModule,
    MnistDataModule,
    SyntheticDataModule,
)

from .helpers import write_cifar_dir, write_mnist_dir


@pytest.fixture(params=["mnist5k", "digits", "mnist", "cifar10", "synthetic"])
def datamodule_args(request, tmp_path_factory, mnist5k_cache):
    """Constructor arguments giving a small instance of each DataModule."""
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    if name == "mnist":
        write_mnist_dir(folder, n_train=60, n_test=25, gz=True)
    if name == "cifar10":
        write_cifar_dir(folder, records_per_file=12)
    extra = {
        "mnist5k": {"cache_dir": str(mnist5k_cache)},
        "digits": {},
        "mnist": {"data_dir": str(folder), "val_fraction": 0.2},
        "cifar10": {"data_dir": str(folder), "val_fraction": 0.2, "augment": True},
        "synthetic": {"num_train": 70, "num_val": 20, "num_test": 25},
    }[name]
    return name, extra


def test_table_names_the_five_classes():
    assert DATAMODULES == {
        "mnist5k": Mnist5kDataModule,
        "digits": DigitsDataModule,
        "mnist": MnistDataModule,
        "cifar10": Cifar10DataModule,
        "synthetic": SyntheticDataModule,
    }


def test_batches_have_declared_shapes_and_dtypes(datamodule_args):
    name, extra = datamodule_args
    dm = DATAMODULES[name](batch_size=16, drop_last=True, **extra)
    shape, num_classes = dm.input_shape, dm.num_classes  # known before setup
    assert num_classes == 10 and len(shape) == (1 if name == "synthetic" else 3)
    dm.setup("fit")
    sizes = {split: len(ds) for split, ds in dm.datasets.items()}
    train = list(dm.train_dataloader())
    assert len(train) == sizes["train"] // 16  # drop_last: whole batches only
    for loader in (train, dm.val_dataloader(), dm.test_dataloader()):
        seen = 0
        for x, y in loader:
            assert x.dtype == torch.float32 and y.dtype == torch.int64
            assert tuple(x.shape[1:]) == shape and x.shape[0] == y.shape[0] <= 16
            assert 0 <= int(y.min()) and int(y.max()) < num_classes
            seen += len(y)
        if loader is not train:
            assert seen == sizes["val"] or seen == sizes["test"]  # eval never drops


def test_training_order_reshuffles_and_eval_order_is_fixed():
    dm = SyntheticDataModule(num_train=64, num_val=64, batch_size=64)
    first, second = (next(iter(dm.train_dataloader()))[1] for _ in range(2))
    assert not torch.equal(first, second) and sorted(first.tolist()) == sorted(second.tolist())
    val = [next(iter(dm.val_dataloader()))[1] for _ in range(2)]
    assert torch.equal(val[0], val[1])
    assert torch.equal(val[0], torch.from_numpy(dm.datasets["val"].targets))
    fixed = SyntheticDataModule(num_train=64, batch_size=64, shuffle=False)
    assert torch.equal(next(iter(fixed.train_dataloader()))[1],
                       torch.from_numpy(fixed.datasets["train"].targets))


def test_worker_processes_give_the_same_batches():
    in_process = SyntheticDataModule(num_train=50, num_val=50, batch_size=20)
    workers = SyntheticDataModule(num_train=50, num_val=50, batch_size=20, num_workers=1)
    for (a, y_a), (b, y_b) in zip(in_process.val_dataloader(), workers.val_dataloader()):
        assert torch.equal(a, b) and torch.equal(y_a, y_b)


def test_distributed_sampler_splits_batches_between_ranks():
    # what Lightning does to a train dataloader under DDP: same loader, DistributedSampler in
    dm = SyntheticDataModule(num_train=100, batch_size=10)
    loader = dm.train_dataloader()
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True)
        batches = list(_update_dataloader(loader, sampler))
        assert [len(y) for _, y in batches] == [10] * 5
        seen.append(torch.cat([x for x, _ in batches]))
    rows = torch.cat(seen)
    assert len(torch.unique(rows, dim=0)) == 100  # the two ranks together: every example once


class _LinearClassifier(pl.LightningModule):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.linear = torch.nn.Linear(int(np.prod(input_shape)), num_classes)
        self.val_correct = 0

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.linear(x.flatten(1)), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.val_correct += int((self.linear(x.flatten(1)).argmax(1) == y).sum())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


def test_lightning_trainer_fits_from_the_datamodule():
    dm = SyntheticDataModule(num_classes=4, dim=8, num_train=512, num_val=200, batch_size=32,
                             class_sep=4.0)
    model = _LinearClassifier(dm.input_shape, dm.num_classes)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 2 * 16
    assert model.val_correct / 200 > 0.8  # last epoch's validation; chance is 0.25


class _ShapeRecorder(pl.LightningModule):
    def __init__(self, input_shape: tuple[int, ...] = (1,), num_classes: int = 2):
        super().__init__()
        self.input_shape, self.num_classes = input_shape, num_classes


class _LinkingCLI(LightningCLI):
    def add_arguments_to_parser(self, parser):
        parser.link_arguments("data.input_shape", "model.input_shape", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")


@pytest.mark.parametrize("args, shape, classes", [
    (["--data=Mnist5kDataModule"], (1, 28, 28), 10),
    (["--data=SyntheticDataModule", "--data.dim=7", "--data.num_classes=3"], (7,), 3),
    (["--data=Cifar10DataModule", "--data.data_dir=/not/read/before/setup"], (3, 32, 32), 10),
])
def test_lightning_cli_links_shape_and_classes_into_the_model(args, shape, classes):
    cli = _LinkingCLI(_ShapeRecorder, ArrayDataModule, subclass_mode_data=True, run=False,
                      args=args + ["--trainer.logger=false"], save_config_callback=None)
    assert cli.model.input_shape == shape and cli.model.num_classes == classes
