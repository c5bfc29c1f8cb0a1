"""The CIFAR-10 binary reader and Cifar10DataModule, on small files in the real layout."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from shiftkit.data import Cifar10DataModule, DatasetFormatError, DatasetNotFoundError
from shiftkit.data.augment import random_crop_flip
from shiftkit.data.cifar10 import channel_mean_std
from shiftkit.data.cifar_binary import load_cifar10_binary, read_cifar_batch

from .helpers import cifar_pixel, cifar_record_bytes, write_cifar_dir


def expected_images(first: int, n: int) -> np.ndarray:
    image, channel, row, col = np.ix_(np.arange(first, first + n), range(3), range(32), range(32))
    return cifar_pixel(image, channel, row, col).astype(np.uint8)


def test_record_layout_round_trips_to_channel_row_column(tmp_path):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(cifar_record_bytes(np.arange(30) % 10))
    images, labels = read_cifar_batch(path)
    assert images.shape == (30, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, expected_images(0, 30))
    assert labels.tolist() == (np.arange(30) % 10).tolist()
    # one pixel by hand: image 2, green (plane 1), row 5, column 9 -> byte 1 + 1024 + 5*32 + 9
    raw = path.read_bytes()
    assert images[2, 1, 5, 9] == raw[2 * 3073 + 1 + 1024 + 5 * 32 + 9]


def test_whole_directory_or_its_batches_subfolder(tmp_path):
    write_cifar_dir(tmp_path / "cifar-10-batches-bin", records_per_file=30)
    data = load_cifar10_binary(tmp_path)
    assert data["train"][0].shape == (150, 3, 32, 32) and data["test"][0].shape == (30, 3, 32, 32)
    np.testing.assert_array_equal(data["train"][0], expected_images(0, 150))
    np.testing.assert_array_equal(data["test"][0], expected_images(150, 30))
    assert load_cifar10_binary(tmp_path / "cifar-10-batches-bin")["test"][1].tolist() == (
        data["test"][1].tolist()
    )


def test_wrong_size_names_file_and_record_size(tmp_path):
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(cifar_record_bytes(np.zeros(2, np.uint8)) + b"12345")
    with pytest.raises(DatasetFormatError) as err:
        read_cifar_batch(path)
    assert str(err.value).startswith(
        f"{path} has 6151 bytes, expected a positive multiple of 3073"
    )


def test_reading_an_absent_batch_directly_names_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="data_batch_9.bin not found"):
        read_cifar_batch(tmp_path / "data_batch_9.bin")


def test_label_byte_11_is_refused(tmp_path):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(cifar_record_bytes(np.array([3, 11, 4], np.uint8)))
    with pytest.raises(DatasetFormatError) as err:
        read_cifar_batch(path)
    assert str(err.value).startswith(f"{path} record 1 has label 11, expected 0..9")


class _Tripwire:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def test_pickled_python_version_is_refused_unopened(tmp_path, monkeypatch):
    sentinel = tmp_path / "was-unpickled"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(pickle.dumps(_Tripwire(sentinel)))

    def no_unpickling(*args, **kwargs):
        raise AssertionError("pickle was called")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_unpickling)
    with pytest.raises(DatasetNotFoundError) as err:
        Cifar10DataModule(str(tmp_path)).setup()
    assert str(err.value).startswith(
        f"{folder} holds the CIFAR-10 python version, which is pickled; shiftkit does not "
        "unpickle files"
    )
    assert "binary version" in str(err.value)
    assert not sentinel.exists()


def test_missing_binary_files_are_listed(tmp_path):
    write_cifar_dir(tmp_path)
    (tmp_path / "data_batch_4.bin").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing in .*: data_batch_4.bin$"):
        Cifar10DataModule(str(tmp_path)).setup()
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        Cifar10DataModule(str(tmp_path / "nowhere")).setup()


def test_channel_mean_std_is_exact():
    images = np.random.default_rng(0).integers(0, 256, (50, 3, 4, 4), dtype=np.uint8)
    mean, std = channel_mean_std(images)
    as_float = images.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64)
    np.testing.assert_allclose(mean, as_float.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, as_float.std(axis=1), rtol=1e-12)


def test_standardized_with_train_split_statistics(tmp_path):
    write_cifar_dir(tmp_path, records_per_file=30)
    dm = Cifar10DataModule(str(tmp_path), val_fraction=0.2, batch_size=1000, shuffle=False)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (120, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    per_channel = x.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1, correction=0), torch.ones(3), atol=1e-5, rtol=0)
    # the test split is the test file, standardized with the same (train) numbers
    x_test, _ = next(iter(dm.test_dataloader()))
    raw_test = torch.from_numpy(expected_images(150, 30)).float()
    mean = torch.tensor(dm.channel_mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(dm.channel_std, dtype=torch.float32).view(1, 3, 1, 1)
    torch.testing.assert_close(x_test, (raw_test - mean) / std)


def _matches_a_crop_or_flip(out: torch.Tensor, image: torch.Tensor, padding: int = 4) -> bool:
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[:, top : top + 32, left : left + 32]
            if torch.equal(out, crop) or torch.equal(out, crop.flip(-1)):
                return True
    return False


def test_random_crop_flip_gives_shifted_mirrored_windows():
    torch.manual_seed(0)
    images = torch.randn(8, 3, 32, 32)
    out = random_crop_flip(images)
    assert all(_matches_a_crop_or_flip(out[i], images[i]) for i in range(8))
    assert not torch.equal(out, images)
    # pixel = 100 * row + column; recover each image's offsets and flip from its pixels
    n = 9000
    coded = (100 * torch.arange(32.0)[:, None] + torch.arange(32.0)).expand(n, 1, 32, 32)
    out = random_crop_flip(coded.contiguous())[:, 0]
    flipped = out[:, 16, 20] < out[:, 16, 12]
    top = out[:, 16, 12] // 100 - 12  # crop row 16 is padded row 16 + top = image row 12 + top
    col = out[:, 16, 12] % 100  # image column 8 + left, or 15 + left when mirrored
    left = torch.where(flipped, col - 15, col - 8)
    assert 0.47 < float(flipped.float().mean()) < 0.53
    for offset in (top, left):
        share = torch.bincount(offset.long(), minlength=9).float() / n
        assert len(share) == 9 and float((share - 1 / 9).abs().max()) < 0.02


def test_augmentation_only_on_training_batches(tmp_path):
    write_cifar_dir(tmp_path, records_per_file=30)
    plain = Cifar10DataModule(str(tmp_path), shuffle=False, batch_size=500)
    augmented = Cifar10DataModule(str(tmp_path), shuffle=False, batch_size=500, augment=True)
    torch.manual_seed(0)
    x_plain, _ = next(iter(plain.train_dataloader()))
    x_aug, _ = next(iter(augmented.train_dataloader()))
    assert not torch.equal(x_plain, x_aug)
    assert all(_matches_a_crop_or_flip(x_aug[i], x_plain[i]) for i in range(10))
    for loader in ("val_dataloader", "test_dataloader"):
        a, _ = next(iter(getattr(plain, loader)()))
        b, _ = next(iter(getattr(augmented, loader)()))
        assert torch.equal(a, b)
