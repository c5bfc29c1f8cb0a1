"""write_result_record / read_result_records / config_hash / secret stripping."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from shiftkit.records import (
    SCHEMA_VERSION,
    config_hash,
    is_secret_key,
    read_result_records,
    strip_secrets,
    write_result_record,
)


def test_write_then_read_leaves_only_the_record(tmp_path):
    record = {"config": {"norm": "batch", "lr": 0.1}, "test/acc": 0.9375, "steps": np.int64(6),
              "curve": np.array([0.5, 0.25])}
    path = write_result_record(tmp_path / "cells" / "abc.json", record)
    assert os.listdir(path.parent) == ["abc.json"]
    assert path.stat().st_mode & 0o777 == 0o644
    (got,) = read_result_records(path.parent)
    assert got == {"config": {"norm": "batch", "lr": 0.1}, "test/acc": 0.9375, "steps": 6,
                   "curve": [0.5, 0.25], "schema_version": SCHEMA_VERSION}


def test_crash_before_replace_keeps_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = write_result_record(tmp_path / "cell.json", {"test/acc": 0.5})
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk yanked")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk yanked"):
        write_result_record(path, {"test/acc": 0.75})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["cell.json"]


def test_reader_skips_temp_files_and_names_corrupt_file(tmp_path):
    write_result_record(tmp_path / "b.json", {"x": 2})
    write_result_record(tmp_path / "a.json", {"x": 1})
    (tmp_path / ".a.json.k3j2.tmp").write_text('{"x": ')  # an unfinished write
    (tmp_path / ".c.json").write_text('{"x": ')
    (tmp_path / "notes.txt").write_text("not a record")
    assert [r["x"] for r in read_result_records(tmp_path)] == [1, 2]

    (tmp_path / "broken.json").write_text('{"x": 3')
    with pytest.raises(ValueError, match=r"broken\.json.*corrupt"):
        read_result_records(tmp_path)
    (tmp_path / "broken.json").write_text('{"x": 3}')
    with pytest.raises(ValueError, match=r"broken\.json.*schema_version"):
        read_result_records(tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match=r"broken\.json.*newer"):
        read_result_records(tmp_path)


def test_config_hash_is_canonical_and_stable():
    a = {"lr": 0.1, "model": {"norm": "batch", "width": 64}, "seeds": [0, 1]}
    b = {"seeds": [0, 1], "model": {"width": 64, "norm": "batch"}, "lr": 0.1}
    assert config_hash(a) == config_hash(b)
    # pinned: sha256 of the canonical JSON, 12 hex digits
    canonical = '{"lr":0.1,"model":{"norm":"batch","width":64},"seeds":[0,1]}'
    assert config_hash(a) == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert len(config_hash(a)) == 12
    assert config_hash({**a, "lr": 0.2}) != config_hash(a)
    assert config_hash({**a, "model": {"norm": "layer", "width": 64}}) != config_hash(a)
    assert config_hash({"lr": np.float64(0.1)}) == config_hash({"lr": 0.1})


def test_secrets_are_stripped_and_named_not_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    record = {
        "WANDB_API_KEY": "s1",
        "config": {"lr": 0.1, "hf_token": "s2", "db-Password": "s3",
                   "loggers": [{"name": "wandb", "client_secret": "s4", "project": "p"}]},
        "env_dump": {"WANDB_KEY_COPY": "k" * 40, "HOME": "/root"},
        "wandb_apikey": "s5",
        "test/acc": 0.5,
    }
    with pytest.warns(UserWarning, match="stripped") as caught:
        path = write_result_record(tmp_path / "r.json", record)
    text = path.read_text()
    for secret in ("s1", "s2", "s3", "s4", "s5", "k" * 40):
        assert f'"{secret}"' not in text and secret not in str(caught[0].message)
    assert json.loads(text) == {
        "config": {"lr": 0.1, "loggers": [{"name": "wandb", "project": "p"}]},
        "env_dump": {"HOME": "/root"},
        "test/acc": 0.5,
        "schema_version": SCHEMA_VERSION,
    }
    _, stripped = strip_secrets(record)
    assert sorted(stripped) == sorted([
        "WANDB_API_KEY", "config.hf_token", "config.db-Password",
        "config.loggers.0.client_secret", "env_dump.WANDB_KEY_COPY", "wandb_apikey"])
    assert record["config"]["hf_token"] == "s2"  # the caller's dict is not modified


@pytest.mark.parametrize("key,secret", [
    ("WANDB_API_KEY", True), ("api-key", True), ("GITHUB_TOKEN", True), ("Secret", True),
    ("password", True), ("lr", False), ("norm", False), ("keys", False), ("passes", False),
])
def test_is_secret_key(key, secret):
    assert is_secret_key(key) is secret
