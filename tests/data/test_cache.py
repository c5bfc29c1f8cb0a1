"""The array cache: written atomically, readable by other users, read back without building."""

import os
import stat

import numpy as np

from shiftkit.data.cache import cached_arrays


def test_cache_file_is_world_readable_and_read_back_without_building(tmp_path):
    path = tmp_path / "sub" / "arrays.npz"
    built = cached_arrays(path, lambda: {"x": np.arange(6).reshape(2, 3), "y": np.ones(2)})
    # 0644 like every other file shiftkit writes (a temporary file from mkstemp is 0600).
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(path.parent) == ["arrays.npz"]  # no temporary file left behind

    def must_not_build():
        raise AssertionError("the cache was not read")

    again = cached_arrays(path, must_not_build)
    assert again.keys() == built.keys() and again["x"].tolist() == [[0, 1, 2], [3, 4, 5]]
