"""The IDX reader and MnistDataModule, on small files written in the real format."""

import gzip

import numpy as np
import pytest

from shiftkit.data import DatasetFormatError, DatasetNotFoundError, MnistDataModule
from shiftkit.data.idx import read_idx_images, read_idx_labels
from shiftkit.data.mnist import load_mnist_idx

from .helpers import idx_bytes, write_mnist_dir


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_is_exact(tmp_path, gz):
    arrays = write_mnist_dir(tmp_path, n_train=20, n_test=7, gz=gz)
    for split in ("train", "test"):
        images, labels = load_mnist_idx(tmp_path, split)
        assert images.shape == arrays[f"{split}_images"].shape
        np.testing.assert_array_equal(images, arrays[f"{split}_images"])
        np.testing.assert_array_equal(labels, arrays[f"{split}_labels"])
        assert labels.dtype == np.int64


def test_datamodule_splits_and_scales_the_files(tmp_path):
    arrays = write_mnist_dir(tmp_path, n_train=40, n_test=7)
    dm = MnistDataModule(str(tmp_path), val_fraction=0.25, batch_size=8)
    dm.setup()
    train, val, test = (dm.datasets[s] for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (30, 10, 7)
    # test is the t10k file, in order, scaled to [0, 1]
    np.testing.assert_allclose(test.inputs[:, 0], arrays["test_images"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(test.targets, arrays["test_labels"])
    # train + val are the train file, nothing lost or repeated; val takes 1 of each class
    pooled = np.concatenate([train.inputs, val.inputs])[:, 0]
    expected = arrays["train_images"] / 255.0
    order = lambda a: np.lexsort(a.reshape(len(a), -1).T)  # noqa: E731
    np.testing.assert_allclose(pooled[order(pooled)], expected[order(expected)], rtol=1e-6)
    assert np.bincount(val.targets, minlength=10).tolist() == [1] * 10


def test_standardized_uses_train_split_statistics(tmp_path):
    write_mnist_dir(tmp_path, n_train=40, n_test=7)
    dm = MnistDataModule(str(tmp_path), variant="standardized", val_fraction=0.25)
    dm.setup()
    train = dm.datasets["train"].inputs
    assert abs(float(train.mean())) < 1e-5
    assert float(train.std()) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(dm.datasets["test"].inputs.mean())) > 1e-4  # other data, same shift


def test_wrong_magic_names_file_and_both_numbers(tmp_path):
    write_mnist_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros(20, np.uint8), 2049))  # a label file in its place
    with pytest.raises(DatasetFormatError) as err:
        load_mnist_idx(tmp_path, "train")
    assert str(err.value) == f"expected magic 2051 (images) in {path}, found 2049"


def test_truncated_file_states_header_size_and_file_size(tmp_path):
    write_mnist_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetFormatError) as err:
        read_idx_images(path)
    # 16-byte header + 20 * 28 * 28 = 15696
    assert str(err.value) == (
        f"{path} truncated: header says 20x28x28 = 15696 bytes, file has 1000"
    )


def test_truncated_gzip_payload_reports_decompressed_size(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8), 2049)[:-3]))
    with pytest.raises(DatasetFormatError, match="decompressed file has 15$") as err:
        read_idx_labels(path)
    assert str(path) in str(err.value) and "header says 10 = 18 bytes" in str(err.value)


def test_trailing_bytes_and_tiny_and_corrupt_gzip_files(tmp_path):
    long = tmp_path / "long"
    long.write_bytes(idx_bytes(np.arange(4, dtype=np.uint8), 2049) + b"xx")
    with pytest.raises(DatasetFormatError, match="has trailing bytes: header says 4 = 12 bytes"):
        read_idx_labels(long)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(DatasetFormatError, match="less than the 4-byte magic number"):
        read_idx_labels(tiny)
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetFormatError, match=f"{corrupt} is not a valid gzip file"):
        read_idx_labels(corrupt)


def test_mismatched_counts_name_both_files(tmp_path):
    write_mnist_dir(tmp_path, n_train=20)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(19, np.uint8), 2049))
    with pytest.raises(DatasetFormatError) as err:
        load_mnist_idx(tmp_path, "train")
    message = str(err.value)
    assert str(tmp_path / "train-images-idx3-ubyte") in message and str(labels) in message
    assert "20 images" in message and "19 labels" in message


def test_label_out_of_range_is_refused(tmp_path):
    write_mnist_dir(tmp_path, n_train=20)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.full(20, 12, np.uint8), 2049))
    with pytest.raises(DatasetFormatError, match="has label 12, expected 0..9"):
        load_mnist_idx(tmp_path, "train")


def test_missing_file_and_directory_name_expected_files(tmp_path):
    write_mnist_dir(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        MnistDataModule(str(tmp_path)).setup()
    assert isinstance(err.value, FileNotFoundError)
    assert str(err.value).startswith(
        f"t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz) not found in {tmp_path}"
    )
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte") as err:
        MnistDataModule(str(missing)).setup()
    assert f"MNIST directory {missing} does not exist" in str(err.value)


def test_torchvision_layout_is_found(tmp_path):
    arrays = write_mnist_dir(tmp_path / "MNIST" / "raw", n_test=5)
    images, _ = load_mnist_idx(tmp_path, "test")
    np.testing.assert_array_equal(images, arrays["test_images"])


def test_reading_an_absent_file_directly_names_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        read_idx_labels(tmp_path / "absent-idx1-ubyte")
    assert str(err.value) == f"IDX labels file {tmp_path / 'absent-idx1-ubyte'} not found"
