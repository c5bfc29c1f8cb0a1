"""The errors ``shiftkit.data`` raises for data it cannot use.

Every loader turns a bad or missing file into one of these, with the file's path and what was
expected in the message, so a user never has to read a traceback from inside numpy.
"""

from pathlib import Path


def why_not_a_directory(path: Path) -> str:
    """``"does not exist"``, or ``"is a file, not a directory"``: for messages about a data directory."""
    return "is a file, not a directory" if path.exists() else "does not exist"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset directory or file is not where it was said to be.

    The message names the path that was searched and the file names expected there.

    Example:
        >>> from shiftkit.data import MnistDataModule, DatasetNotFoundError
        >>> try:
        ...     MnistDataModule("/nonexistent").setup()
        ... except DatasetNotFoundError as err:
        ...     print("train-images-idx3-ubyte" in str(err))
        True
    """


class DatasetFormatError(ValueError):
    """A dataset file exists but is not in the format it should be (wrong magic number,
    truncated, wrong size, out-of-range label, ...).

    The message names the file and what was expected, e.g.
    ``expected magic 2051 (images) in .../train-images-idx3-ubyte, found 2049``.

    Example:
        >>> from shiftkit.data import DatasetFormatError
        >>> issubclass(DatasetFormatError, ValueError)
        True
    """
